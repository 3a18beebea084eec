"""Tests for magnet.peerwire: handshakes, framing, ut_metadata and hostile peers (BEP 3/9/10)."""

from __future__ import annotations

import hashlib
import itertools
import random
import struct

import bencode2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magnet.hashmsgs import Hashes, encode_hashes
from magnet.metadata import METADATA_PIECE, MetadataAssembler, MetadataSource
from magnet.peerwire import (
    NEED_DATA,
    ConnectionClosed,
    ConnectionState,
    DhtPort,
    ExtHandshake,
    HandshakeReceived,
    Ignored,
    LocalProtocolError,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    PeerConnection,
    PeerEvent,
    Role,
    Violation,
)

INFO_HASH = bytes(range(20))
OTHER_HASH = bytes(range(1, 21))
ID_A = b"-MG0001-aaaaaaaaaaaa"
ID_B = b"-MG0001-bbbbbbbbbbbb"


# --- building raw wire bytes independently of the code under test --------------------------


def handshake(info_hash: bytes = INFO_HASH, peer_id: bytes = ID_B, reserved: bytes = b"") -> bytes:
    reserved = reserved or bytes([0, 0, 0, 0, 0, 0x10, 0, 0x05])
    return b"\x13BitTorrent protocol" + reserved + info_hash + peer_id


def frame(msg_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", len(payload) + 1, msg_id) + payload


def ext(ext_id: int, payload: bytes) -> bytes:
    return frame(20, bytes([ext_id]) + payload)


def ext_hs(d: object) -> bytes:
    return ext(0, bencode2.bencode(d))


KEEPALIVE = b"\0\0\0\0"


def drain(conn: PeerConnection) -> list[PeerEvent]:
    events: list[PeerEvent] = []
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA:
            return events
        events.append(ev)
        if isinstance(ev, Violation | ConnectionClosed):
            return events


def initiator(**kw: object) -> PeerConnection:
    return PeerConnection(INFO_HASH, ID_A, **kw)  # type: ignore[arg-type]


def opened(**kw: object) -> PeerConnection:
    """An initiator past the handshake phase, peer advertising ut_metadata as id 3."""
    conn = initiator(**kw)
    conn.send_handshake()
    conn.receive_data(handshake() + ext_hs({b"m": {b"ut_metadata": 3}, b"metadata_size": 100}))
    assert [type(e) for e in drain(conn)] == [HandshakeReceived, ExtHandshake]
    return conn


def feed(conn: PeerConnection, data: bytes) -> list[PeerEvent]:
    conn.receive_data(data)
    return drain(conn)


def make_info(size_hint: int, seed: int = 7) -> bytes:
    """A real bencoded single-file info dict of about ``size_hint`` bytes."""
    rng = random.Random(seed)
    n = size_hint // 20
    d = {
        b"length": n * 16384,
        b"name": b"magnetar-test.bin",
        b"piece length": 16384,
        b"pieces": rng.randbytes(20 * n),
    }
    return bencode2.bencode(d)


# --- two connections back to back ----------------------------------------------------------


class Wire:
    """Two PeerConnections joined by a fake link; bytes move only when `flush` is called."""

    def __init__(self, a: PeerConnection, b: PeerConnection) -> None:
        self.a, self.b = a, b
        self.to_b = bytearray()
        self.to_a = bytearray()

    def flush(self) -> tuple[list[PeerEvent], list[PeerEvent]]:
        # b"" would mean EOF, so only non-empty batches are delivered.
        if self.to_b:
            self.b.receive_data(bytes(self.to_b))
        if self.to_a:
            self.a.receive_data(bytes(self.to_a))
        self.to_a.clear()
        self.to_b.clear()
        return drain(self.a), drain(self.b)


def fetch_metadata(info: bytes, *, chunk: int | None = None) -> bytes | None:
    """Initiator A fetches ``info`` from responder B, which serves it (B learns the hash)."""
    info_hash = hashlib.sha1(info).digest()
    source = MetadataSource(info)
    a = PeerConnection(info_hash, ID_A, extensions={"ut_metadata": 5})
    b = PeerConnection(None, ID_B, our_role=Role.RESPONDER)
    wire = Wire(a, b)
    wire.to_b += a.send_handshake()
    wire.to_b += a.send_ext_handshake()  # pipelined: fine, B reads it after the handshake
    _, b_events = wire.flush()
    assert isinstance(b_events[0], HandshakeReceived)
    assert b_events[0].info_hash == info_hash
    assert b_events[0].supports_extensions and b_events[0].supports_dht
    assert b_events[1] == ExtHandshake(
        m={"ut_metadata": 5},
        metadata_size=None,
        client="magnetar 0.1.0",
        reqq=None,
        yourip=None,
        listen_port=None,
    )
    wire.to_a += b.send_handshake()
    wire.to_a += b.send_ext_handshake(metadata_size=source.size, yourip=b"\x7f\0\0\1", reqq=250)
    a_events, _ = wire.flush()
    assert isinstance(a_events[0], HandshakeReceived) and a_events[0].peer_id == ID_B
    hs = a_events[1]
    assert isinstance(hs, ExtHandshake)
    assert hs.metadata_size == len(info) and hs.yourip == b"\x7f\0\0\1" and hs.reqq == 250
    assert a.remote_extensions == {"ut_metadata": 2}
    asm = MetadataAssembler(info_hash, None, hs.metadata_size, 1 << 24)
    for piece in asm.wanted():
        wire.to_b += a.send_metadata_request(piece)
    _, requested = wire.flush()
    assert requested == [MetadataRequest(i) for i in range(asm.pieces_total)]
    for req in requested:
        assert isinstance(req, MetadataRequest)
        data = source.piece(req.piece)
        assert data is not None
        wire.to_a += b.send_metadata_data(req.piece, source.size, data)
    wire.to_a += b.send_metadata_reject(asm.pieces_total)  # one too many: rejected
    stream = bytes(wire.to_a)
    step = chunk or len(stream)
    events: list[PeerEvent] = []
    for i in range(0, len(stream), step):
        a.receive_data(stream[i : i + step])
        events += drain(a)
    assert events[-1] == MetadataReject(asm.pieces_total)
    for ev in events[:-1]:
        assert isinstance(ev, MetadataData) and ev.total_size == len(info)
        asm.add(ev.piece, ev.data, source="b")
    return asm.verify()


def test_full_metadata_exchange_multi_piece() -> None:
    info = make_info(50 * 1024)
    assert len(info) > 3 * METADATA_PIECE
    assert fetch_metadata(info) == info


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000, 16389])
def test_full_metadata_exchange_in_small_chunks(chunk: int) -> None:
    info = make_info(40 * 1024)
    assert fetch_metadata(info, chunk=chunk) == info


