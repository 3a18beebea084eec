"""The uTP header codec (BEP 29): fields, the extension chain, and garbage."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magnet.utp.header import (
    ST_DATA,
    ST_STATE,
    ST_SYN,
    Packet,
    UtpError,
    encode,
    parse,
    seq_add,
    seq_diff,
    seq_lt,
)


def sample(**fields: object) -> Packet:
    base: dict[str, object] = {
        "type": ST_DATA,
        "connection_id": 0x1234,
        "timestamp_us": 0xDEADBEEF,
        "timestamp_difference_us": 77,
        "wnd_size": 1 << 20,
        "seq_nr": 0xFFFF,
        "ack_nr": 3,
        "payload": b"stream bytes",
    }
    base.update(fields)
    return Packet(**base)  # type: ignore[arg-type]


def test_header_layout_is_bep29() -> None:
    data = encode(sample(type=ST_SYN, payload=b""))
    assert len(data) == 20
    assert data[0] == 0x41  # type 4 in the high nibble, version 1 in the low
    assert data[1] == 0  # no extension
    assert struct.unpack("!HIIIHH", data[2:]) == (0x1234, 0xDEADBEEF, 77, 1 << 20, 0xFFFF, 3)


def test_roundtrip_with_selective_ack() -> None:
    packet = sample(sack=b"\x05\x00\x00\x80")
    data = encode(packet)
    assert data[1] == 1 and data[20:22] == b"\x00\x04"
    assert parse(data) == packet
    # bit 0 is ack_nr + 2, bit 2 is ack_nr + 4, the top bit of byte 3 is ack_nr + 2 + 31
    assert packet.sacked() == [5, 7, 36]


def test_sacked_wraps_at_16_bits() -> None:
    assert sample(ack_nr=0xFFFE, sack=b"\x03\x00\x00\x00").sacked() == [0, 1]


def test_unknown_extensions_are_skipped() -> None:
    head = bytearray(encode(sample(payload=b"")))
    head[1] = 9  # an extension type we do not know, then a selective ACK
    chain = bytes((1, 3)) + b"abc" + bytes((0, 4)) + b"\x01\x00\x00\x00"
    packet = parse(bytes(head) + chain + b"payload")
    assert packet.sack == b"\x01\x00\x00\x00" and packet.payload == b"payload"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter"),
        (encode(sample())[:19], "shorter"),
        (b"\x42" + encode(sample())[1:], "version"),
        (b"\x51" + encode(sample())[1:], "type"),
        (b"\x01\x01" + encode(sample(payload=b""))[2:], "past the datagram"),
        (b"\x01\x01" + encode(sample(payload=b""))[2:] + b"\x00\x08abc", "past the datagram"),
        (b"\x01\x01" + encode(sample(payload=b""))[2:] + b"\x00\x03abc", "selective ACK"),
        (b"\x01\x01" + encode(sample(payload=b""))[2:] + b"\x00\x00", "selective ACK"),
        (b"\x01\x01" + encode(sample(payload=b""))[2:] + b"\x00\x24" + bytes(36), "selective"),
    ],
)
def test_malformed_datagrams_raise_utp_error(data: bytes, reason: str) -> None:
    with pytest.raises(UtpError, match=reason):
        parse(data)


def test_bencoded_krpc_is_not_utp() -> None:
    with pytest.raises(UtpError):
        parse(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")


def test_sequence_arithmetic_wraps() -> None:
    assert seq_add(0xFFFF, 1) == 0
    assert seq_diff(2, 0xFFFE) == 4 and seq_diff(0xFFFE, 2) == -4
    assert seq_lt(0xFFFF, 0) and not seq_lt(0, 0xFFFF)
    assert not seq_lt(5, 5)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=120))
def test_parse_any_bytes_gives_a_packet_or_utp_error(data: bytes) -> None:
    try:
        packet = parse(data)
    except UtpError:
        return
    assert packet.type <= ST_SYN and len(packet.payload) <= len(data) - 20


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(range(5)),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.none() | st.integers(1, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    st.binary(max_size=64),
)
def test_encode_then_parse_is_identity(
    ptype: int,
    cid: int,
    ts: int,
    diff: int,
    wnd: int,
    seq: int,
    ack: int,
    sack: bytes | None,
    payload: bytes,
) -> None:
    packet = Packet(ptype, cid, ts, diff, wnd, seq, ack, sack, payload)
    assert parse(encode(packet)) == packet


def test_state_packet_is_header_only() -> None:
    assert len(encode(sample(type=ST_STATE, payload=b""))) == 20
