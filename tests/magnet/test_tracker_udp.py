"""BEP 15 UDP tracker client: the sans-IO core by hand, then the driver against fake trackers.

Core tests pass explicit ``now`` values and build the tracker's answers byte by byte from
BEP 15's tables (not from the module's own structs). Driver tests run a fake tracker on
127.0.0.1 with asyncio, honest and hostile, and call `magnet.io.trackers.announce` end to end.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from ipaddress import ip_address
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magnet.io.trackers import (
    AnnounceEvent,
    AnnounceRequest,
    ScrapeStats,
    TrackerError,
    announce,
    scrape,
)
from magnet.io.udp_tracker import UdpTracker
from magnet.trackers.udp import (
    CONNECTION_TTL_S,
    Announced,
    Scraped,
    TrackerFailed,
    UdpTrackerClient,
    encode_url_data,
)

T = TypeVar("T")
TRACKER = ("127.0.0.1", 6969)
TRACKER6 = ("::1", 6969)
IH = bytes(range(20))
PEER_ID = b"-MG0001-abcdefghijkl"
MAGIC = bytes.fromhex("0000041727101980")


def run(coro: Awaitable[T], timeout: float = 20.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def request(**kw: Any) -> AnnounceRequest:
    fields: dict[str, Any] = {"info_hash": IH, "peer_id": PEER_ID, "port": 6881}
    fields.update(kw)
    return AnnounceRequest(**fields)


def client(addr: tuple[str, int] = TRACKER, **kw: Any) -> UdpTrackerClient:
    kw.setdefault("rng", random.Random(7))
    return UdpTrackerClient(addr, **kw)


# Answers as BEP 15 lays them out: big-endian int32 action, int32 transaction id, then ...
def connected(tid: int, cid: int) -> bytes:
    return struct.pack("!iIq", 0, tid, cid)


def announced(tid: int, interval: int, leechers: int, seeders: int, peers: bytes = b"") -> bytes:
    return struct.pack("!iIiii", 1, tid, interval, leechers, seeders) + peers


def error(tid: int, message: bytes) -> bytes:
    return struct.pack("!iI", 3, tid) + message


def tid_of(packet: bytes) -> int:
    return int.from_bytes(packet[12:16], "big")


def one_packet(c: UdpTrackerClient, now: float) -> bytes:
    out = c.datagrams_to_send(now)
    assert len(out) == 1, out
    assert out[0][1] == c.addr
    return out[0][0]


def connect(c: UdpTrackerClient, now: float, cid: int = 0x1122334455667788) -> bytes:
    """Answer the pending connect; returns the request packet that follows it."""
    packet = one_packet(c, now)
    assert packet[:8] == MAGIC
    assert c.receive_datagram(connected(tid_of(packet), cid), c.addr, now) is None
    return one_packet(c, now)


def events(c: UdpTrackerClient) -> list[Any]:
    out = []
    while (ev := c.next_event()) is not None:
        out.append(ev)
    return out


# --- wire format --------------------------------------------------------------------------


def test_connect_request_is_16_bytes_magic_action_0_random_tid() -> None:
    c = client()
    c.announce(request(), now=0.0)
    packet = one_packet(c, 0.0)
    assert len(packet) == 16
    assert packet[:8] == MAGIC  # 0x41727101980
    assert packet[8:12] == b"\x00\x00\x00\x00"  # action 0: connect
    assert c.get_timer() == 0.5


def test_announce_request_is_byte_exact() -> None:
    c = client()
    req = request(
        uploaded=3,
        downloaded=2,
        left=1,
        event=AnnounceEvent.STARTED,
        key=0xDEADBEEF,
        num_want=-1,
        port=51413,
    )
    c.announce(req, now=0.0)
    packet = connect(c, 0.0, cid=0x0102030405060708)
    assert len(packet) == 98
    expected = (
        bytes.fromhex("0102030405060708")  # connection id from the connect answer
        + b"\x00\x00\x00\x01"  # action 1: announce
        + packet[12:16]  # transaction id
        + IH
        + PEER_ID
        + (2).to_bytes(8, "big")  # downloaded
        + (1).to_bytes(8, "big")  # left
        + (3).to_bytes(8, "big")  # uploaded
        + (2).to_bytes(4, "big")  # event 2: started
        + b"\x00\x00\x00\x00"  # IP address 0: the sender's
        + bytes.fromhex("deadbeef")  # key
        + b"\xff\xff\xff\xff"  # num_want -1
        + (51413).to_bytes(2, "big")
    )
    assert packet == expected


def test_announce_carries_bep41_url_data() -> None:
    c = client(url_data=b"/announce?passkey=abc")
    c.announce(request(), now=0.0)
    packet = connect(c, 0.0)
    assert packet[98:] == b"\x02\x15/announce?passkey=abc"


def test_url_data_is_split_in_255_byte_chunks() -> None:
    data = bytes(range(256)) * 2  # 512 bytes
    encoded = encode_url_data(data)
    assert encoded[:2] == b"\x02\xff" and encoded[2:257] == data[:255]
    assert encoded[257:259] == b"\x02\xff" and encoded[259:514] == data[255:510]
    assert encoded[514:] == b"\x02\x02" + data[510:]
    assert encode_url_data(b"") == b""


def test_announce_answer_gives_peers_interval_seeders_leechers() -> None:
    c = client()
    rid = c.announce(request(), now=0.0)
    packet = connect(c, 0.0)
    peers = bytes([10, 0, 0, 1, 0x1A, 0xE1, 192, 168, 1, 2, 0xC8, 0xD5])
    assert c.receive_datagram(announced(tid_of(packet), 1800, 5, 7, peers), TRACKER, 0.1) is None
    assert events(c) == [
        Announced(rid, (("10.0.0.1", 6881), ("192.168.1.2", 51413)), 1800, seeders=7, leechers=5)
    ]
    assert c.get_timer() is None


def test_ipv6_tracker_answers_with_18_byte_peers() -> None:
    c = client(TRACKER6)
    rid = c.announce(request(), now=0.0)
    packet = connect(c, 0.0)
    peer6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1") + (6881).to_bytes(2, "big")
    answer = announced(tid_of(packet), 900, 0, 1, peer6 + peer6[:6])  # a torn tail is ignored
    assert c.receive_datagram(answer, TRACKER6, 0.1) is None
    assert events(c) == [Announced(rid, (("2001:db8::1", 6881),), 900, 1, 0)]


def test_scrape_request_and_answer() -> None:
    c = client()
    other = b"\xab" * 20
    rid = c.scrape([IH, other], now=0.0)
    packet = connect(c, 0.0, cid=5)
    assert packet == (5).to_bytes(8, "big") + b"\x00\x00\x00\x02" + packet[12:16] + IH + other
    answer = struct.pack("!iI", 2, tid_of(packet)) + struct.pack("!iiiiii", 3, 10, 4, 0, 0, 0)
    assert c.receive_datagram(answer, TRACKER, 0.1) is None
    assert events(c) == [Scraped(rid, {IH: ScrapeStats(3, 10, 4), other: ScrapeStats(0, 0, 0)})]


def test_scrape_answer_cut_short_keeps_whole_entries() -> None:
    c = client()
    rid = c.scrape([IH, b"\xab" * 20], now=0.0)
    packet = connect(c, 0.0)
    answer = struct.pack("!iI", 2, tid_of(packet)) + struct.pack("!iii", 1, 2, 3) + b"\x00\x00"
    c.receive_datagram(answer, TRACKER, 0.1)
    assert events(c) == [Scraped(rid, {IH: ScrapeStats(1, 2, 3)})]


def test_scrape_takes_1_to_74_hashes() -> None:
    c = client()
    with pytest.raises(ValueError):
        c.scrape([], now=0.0)
    with pytest.raises(ValueError):
        c.scrape([IH] * 75, now=0.0)
    with pytest.raises(ValueError):
        c.scrape([b"short"], now=0.0)


# --- connection id ------------------------------------------------------------------------


def test_connection_id_is_reused_within_its_lifetime_then_renewed() -> None:
    c = client()
    c.announce(request(), now=0.0)
    first = connect(c, 0.0, cid=42)
    c.receive_datagram(announced(tid_of(first), 60, 0, 0), TRACKER, 0.1)
    events(c)

    # 59 s later: straight to the announce, with the same id.
    c.announce(request(event=AnnounceEvent.NONE), now=59.0)
    second = one_packet(c, 59.0)
    assert second[:12] == (42).to_bytes(8, "big") + b"\x00\x00\x00\x01"
    c.receive_datagram(announced(tid_of(second), 60, 0, 0), TRACKER, 59.1)
    assert isinstance(events(c)[0], Announced)

    # 60 s after the connect answer the id is stale: connect again.
    c.announce(request(), now=CONNECTION_TTL_S)
    third = one_packet(c, CONNECTION_TTL_S)
    assert third[:8] == MAGIC
    assert c.sent == {"connect": 2, "announce": 2}


def test_requests_waiting_for_a_connection_share_one_connect() -> None:
    c = client()
    a = c.announce(request(), now=0.0)
    b = c.scrape([IH], now=0.01)
    packet = one_packet(c, 0.01)
    assert packet[:8] == MAGIC
    c.receive_datagram(connected(tid_of(packet), 9), TRACKER, 0.02)
    sent = c.datagrams_to_send(0.02)
    assert sorted(p[11] for p, _ in sent) == [1, 2]  # one announce, one scrape
    for p, _ in sent:
        if p[11] == 1:
            c.receive_datagram(announced(tid_of(p), 1, 0, 0), TRACKER, 0.03)
        else:
            c.receive_datagram(struct.pack("!iIiii", 2, tid_of(p), 0, 0, 0), TRACKER, 0.03)
    assert {type(e): e.request_id for e in events(c)} == {Announced: a, Scraped: b}


def test_id_that_expires_during_retries_is_renewed_before_resending() -> None:
    c = client(retry_schedule=(0.5, 1.0, 2.0), connection_ttl=1.0)
    rid = c.announce(request(), now=0.0)
    connect(c, 0.0)  # announce sent at 0.0; the id lives until 1.0
    c.handle_timer(0.5)
    assert one_packet(c, 0.5)[8:12] == b"\x00\x00\x00\x01"  # resent: id still fresh
    c.handle_timer(1.5)
    renew = one_packet(c, 1.5)
    assert renew[:8] == MAGIC
    c.receive_datagram(connected(tid_of(renew), 77), TRACKER, 1.6)
    packet = one_packet(c, 1.6)
    assert packet[:8] == (77).to_bytes(8, "big")
    c.receive_datagram(announced(tid_of(packet), 1, 0, 0), TRACKER, 1.7)
    assert [type(e) for e in events(c)] == [Announced]
    assert events(c) == [] and c.get_timer() is None and rid == 1


# --- retries and time caps ----------------------------------------------------------------


def test_connect_is_retried_on_the_schedule_then_fails() -> None:
    c = client(retry_schedule=(0.5, 1.0, 2.0))
    rid = c.announce(request(), now=10.0)
    first = one_packet(c, 10.0)
    assert c.get_timer() == 10.5
    c.handle_timer(10.5)
    second = one_packet(c, 10.5)
    assert second == first  # same transaction id: a late answer still counts
    assert c.get_timer() == 11.5
    c.handle_timer(11.5)
    one_packet(c, 11.5)
    assert c.get_timer() == 13.5
    c.handle_timer(13.4)  # not yet
    assert events(c) == [] and c.datagrams_to_send(13.4) == []
    c.handle_timer(13.5)
    assert events(c) == [TrackerFailed(rid, "timed out after 3 attempts (no connect answer)")]
    assert c.get_timer() is None and c.datagrams_to_send(13.5) == []


def test_announce_is_retried_then_fails() -> None:
    c = client(retry_schedule=(0.2, 0.4))
    rid = c.announce(request(), now=0.0)
    packet = connect(c, 0.0)
    assert c.get_timer() == 0.2
    c.handle_timer(0.2)
    assert one_packet(c, 0.2) == packet
    deadline = c.get_timer()
    assert deadline is not None and deadline == pytest.approx(0.6)
    c.handle_timer(deadline)
    assert events(c) == [TrackerFailed(rid, "timed out after 2 attempts")]


def test_late_answer_to_an_earlier_attempt_counts() -> None:
    c = client()
    rid = c.announce(request(), now=0.0)
    packet = connect(c, 0.0)
    c.handle_timer(0.5)
    c.datagrams_to_send(0.5)
    c.receive_datagram(announced(tid_of(packet), 30, 1, 1), TRACKER, 0.7)
    assert events(c) == [Announced(rid, (), 30, 1, 1)]


def test_total_time_cap() -> None:
    c = client(retry_schedule=(0.5, 1.0, 2.0), timeout=1.0)
    rid = c.announce(request(), now=0.0)
    c.datagrams_to_send(0.0)
    c.handle_timer(0.5)
    assert c.get_timer() == 1.0
    c.handle_timer(1.0)
    assert events(c) == [TrackerFailed(rid, "timed out after 1.0 s")]
    # A per-request cap overrides the default.
    rid2 = c.announce(request(), now=2.0, timeout=0.25)
    assert c.get_timer() == 2.25
    c.handle_timer(2.25)
    assert [e.request_id for e in events(c)] == [rid2]


def test_cancel_forgets_the_request_and_stops_connecting() -> None:
    c = client()
    rid = c.announce(request(), now=0.0)
    c.datagrams_to_send(0.0)
    c.cancel(rid)
    assert c.get_timer() is None
    c.handle_timer(5.0)
    assert events(c) == [] and c.datagrams_to_send(5.0) == []


def test_abort_fails_everything() -> None:
    c = client()
    a = c.announce(request(), now=0.0)
    b = c.announce(request(), now=0.0)
    c.abort("network error: Connection refused")
    assert events(c) == [
        TrackerFailed(a, "network error: Connection refused"),
        TrackerFailed(b, "network error: Connection refused"),
    ]
    assert c.get_timer() is None


# --- error action -------------------------------------------------------------------------


def test_error_answer_to_connect_fails_waiting_requests() -> None:
    c = client()
    rid = c.announce(request(), now=0.0)
    packet = one_packet(c, 0.0)
    assert c.receive_datagram(error(tid_of(packet), b"go away"), TRACKER, 0.1) is None
    assert events(c) == [TrackerFailed(rid, "tracker said: go away")]
    assert c.get_timer() is None


def test_error_answer_to_announce_is_one_clean_line() -> None:
    c = client()
    rid = c.announce(request(), now=0.0)
    packet = connect(c, 0.0)
    message = b"unregistered\r\ntorrent \xff\x00" + b"x" * 500
    c.receive_datagram(error(tid_of(packet), message), TRACKER, 0.1)
    (ev,) = events(c)
    assert isinstance(ev, TrackerFailed) and ev.request_id == rid
    assert ev.reason.startswith("tracker said: unregistered torrent \ufffd")
    assert "\n" not in ev.reason and "\x00" not in ev.reason
    assert len(ev.reason) <= len("tracker said: ") + 200
    empty = client()
    empty.announce(request(), now=0.0)
    empty.receive_datagram(error(tid_of(one_packet(empty, 0.0)), b""), TRACKER, 0.1)
    assert events(empty)[0].reason == "tracker said: (no message)"


# --- hostile input ------------------------------------------------------------------------


def test_hostile_packets_are_dropped_with_a_reason() -> None:
    c = client()
    rid = c.announce(request(), now=0.0)
    ctid = tid_of(one_packet(c, 0.0))
    drops = [
        c.receive_datagram(connected(ctid, 1), ("127.0.0.2", 6969), 0.1),
        c.receive_datagram(connected(ctid, 1), ("127.0.0.1", 6970), 0.1),
        c.receive_datagram(b"\x00\x00\x00", TRACKER, 0.1),
        c.receive_datagram(connected(ctid ^ 1, 1), TRACKER, 0.1),
        c.receive_datagram(announced(ctid, 1, 1, 1), TRACKER, 0.1),
        c.receive_datagram(connected(ctid, 1)[:15], TRACKER, 0.1),
        c.receive_datagram(struct.pack("!iI", 7, ctid), TRACKER, 0.1),
    ]
    assert drops == [
        "not from the tracker's address",
        "not from the tracker's address",
        "shorter than 8 bytes",
        "unknown transaction id",
        "wrong action for its transaction",
        "truncated",
        "wrong action for its transaction",
    ]
    assert events(c) == []
    # Still waiting: the real answer goes through.
    assert c.receive_datagram(connected(ctid, 1), TRACKER, 0.2) is None
    packet = one_packet(c, 0.2)
    assert c.receive_datagram(announced(tid_of(packet), 5, 5, 5)[:19], TRACKER, 0.3) == "truncated"
    assert c.receive_datagram(connected(tid_of(packet), 1), TRACKER, 0.3) == (
        "wrong action for its transaction"
    )
    assert c.receive_datagram(announced(tid_of(packet), 5, 5, 5), TRACKER, 0.3) is None
    assert events(c) == [Announced(rid, (), 5, 5, 5)]
    # A repeat of the answer finds no transaction.
    assert c.receive_datagram(announced(tid_of(packet), 5, 5, 5), TRACKER, 0.4) == (
        "unknown transaction id"
    )
    assert events(c) == []
    assert c.dropped["unknown transaction id"] == 2


def test_huge_peer_list_is_capped() -> None:
    c = client(max_peers=50)
    rid = c.announce(request(), now=0.0)
    packet = connect(c, 0.0)
    peers = b"".join(
        bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255]) + b"\x1a\xe1" for i in range(100_000)
    )
    started = time.perf_counter()
    c.receive_datagram(announced(tid_of(packet), 1, 0, 100_000, peers), TRACKER, 0.1)
    assert time.perf_counter() - started < 0.5  # the other 99,950 are never decoded
    (ev,) = events(c)
    assert isinstance(ev, Announced) and ev.request_id == rid
    assert len(ev.peers) == 50 and ev.peers[0] == ("10.0.0.0", 6881)


def test_port_zero_and_repeated_peers_are_dropped() -> None:
    c = client()
    c.announce(request(), now=0.0)
    packet = connect(c, 0.0)
    a = bytes([1, 2, 3, 4, 0, 80])
    peers = a + bytes([5, 6, 7, 8, 0, 0]) + a
    c.receive_datagram(announced(tid_of(packet), 1, 0, 0, peers), TRACKER, 0.1)
    assert events(c)[0].peers == (("1.2.3.4", 80),)


@settings(max_examples=300, deadline=None)
@given(
    packets=st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.tuples(st.sampled_from([0, 1, 2, 3, 4, -1]), st.binary(max_size=40)),
        ),
        max_size=12,
    )
)
@pytest.mark.slow
def test_any_datagrams_yield_events_or_drops_never_exceptions(
    packets: list[bytes | tuple[int, bytes]],
) -> None:
    c = client()
    c.announce(request(), now=0.0)
    c.scrape([IH], now=0.0)
    tids = [tid_of(one_packet(c, 0.0))]
    now = 0.0
    for item in packets:
        now += 0.1
        if isinstance(item, tuple):
            # A header with a live transaction id, so the checks past it are reached.
            action, rest = item
            tids += [tid_of(p) for p, _ in c.datagrams_to_send(now)]
            data = struct.pack("!iI", action, tids[len(rest) % len(tids)]) + rest
        else:
            data = item
        why = c.receive_datagram(data, TRACKER, now)
        assert why is None or isinstance(why, str)
        c.handle_timer(now)
    for _ in range(20):  # every deadline in turn, as a driver would
        deadline = c.get_timer()
        if deadline is None:
            break
        now = max(now, deadline)
        c.handle_timer(now)
    evs = events(c)
    assert all(isinstance(e, Announced | Scraped | TrackerFailed) for e in evs)
    assert sorted(e.request_id for e in evs) == [1, 2]  # each request ends exactly once
    assert c.get_timer() is None


# --- driver against fake trackers on loopback ---------------------------------------------


class FakeUdpTracker(asyncio.DatagramProtocol):
    """A BEP 15 tracker on 127.0.0.1 whose answers a test can bend.

    ``mode``: "honest", "silent", "garbage", "wrong_tid", "error", "huge", "drop_first"
    (ignores the first datagram), "slow" (answers after ``delay``).
    """

    def __init__(self, mode: str = "honest", delay: float = 0.0) -> None:
        self.mode = mode
        self.delay = delay
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[bytes] = []
        self.swarm: dict[bytes, dict[tuple[str, int], None]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    @property
    def url(self) -> str:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return (
            f"udp://{host}:{port}/announce"
            if ":" not in host
            else f"udp://[{host}]:{port}/announce"
        )

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received.append(data)
        if self.mode == "silent" or (self.mode == "drop_first" and len(self.received) == 1):
            return
        answer = self.answer(data, (addr[0], addr[1]))
        if answer is None or self.transport is None:
            return
        if self.mode == "slow":
            asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, answer, addr)
        else:
            self.transport.sendto(answer, addr)

    def answer(self, data: bytes, addr: tuple[str, int]) -> bytes | None:
        if len(data) < 16:
            return None
        action, tid = struct.unpack_from("!iI", data, 8)
        if self.mode == "garbage":
            return b"\xde\xad" * 9
        if self.mode == "wrong_tid":
            tid ^= 0xFFFF
        if self.mode == "error":
            return struct.pack("!iI", 3, tid) + b"torrent not registered"
        if action == 0:
            return struct.pack("!iIq", 0, tid, 0x5EED)
        if action == 2:
            n = (len(data) - 16) // 20
            return struct.pack("!iI", 2, tid) + struct.pack("!iii", 4, 5, 6) * n
        info_hash = data[16:36]
        port = int.from_bytes(data[96:98], "big")
        swarm = self.swarm.setdefault(info_hash, {})
        if self.mode == "huge":
            # As many peers as fit in one datagram: (65507 - 20) // 6.
            peers = b"".join(bytes([10, 1, i >> 8, i & 255, 0x1A, 0xE1]) for i in range(10_914))
        else:
            # BEP 15: 6-byte peers to an IPv4 client, 18-byte ones over IPv6.
            peers = b"".join(ip_address(h).packed + p.to_bytes(2, "big") for h, p in swarm)
        swarm[(addr[0], port)] = None
        return struct.pack("!iIiii", 1, tid, 1800, len(swarm), 0) + peers


async def fake_udp_tracker(
    mode: str = "honest", delay: float = 0.0, host: str = "127.0.0.1"
) -> FakeUdpTracker:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(
        lambda: FakeUdpTracker(mode, delay), local_addr=(host, 0)
    )
    return proto


def with_fake(
    mode: str,
    body: Callable[[FakeUdpTracker], Awaitable[None]],
    delay: float = 0.0,
    host: str = "127.0.0.1",
) -> None:
    async def main() -> None:
        fake = await fake_udp_tracker(mode, delay, host)
        try:
            await body(fake)
        finally:
            assert fake.transport is not None
            fake.transport.close()

    run(main())


FAST = (0.05, 0.1, 0.2)


def test_announce_end_to_end_two_peers_see_each_other() -> None:
    async def body(fake: FakeUdpTracker) -> None:
        first = await announce(fake.url, IH, peer_id=PEER_ID, port=1111, timeout=2)
        assert first.peers == [] and first.interval == 1800 and first.leechers == 1
        second = await announce(fake.url, IH, peer_id=b"-MG0001-zzzzzzzzzzzz", port=2222, timeout=2)
        assert second.peers == [("127.0.0.1", 1111)]
        assert second.seeders == 0 and second.leechers == 2 and second.warning is None
        assert fake.received[1][98:] == b"\x02\x09/announce"  # BEP 41 URLData

    with_fake("honest", body)


def test_announce_to_an_ipv6_tracker_reads_18_byte_peers() -> None:
    async def body(fake: FakeUdpTracker) -> None:
        assert fake.url.startswith("udp://[::1]:")
        await announce(fake.url, IH, peer_id=PEER_ID, port=1111, timeout=2)
        second = await announce(fake.url, IH, peer_id=PEER_ID, port=2222, timeout=2)
        assert second.peers == [("::1", 1111)]

    with_fake("honest", body, host="::1")


def test_udp_tracker_reuses_its_connection_id() -> None:
    async def body(fake: FakeUdpTracker) -> None:
        host, port = fake.url[len("udp://") :].split("/")[0].split(":")
        async with await UdpTracker.open(host, int(port), retry_schedule=FAST) as tracker:
            for p in (1, 2, 3):
                await tracker.announce(request(port=p), timeout=2)
            stats = await tracker.scrape([IH, b"\x01" * 20], timeout=2)
            assert stats.stats[IH] == ScrapeStats(4, 5, 6)
            assert tracker.client.sent == {"connect": 1, "announce": 3, "scrape": 1}
        await asyncio.sleep(0)  # connection_lost runs on the next loop turn
        with pytest.raises(TrackerError, match="closed"):
            await tracker.announce(request(), timeout=2)
        assert [d[8:12] for d in fake.received].count(b"\x00\x00\x00\x00") == 1

    with_fake("honest", body)


def test_lost_packet_is_retried() -> None:
    async def body(fake: FakeUdpTracker) -> None:
        result = await announce(
            fake.url, IH, peer_id=PEER_ID, port=1, timeout=2, retry_schedule=FAST
        )
        assert result.interval == 1800
        assert len(fake.received) == 3  # connect (lost), connect, announce

    with_fake("drop_first", body)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("silent", "timed out after 3 attempts (no connect answer)"),
        ("garbage", "timed out after 3 attempts (no connect answer)"),
        ("wrong_tid", "timed out after 3 attempts (no connect answer)"),
        ("error", "tracker said: torrent not registered"),
    ],
)
def test_hostile_tracker_gives_one_clear_error(mode: str, reason: str) -> None:
    async def body(fake: FakeUdpTracker) -> None:
        started = time.monotonic()
        with pytest.raises(TrackerError) as info:
            await announce(fake.url, IH, peer_id=PEER_ID, port=1, timeout=5, retry_schedule=FAST)
        assert info.value.reason == reason
        assert time.monotonic() - started < 2

    with_fake(mode, body)


def test_slow_tracker_hits_the_time_cap() -> None:
    async def body(fake: FakeUdpTracker) -> None:
        started = time.monotonic()
        with pytest.raises(TrackerError, match="timed out"):
            await announce(fake.url, IH, peer_id=PEER_ID, port=1, timeout=0.4)
        assert time.monotonic() - started < 1.0

    with_fake("slow", body, delay=3.0)


def test_huge_answer_is_capped() -> None:
    async def body(fake: FakeUdpTracker) -> None:
        result = await announce(fake.url, IH, peer_id=PEER_ID, port=1, timeout=2, max_peers=200)
        assert len(result.peers) == 200

    with_fake("huge", body)


def test_closed_port_fails_fast() -> None:
    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TrackerError) as info:
            await announce(f"udp://127.0.0.1:{port}", IH, peer_id=PEER_ID, port=1, timeout=3)
        assert info.value.reason == "network error: Connection refused"
        assert time.monotonic() - started < 1.0

    run(main())


def test_udp_scrape_end_to_end_splits_long_lists() -> None:
    async def body(fake: FakeUdpTracker) -> None:
        hashes = [i.to_bytes(20, "big") for i in range(100)]
        stats = await scrape(fake.url, hashes, timeout=2)
        assert len(stats) == 100 and stats[hashes[99]] == ScrapeStats(4, 5, 6)
        kinds = [d[8:12] for d in fake.received]
        assert kinds.count(b"\x00\x00\x00\x00") == 1 and kinds.count(b"\x00\x00\x00\x02") == 2

    with_fake("honest", body)


def test_cancelled_announce_leaves_nothing_behind() -> None:
    async def body(fake: FakeUdpTracker) -> None:
        host, port = fake.url[len("udp://") :].split("/")[0].split(":")
        async with await UdpTracker.open(host, int(port), retry_schedule=FAST) as tracker:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(tracker.announce(request()), 0.1)
            assert tracker.client.get_timer() is None

    with_fake("silent", body)