def test_single_piece_metadata() -> None:
    info = make_info(200)
    assert fetch_metadata(info) == info


# --- wire format, including the BEP 9 errata -----------------------------------------------


def test_handshake_bytes() -> None:
    hs = initiator().send_handshake()
    assert len(hs) == 68
    assert hs[:20] == b"\x13BitTorrent protocol"
    assert hs[20:28] == bytes([0, 0, 0, 0, 0, 0x10, 0, 0x01])  # BEP 10 and DHT bits
    assert hs[28:48] == INFO_HASH and hs[48:] == ID_A


def test_ut_metadata_messages_match_bep9_examples() -> None:
    conn = opened()
    assert conn.send_metadata_request(0) == ext(3, b"d8:msg_typei0e5:piecei0ee")
    # BEP 9's data example prints total_size 3425 but encodes 34256; we encode what we mean.
    data = b"x" * METADATA_PIECE
    assert conn.send_metadata_data(0, 34256, data) == ext(
        3, b"d8:msg_typei1e5:piecei0e10:total_sizei34256ee" + data
    )
    # BEP 9's reject example encodes msg_type 1; a reject is msg_type 2.
    assert conn.send_metadata_reject(0) == ext(3, b"d8:msg_typei2e5:piecei0ee")


def test_bep9_reject_example_is_not_taken_for_a_reject() -> None:
    # The erroneous example (msg_type 1, no total_size) is a malformed data message.
    events = feed(opened(), ext(2, b"d8:msg_typei1e5:piecei0ee"))
    assert isinstance(events[0], Violation) and "total_size" in events[0].reason


