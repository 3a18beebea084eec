"""BEP 52 on the peer wire: hash messages as events, their front door, the v2 bit."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magnet.hashmsgs import HASH_REJECT, HASH_REQUEST, HASHES, Hashes, HashReject, HashRequest
from magnet.peerwire import (
    HandshakeReceived,
    LocalProtocolError,
    PeerConnection,
    Role,
    Violation,
)
from tests.magnet.test_hashmsgs import valid_messages
from tests.magnet.test_peerwire import (
    ID_A,
    ID_B,
    INFO_HASH,
    drain,
    feed,
    frame,
    handshake,
    initiator,
    opened,
)

ROOT = b"R" * 32
ALT = bytes(range(100, 120))


def test_hash_messages_become_events() -> None:
    conn = opened()
    request = HashRequest(ROOT, 1, 0, 4, 2)
    hashes = Hashes(ROOT, 1, 0, 2, 0, (b"a" * 32, b"b" * 32))
    reject = request.reject()
    data = conn.send_hash_request(request) + conn.send_hashes(hashes)
    data += conn.send_hash_reject(reject)
    assert feed(conn, data) == [request, hashes, reject]


def test_a_bad_hash_message_ends_the_connection() -> None:
    conn = opened()
    # A `hashes` whose count does not match its length and proof layers.
    body = ROOT + struct.pack(">IIII", 1, 0, 2, 0) + b"x" * 32 * 3
    (event,) = feed(conn, frame(HASHES, body))
    assert isinstance(event, Violation)
    assert "bad hash message" in event.reason


@pytest.mark.parametrize(
    ("msg_id", "size"),
    [(HASH_REQUEST, 50), (HASH_REJECT, 50), (HASHES, 49 + 32 * (8192 + 49) + 1)],
)
def test_an_oversized_hash_message_is_refused_before_its_body(msg_id: int, size: int) -> None:
    """The attack: a prefix that announces a huge `hashes` (or a request that is not 48 bytes
    of fields) to make us buffer it. Five bytes in, the connection is over."""
    conn = opened()
    (event,) = feed(conn, struct.pack(">IB", size, msg_id))
    assert isinstance(event, Violation)
    assert "hash message" in event.reason


def test_the_largest_hashes_message_is_let_through() -> None:
    conn = opened()
    hashes = Hashes(ROOT, 0, 0, 8192, 0, tuple(b"h" * 32 for _ in range(8192)))
    assert feed(conn, conn.send_hashes(hashes)) == [hashes]


def test_a_keepalive_is_not_read_as_a_hash_message_header() -> None:
    conn = opened()
    # A keep-alive, then a request whose id byte follows: the front door must not take
    # the request's length prefix for the keep-alive's id.
    request = HashRequest(ROOT, 0, 0, 2, 0)
    assert feed(conn, b"\0\0\0\0" + conn.send_hash_request(request))[-1] == request


@settings(max_examples=300, deadline=None)
@given(valid_messages(), st.integers(min_value=1, max_value=64))
def test_any_valid_message_in_any_chunking_is_its_event(msg: object, chunk: int) -> None:
    from magnet.hashmsgs import encode_hash_message

    conn = opened()
    assert isinstance(msg, HashRequest | Hashes | HashReject)
    if isinstance(msg, HashRequest) and msg.length < 2:
        wire = frame(HASH_REQUEST, encode_hash_message(msg.reject())[5:])
    else:
        wire = encode_hash_message(msg)
    events = []
    for i in range(0, len(wire), chunk):
        events += feed(conn, wire[i : i + chunk])
    assert events == [msg]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([HASH_REQUEST, HASHES, HASH_REJECT]), st.binary(max_size=300))
def test_any_hash_frame_is_an_event_or_a_violation_never_an_exception(
    msg_id: int, body: bytes
) -> None:
    conn = opened()
    events = feed(conn, frame(msg_id, body))
    assert len(events) == 1
    assert isinstance(events[0], HashRequest | Hashes | HashReject | Violation)


def test_handshake_bits_v2_and_fast() -> None:
    plain = initiator().send_handshake()
    assert plain[20:28] == bytes([0, 0, 0, 0, 0, 0x10, 0, 0x01])
    both = initiator(v2=True, fast=True).send_handshake()
    assert both[20:28] == bytes([0, 0, 0, 0, 0, 0x10, 0, 0x15])


def test_the_peer_may_answer_with_the_alternative_hash_and_the_connection_follows() -> None:
    conn = initiator(v2=True, alt_info_hash=ALT)
    conn.send_handshake()
    (event,) = feed(conn, handshake(info_hash=ALT))
    assert isinstance(event, HandshakeReceived)
    assert conn.info_hash == ALT


def test_another_hash_is_still_refused() -> None:
    conn = initiator(v2=True, alt_info_hash=ALT)
    conn.send_handshake()
    (event,) = feed(conn, handshake(info_hash=bytes(20)))
    assert isinstance(event, Violation)


def test_a_responder_may_answer_with_another_key_of_the_torrent() -> None:
    conn = PeerConnection(None, ID_A, our_role=Role.RESPONDER, v2=True)
    feed(conn, handshake(info_hash=INFO_HASH, peer_id=ID_B))
    out = conn.send_handshake(ALT)
    assert out[28:48] == ALT and out[27] & 0x10
    assert conn.info_hash == ALT


def test_have_all_with_the_fast_extension_else_a_full_bitfield() -> None:
    fast = PeerConnection(None, ID_A, our_role=Role.RESPONDER, fast=True)
    drain(fast)
    feed(fast, handshake())  # its reserved bytes carry the fast bit (0x04)
    fast.send_handshake()
    assert fast.send_have_all(11) == struct.pack(">IB", 1, 0x0E)
    slow = PeerConnection(None, ID_A, our_role=Role.RESPONDER, fast=True)
    feed(slow, handshake(reserved=bytes([0, 0, 0, 0, 0, 0x10, 0, 0x01])))
    slow.send_handshake()
    assert slow.send_have_all(11) == struct.pack(">IB", 3, 5) + b"\xff\xe0"
    assert slow.send_have_all(16)[5:] == b"\xff\xff"


def test_a_request_below_two_hashes_is_never_sent() -> None:
    conn = opened()
    with pytest.raises(LocalProtocolError):
        conn.send_hash_request(HashRequest(ROOT, 0, 0, 1, 0))