def test_ext_handshake_fields() -> None:
    conn = initiator()
    d = {
        b"m": {b"ut_metadata": 3, b"ut_pex": 1, b"lt_donthave": 7},
        b"metadata_size": 31337,
        b"v": "µTorrent 3".encode(),
        b"reqq": 250,
        b"yourip": b"\x7f\0\0\1",
        b"p": 6881,
        b"complete_ago": -1,
        b"upload_only": 1,
    }
    events = feed(conn, handshake() + ext_hs(d))
    assert events[1] == ExtHandshake(
        m={"ut_metadata": 3, "ut_pex": 1, "lt_donthave": 7},
        metadata_size=31337,
        client="µTorrent 3",
        reqq=250,
        yourip=b"\x7f\0\0\1",
        listen_port=6881,
    )
    assert conn.remote_metadata_size == 31337


def test_ext_handshake_bad_optional_fields_are_dropped_not_fatal() -> None:
    d = {b"m": {}, b"v": 5, b"reqq": b"many", b"yourip": b"\1\2\3", b"p": 70000}
    events = feed(initiator(), handshake() + ext_hs(d))
    assert events[1] == ExtHandshake({}, None, None, None, None, None)


def test_ext_handshakes_are_incremental() -> None:
    conn = opened()
    assert conn.remote_extensions == {"ut_metadata": 3}
    feed(conn, ext_hs({b"m": {b"ut_pex": 9}}))
    assert conn.remote_extensions == {"ut_metadata": 3, "ut_pex": 9}
    assert conn.remote_metadata_size == 100
    feed(conn, ext_hs({b"m": {b"ut_metadata": 0}}))  # 0 switches it off (BEP 10)
    assert conn.remote_extensions == {"ut_pex": 9}
    with pytest.raises(LocalProtocolError, match="ut_metadata"):
        conn.send_metadata_request(0)


def test_metadata_size_zero_means_none() -> None:
    events = feed(initiator(), handshake() + ext_hs({b"m": {}, b"metadata_size": 0}))
    assert isinstance(events[1], ExtHandshake) and events[1].metadata_size is None


def test_unknown_msg_type_is_ignored() -> None:
    events = feed(opened(), ext(2, b"d8:msg_typei7e5:piecei0ee") + KEEPALIVE)
    assert events == [Ignored("ut_metadata msg_type 7"), Ignored("keep-alive")]


def test_request_with_extra_keys_and_data_with_extra_keys() -> None:
    conn = opened()
    hdr = b"d8:msg_typei1e5:piecei1e10:total_sizei16385e4:zzzzi0ee"  # keys must stay sorted
    events = feed(conn, ext(2, b"d3:fooi1e8:msg_typei0e5:piecei4ee") + ext(2, hdr + b"Z"))
    assert events == [MetadataRequest(4), MetadataData(1, 16385, b"Z")]


# --- other messages are framed and skipped -------------------------------------------------


HASHES_EVENT = Hashes(b"r" * 32, 1, 0, 2, 0, (b"a" * 32, b"b" * 32))
HASHES_MSG = encode_hashes(HASHES_EVENT)


def test_interleaved_messages_are_skipped_correctly() -> None:
    conn = initiator(extensions={"ut_metadata": 2, "ut_pex": 1})
    conn.send_handshake()
    pex = bencode2.bencode({b"added": b"\x7f\0\0\1\x1a\xe1", b"added.f": b"\x02"})
    stream = (
        handshake()
        + frame(5, b"\xff" * 300)  # bitfield
        + ext_hs({b"m": {b"ut_metadata": 3}, b"metadata_size": 20000})
        + KEEPALIVE
        + frame(4, struct.pack(">I", 17))  # have
        + frame(9, struct.pack(">H", 6881))  # port (BEP 5)
        + ext(1, pex)  # ut_pex on the id we advertised
        + frame(0x0E)  # have-all (BEP 6)
        + frame(0x11, struct.pack(">I", 3))  # allowed-fast
        + frame(1)  # unchoke
        + frame(7, struct.pack(">II", 0, 0) + b"B" * 16384)  # piece
        + HASHES_MSG  # hashes (BEP 52): now an event, read between the skipped ones
        + frame(99, b"?" * 10)  # unknown id
        + ext(77, b"whatever")  # extension we never advertised
        + ext(2, b"d8:msg_typei2e5:piecei1ee")
        + frame(2)  # interested
    )
    events = feed(conn, stream)
    assert events == [
        HandshakeReceived(INFO_HASH, ID_B, bytes([0, 0, 0, 0, 0, 0x10, 0, 0x05])),
        Ignored("bitfield"),
        ExtHandshake({"ut_metadata": 3}, 20000, None, None, None, None),
        Ignored("keep-alive"),
        Ignored("have"),
        DhtPort(6881),
        Ignored("extended ut_pex"),
        Ignored("have-all"),
        Ignored("allowed-fast"),
        Ignored("unchoke"),
        Ignored("piece"),
        HASHES_EVENT,
        Ignored("message #99"),
        Ignored("extended #77"),
        MetadataReject(1),
        Ignored("interested"),
    ]
    assert conn.state is ConnectionState.OPEN


def test_many_small_messages_in_one_buffer() -> None:
    conn = opened()
    n = 50_000
    events = feed(conn, frame(4, struct.pack(">I", 1)) * n + frame(9, b"\x1a\xe1"))
    assert len(events) == n + 1 and events[-1] == DhtPort(6881)


# --- violations ----------------------------------------------------------------------------


def assert_violation(events: list[PeerEvent], fragment: str) -> None:
    assert events and isinstance(events[-1], Violation), events
    assert fragment in events[-1].reason


def test_bad_protocol_string_is_caught_early() -> None:
    conn = initiator()
    assert feed(conn, b"\x13BitTorrent") == []
    assert_violation(feed(conn, b" protocoX"), "not a BitTorrent handshake")
    assert_violation(feed(initiator(), b"GET / HTTP/1.1\r\n"), "not a BitTorrent handshake")


def test_wrong_info_hash() -> None:
    assert_violation(feed(initiator(), handshake(OTHER_HASH)), "another info_hash")
    resp = PeerConnection(INFO_HASH, ID_A, our_role=Role.RESPONDER)
    assert_violation(feed(resp, handshake(OTHER_HASH)), "another info_hash")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (ext(0, b"d1:m"), "not valid bencoding"),
        (ext(0, b"d1:mdee-trailing"), "not valid bencoding"),
        (ext(0, b"d1:bi1e1:ai2ee"), "not valid bencoding"),  # unsorted keys
        (ext(0, b"li1ee"), "not a dict"),
        (ext_hs({b"m": [1, 2]}), "'m' is not a dict"),
        (ext_hs({b"m": {b"ut_metadata": b"2"}}), "not 0..255"),
        (ext_hs({b"m": {b"ut_metadata": 256}}), "not 0..255"),
        (ext_hs({b"m": {b"ut_metadata": -1}}), "not 0..255"),
        (ext_hs({b"m": {}, b"metadata_size": -1}), "metadata_size"),
        (ext_hs({b"m": {}, b"metadata_size": 10**12}), "metadata_size"),
        (ext_hs({b"m": {}, b"metadata_size": b"big"}), "metadata_size"),
        (frame(20), "without an extension id"),
        (frame(9, b"\x1a"), "port message"),
        (ext(2, b""), "not a bencoded dict"),
        (ext(2, b"li0ee"), "not a bencoded dict"),
        (ext(2, b"d8:msg_typei0e5:piece"), "not a bencoded dict"),
        (ext(2, b"d5:piecei0ee"), "msg_type and piece"),
        (ext(2, b"d8:msg_typei0ee"), "msg_type and piece"),
        (ext(2, b"d8:msg_type1:05:piecei0ee"), "msg_type and piece"),
        (ext(2, b"d8:msg_typei0e5:piecei-1ee"), "negative"),
        (ext(2, b"d8:msg_typei1e5:piecei0e10:total_sizei0eeX"), "total_size"),
        (ext(2, b"d8:msg_typei1e5:piecei0e10:total_sizei999999999999ee"), "total_size"),
        (ext(2, b"d8:msg_typei1e5:piecei2e10:total_sizei16384eeX"), "beyond total_size"),
        (ext(2, b"d8:msg_typei1e5:piecei0e10:total_sizei100ee" + b"X" * 99), "not 100"),
        (ext(2, b"d8:msg_typei1e5:piecei0e10:total_sizei20000ee" + b"X" * 16385), "not 16384"),
        (ext(2, b"d" * 40 + b"e" * 40), "not a bencoded dict"),
    ],
)
def test_violations(payload: bytes, fragment: str) -> None:
    conn = opened(max_metadata_size=1 << 20)
    assert_violation(feed(conn, payload), fragment)
    assert conn.state is ConnectionState.CLOSED


def test_hostile_length_prefix_rejected_before_the_body_arrives() -> None:
    conn = opened()
    events = feed(conn, b"\xff\xff\xff\xff")  # 4 GB announced, nothing allocated for it
    assert_violation(events, "exceeds")
    conn.receive_data(b"\0" * 1000)  # ignored after the end
    assert conn.next_event() is events[-1]


def test_max_message_is_inclusive() -> None:
    conn = opened(max_message=1000)
    assert feed(conn, frame(5, b"\0" * 999)) == [Ignored("bitfield")]
    assert_violation(feed(conn, frame(5, b"\0" * 1000)), "1001 bytes exceeds 1000")


def test_violation_is_terminal() -> None:
    conn = opened()
    events = feed(conn, frame(20))
    v = events[-1]
    assert isinstance(v, Violation)
    assert conn.next_event() is v
    conn.receive_data(KEEPALIVE)
    conn.receive_data(b"")
    assert conn.next_event() is v
    for send in (
        conn.send_keepalive,
        lambda: conn.send_metadata_request(0),
        lambda: conn.send_metadata_reject(0),
        conn.send_ext_handshake,
    ):
        with pytest.raises(LocalProtocolError, match="closed"):
            send()


def test_clean_eof_and_eof_mid_message() -> None:
    conn = opened()
    assert feed(conn, KEEPALIVE) == [Ignored("keep-alive")]
    assert feed(conn, b"") == [ConnectionClosed()]
    assert conn.state is ConnectionState.CLOSED
    assert conn.next_event() == ConnectionClosed()

    conn = opened()
    assert feed(conn, frame(4, b"\0\0")[:5]) == []
    assert_violation(feed(conn, b""), "mid-message")

    conn = initiator()
    conn.receive_data(handshake()[:30])
    assert_violation(feed(conn, b""), "mid-message")
    assert feed(initiator(), b"") == [ConnectionClosed()]


def test_data_after_eof_is_a_caller_bug() -> None:
    conn = opened()
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(KEEPALIVE)


# --- handshake choreography and caller mistakes -------------------------------------------


def test_responder_learns_info_hash_then_answers() -> None:
    resp = PeerConnection(None, ID_A, our_role=Role.RESPONDER)
    with pytest.raises(LocalProtocolError, match="HandshakeReceived"):
        resp.send_handshake()
    events = feed(resp, handshake(OTHER_HASH))
    assert events == [HandshakeReceived(OTHER_HASH, ID_B, bytes([0, 0, 0, 0, 0, 0x10, 0, 0x05]))]
    assert resp.info_hash == OTHER_HASH and resp.remote_peer_id == ID_B
    assert resp.send_handshake()[28:48] == OTHER_HASH


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="initiator"):
        PeerConnection(None, ID_A)
    with pytest.raises(ValueError, match="info_hash"):
        PeerConnection(b"short", ID_A)
    with pytest.raises(ValueError, match="peer_id"):
        PeerConnection(INFO_HASH, b"short")
    with pytest.raises(ValueError, match="distinct"):
        PeerConnection(INFO_HASH, ID_A, extensions={"a": 1, "b": 1})
    with pytest.raises(ValueError, match="distinct"):
        PeerConnection(INFO_HASH, ID_A, extensions={"a": 0})


def test_send_order_is_enforced() -> None:
    conn = initiator()
    with pytest.raises(LocalProtocolError, match="handshake first"):
        conn.send_ext_handshake()
    with pytest.raises(LocalProtocolError, match="handshake first"):
        conn.send_keepalive()
    conn.send_handshake()
    with pytest.raises(LocalProtocolError, match="already sent"):
        conn.send_handshake()
    with pytest.raises(LocalProtocolError, match="ut_metadata"):
        conn.send_metadata_request(0)  # the peer has not told us its id yet
    conn.receive_data(handshake(reserved=bytes(8)))
    drain(conn)
    with pytest.raises(LocalProtocolError, match="extension protocol"):
        conn.send_ext_handshake()


def test_send_metadata_data_checks_length() -> None:
    conn = opened()
    with pytest.raises(LocalProtocolError, match="wrong length"):
        conn.send_metadata_data(0, 20000, b"x" * 100)
    with pytest.raises(LocalProtocolError, match="wrong length"):
        conn.send_metadata_data(2, 20000, b"x" * 100)
    assert conn.send_metadata_data(1, 20000, b"x" * 3616).endswith(b"x" * 3616)


def test_dht_port_and_keepalive_bytes() -> None:
    conn = opened()
    assert conn.send_dht_port(6881) == frame(9, b"\x1a\xe1")
    assert conn.send_keepalive() == KEEPALIVE


# --- incremental parsing and fuzzing -------------------------------------------------------

STREAM = (
    handshake()
    + ext_hs({b"m": {b"ut_metadata": 3}, b"metadata_size": 20000, b"v": b"peer"})
    + frame(5, b"\xf0" * 3)
    + KEEPALIVE
    + ext(2, b"d8:msg_typei0e5:piecei1ee")
    + ext(2, b"d8:msg_typei1e5:piecei1e10:total_sizei20000ee" + b"D" * 3616)
    + frame(9, b"\x1a\xe1")
    + ext(2, b"d8:msg_typei2e5:piecei0ee")
    + frame(7, b"\0" * 8 + b"P" * 100)
)


def events_for(chunks: list[bytes]) -> list[PeerEvent]:
    conn = initiator()
    events: list[PeerEvent] = []
    for chunk in chunks:
        if chunk:  # b"" would mean EOF
            events += feed(conn, chunk)
    return events + feed(conn, b"")


WHOLE = events_for([STREAM])


def test_reference_stream() -> None:
    assert len(WHOLE) == 10 and WHOLE[-1] == ConnectionClosed()


@given(st.lists(st.integers(0, len(STREAM)), max_size=40))
def test_any_chunking_yields_the_same_events(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[i:j] for i, j in itertools.pairwise(bounds)]
    assert events_for(chunks) == WHOLE


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_random_bytes_after_handshake_yield_events_or_violation(garbage: bytes) -> None:
    conn = opened(max_message=1500)
    events = feed(conn, garbage)
    assert all(not isinstance(e, Violation) for e in events[:-1])
    events += feed(conn, b"")
    assert isinstance(events[-1], Violation | ConnectionClosed)


bencodable = st.recursive(
    st.integers() | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.binary(max_size=4), inner),
    max_leaves=10,
)

message = st.one_of(
    st.tuples(st.integers(0, 255), st.binary(max_size=60)).map(lambda t: frame(*t)),
    st.tuples(st.sampled_from([0, 2, 3]), st.binary(max_size=60)).map(lambda t: ext(*t)),
    st.builds(
        lambda t, p, extra, data: (
            ext(2, bencode2.bencode({b"msg_type": t, b"piece": p, **extra})) + data
        ),
        st.integers(-2, 4),
        st.integers(-2, 4),
        st.dictionaries(st.sampled_from([b"total_size", b"x"]), st.integers(-5, 40000)),
        st.binary(max_size=40),
    ),
    bencodable.map(lambda v: ext(0, bencode2.bencode(v))),
)


@pytest.mark.slow
@settings(max_examples=300)
@given(st.lists(message, max_size=12))
def test_structured_fuzz_never_raises(messages: list[bytes]) -> None:
    conn = opened(max_metadata_size=30000)
    events = feed(conn, b"".join(messages)) if messages else []
    for e in events[:-1]:
        assert not isinstance(e, Violation | ConnectionClosed)
    if events and isinstance(events[-1], Violation):
        assert conn.state is ConnectionState.CLOSED
    else:
        assert len(events) == len(messages)


@given(extra=bencodable, data=st.binary(min_size=1, max_size=300))
def test_data_header_end_is_found_whatever_the_header_holds(extra: object, data: bytes) -> None:
    # The raw block follows the dict directly, so finding the dict's end must not be
    # fooled by nested values or by block bytes that look like bencoding.
    header = {b"msg_type": 1, b"piece": 0, b"total_size": len(data), b"x": extra}
    events = feed(opened(), ext(2, bencode2.bencode(header) + data))
    assert events == [MetadataData(0, len(data), data)]
