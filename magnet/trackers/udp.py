"""BEP 15 UDP tracker client, sans-IO: `UdpTrackerClient`, its events and its wire format.

The client speaks to one tracker address. It obtains a connection id (action 0) and keeps it
`CONNECTION_TTL_S` seconds, so later announces (action 1) and scrapes (action 2) within that
time skip the handshake; an error (action 3) fails the request with the tracker's words.
BEP 41 URLData options carry the URL's path and query. Lost packets are resent on a short
caller-chosen schedule rather than BEP 15's 15·2^n s, which suits a resolver that gives a
tracker a few seconds at most. Hostile input (short, unknown transaction, wrong action, huge
peer lists) is dropped or capped and counted, never raised. No sockets, clock or asyncio
here: `magnet.io.udp_tracker.UdpTracker` drives it on a datagram socket.
"""

from __future__ import annotations

import ipaddress
import math
import random
import struct
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from dht.wire import Addr
from magnet.trackers.messages import (
    MAX_PEERS,
    AnnounceRequest,
    ScrapeStats,
    decode_compact_peers,
    tracker_text,
)

__all__ = [
    "CONNECTION_TTL_S",
    "DEFAULT_RETRY_SCHEDULE_S",
    "MAX_SCRAPE_HASHES",
    "PROTOCOL_ID",
    "Announced",
    "Scraped",
    "TrackerEvent",
    "TrackerFailed",
    "UdpTrackerClient",
    "encode_url_data",
]

#: The magic connection id of a connect request (BEP 15).
PROTOCOL_ID: Final = 0x41727101980
ACTION_CONNECT: Final = 0
ACTION_ANNOUNCE: Final = 1
ACTION_SCRAPE: Final = 2
ACTION_ERROR: Final = 3

#: BEP 15: a client may use a connection id for one minute after it arrives.
CONNECTION_TTL_S: Final = 60.0
#: Seconds to wait for each attempt; the number of entries is the number of attempts.
DEFAULT_RETRY_SCHEDULE_S: Final = (0.5, 1.0, 2.0)
#: BEP 15: "up to about 74 torrents can be scraped at once" (74 * 20 + 16 < 1500 bytes).
MAX_SCRAPE_HASHES: Final = 74

_HEADER = struct.Struct("!II")  # action, transaction_id: the start of every answer
# Every request opens with connection_id, action, transaction_id (for connect, the id is
# PROTOCOL_ID).
_REQUEST_HEAD = struct.Struct("!QII")
_CONNECTED = struct.Struct("!IIQ")  # action, transaction_id, connection_id
# info_hash, peer_id, downloaded, left, uploaded, event, IP address, key, num_want, port:
# with the head, 98 bytes.
_ANNOUNCE_BODY = struct.Struct("!20s20sQQQIIIiH")
_ANNOUNCED = struct.Struct("!IIIII")  # action, transaction_id, interval, leechers, seeders
_SCRAPE_ENTRY = struct.Struct("!III")  # seeders, completed, leechers

# Drop reasons: fixed strings, so that `UdpTrackerClient.dropped` counts kinds.
DROP_SOURCE: Final = "not from the tracker's address"
DROP_SHORT: Final = "shorter than 8 bytes"
DROP_UNKNOWN_TID: Final = "unknown transaction id"
DROP_WRONG_ACTION: Final = "wrong action for its transaction"
DROP_TRUNCATED: Final = "truncated"


@dataclass(frozen=True, slots=True)
class Announced:
    """The tracker answered announce ``request_id`` (peers capped at ``max_peers``)."""

    request_id: int
    peers: tuple[Addr, ...]
    interval: int
    seeders: int
    leechers: int


@dataclass(frozen=True, slots=True)
class Scraped:
    """The tracker answered scrape ``request_id``; hashes it left out are absent."""

    request_id: int
    stats: dict[bytes, ScrapeStats]


@dataclass(frozen=True, slots=True)
class TrackerFailed:
    """Request ``request_id`` is over without an answer; ``reason`` is one human line."""

    request_id: int
    reason: str


TrackerEvent = Announced | Scraped | TrackerFailed


def encode_url_data(url_data: bytes) -> bytes:
    """BEP 41 options carrying ``url_data`` (path and query): URLData chunks of <= 255 bytes."""
    out = bytearray()
    for i in range(0, len(url_data), 255):
        chunk = url_data[i : i + 255]
        out += bytes((2, len(chunk))) + chunk
    return bytes(out)


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


@dataclass(slots=True)
class _Pending:
    """One announce or scrape: its body (after the 16-byte header) and its retry state."""

    request_id: int
    action: int
    body: bytes
    info_hashes: tuple[bytes, ...]
    tid: int
    started: float
    give_up_at: float
    attempt: int = 0
    resend_at: float | None = None  # None: waiting for a connection id


class UdpTrackerClient:
    """Sans-IO BEP 15 client for one tracker address, aioquic-shaped.

    Commands: `announce`, `scrape`, `cancel`, `abort`. Feed it `receive_datagram` and
    `handle_timer`; take `datagrams_to_send`, `get_timer`, `next_event`. Several requests
    may be under way at once; they share the connection id.

    :param addr: the tracker's resolved ``(ip, port)``; an IPv6 address means 18-byte peers.
    :param rng: source of transaction ids.
    :param retry_schedule: seconds to wait after each attempt; its length is the attempt cap.
    :param timeout: default cap in seconds on one request, connect included (None: only
        the schedule bounds it).
    :param max_peers: peers decoded from one answer at most.
    :param url_data: the tracker URL's path and query, sent as BEP 41 URLData.
    """

    def __init__(
        self,
        addr: Addr,
        *,
        rng: random.Random,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE_S,
        timeout: float | None = None,
        connection_ttl: float = CONNECTION_TTL_S,
        max_peers: int = MAX_PEERS,
        url_data: bytes = b"",
    ) -> None:
        if not retry_schedule or min(retry_schedule) <= 0:
            raise ValueError("retry_schedule needs at least one positive delay")
        ip = ipaddress.ip_address(addr[0])
        self.addr: Addr = (ip.compressed, addr[1])
        self.v6 = ip.version == 6
        self._rng = rng
        self._schedule = tuple(retry_schedule)
        self._timeout = timeout
        self._ttl = connection_ttl
        self._max_peers = max_peers
        self._options = encode_url_data(url_data)

        self._connection_id: int | None = None
        self._connection_expires = -math.inf
        # The connect exchange under way, shared by every request waiting for an id.
        self._connect_tid: int | None = None
        self._connect_attempt = 0
        self._connect_resend_at = math.inf

        self._pending: dict[int, _Pending] = {}  # by transaction id
        self._next_request_id = 1
        self._outbox: list[tuple[bytes, Addr]] = []
        self._events: deque[TrackerEvent] = deque()
        #: Dropped datagrams by reason (the DROP_* strings).
        self.dropped: Counter[str] = Counter()
        #: Datagrams queued for sending, by action: "connect", "announce", "scrape".
        self.sent: Counter[str] = Counter()

    # --- commands -----------------------------------------------------------------------

    def announce(
        self, request: AnnounceRequest, now: float, *, timeout: float | None = None
    ) -> int:
        """Start an announce; its outcome is an `Announced` or `TrackerFailed` event."""
        body = _ANNOUNCE_BODY.pack(
            request.info_hash,
            request.peer_id,
            request.downloaded,
            request.left,
            request.uploaded,
            int(request.event),
            0,  # IP address: 0 asks the tracker to use the packet's source
            request.key,
            request.num_want,
            request.port,
        )
        return self._start(ACTION_ANNOUNCE, body + self._options, (), now, timeout)

    def scrape(
        self, info_hashes: Sequence[bytes], now: float, *, timeout: float | None = None
    ) -> int:
        """Start a scrape of 1..`MAX_SCRAPE_HASHES` torrents; ends in `Scraped`/`TrackerFailed`."""
        hashes = tuple(info_hashes)
        if not 1 <= len(hashes) <= MAX_SCRAPE_HASHES:
            raise ValueError(f"scrape takes 1 to {MAX_SCRAPE_HASHES} info hashes")
        if any(len(h) != 20 for h in hashes):
            raise ValueError("info hashes are 20 bytes")
        return self._start(ACTION_SCRAPE, b"".join(hashes), hashes, now, timeout)

    def cancel(self, request_id: int) -> None:
        """Forget a request without an event (its answer, if any, is then dropped)."""
        for tid, p in list(self._pending.items()):
            if p.request_id == request_id:
                del self._pending[tid]
        self._stop_connect_if_unwanted()

    def abort(self, reason: str) -> None:
        """Fail every request with ``reason`` (the driver saw the socket fail) and forget the id."""
        for p in list(self._pending.values()):
            self._fail(p, reason)
        self._connection_id = None
        self._connection_expires = -math.inf
        self._stop_connect_if_unwanted()

    # --- the five calls of the driver ---------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> TrackerEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadlines = [self._connect_resend_at] if self._connect_tid is not None else []
        for p in self._pending.values():
            deadlines.append(p.give_up_at)
            if p.resend_at is not None:
                deadlines.append(p.resend_at)
        deadline = min(deadlines, default=math.inf)
        return None if deadline == math.inf else deadline

    def handle_timer(self, now: float) -> None:
        for p in list(self._pending.values()):
            if now >= p.give_up_at:
                self._fail(p, f"timed out after {p.give_up_at - p.started:.1f} s")

        if self._connect_tid is not None and now >= self._connect_resend_at:
            self._connect_attempt += 1
            if self._connect_attempt < len(self._schedule):
                self._send_connect(now)
            else:
                self._connect_tid = None
                self._connect_resend_at = math.inf
                reason = f"timed out after {_attempts(self._connect_attempt)} (no connect answer)"
                for p in list(self._pending.values()):
                    if p.resend_at is None:
                        self._fail(p, reason)

        for p in list(self._pending.values()):
            if p.resend_at is None or now < p.resend_at:
                continue
            p.attempt += 1
            if p.attempt >= len(self._schedule):
                self._fail(p, f"timed out after {_attempts(p.attempt)}")
            elif now < self._connection_expires:
                self._send_request(p, now)
            else:
                # The id went stale while we waited: BEP 15 wants a fresh one.
                p.attempt = 0
                p.resend_at = None
                self._ensure_connect(now)
        self._stop_connect_if_unwanted()

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> str | None:
        """Take one datagram; returns why it was dropped, or None if it was used."""
        if (addr[0], addr[1]) != self.addr:
            return self._drop(DROP_SOURCE)
        if len(data) < 8:
            return self._drop(DROP_SHORT)
        action, tid = _HEADER.unpack_from(data)

        if tid == self._connect_tid:
            if action == ACTION_ERROR:
                self._connect_failed(f"tracker said: {tracker_text(data[8:])}")
                return None
            if action != ACTION_CONNECT:
                return self._drop(DROP_WRONG_ACTION)
            if len(data) < _CONNECTED.size:
                return self._drop(DROP_TRUNCATED)
            self._connected(_CONNECTED.unpack_from(data)[2], now)
            return None

        pending = self._pending.get(tid)
        if pending is None:
            return self._drop(DROP_UNKNOWN_TID)
        if action == ACTION_ERROR:
            self._fail(pending, f"tracker said: {tracker_text(data[8:])}")
            return None
        if action != pending.action:
            return self._drop(DROP_WRONG_ACTION)
        # A request waiting for a fresh connection id may still get the answer to an earlier
        # attempt: it counts, and the connect may then be unwanted.
        if action == ACTION_ANNOUNCE:
            why = self._announced(pending, data)
        else:
            why = self._scraped(pending, data)
        self._stop_connect_if_unwanted()
        return why

    # --- answers ------------------------------------------------------------------------

    def _connected(self, connection_id: int, now: float) -> None:
        self._connect_tid = None
        self._connect_resend_at = math.inf
        self._connection_id = connection_id
        self._connection_expires = now + self._ttl
        for p in self._pending.values():
            if p.resend_at is None:
                p.attempt = 0
                self._send_request(p, now)

    def _connect_failed(self, reason: str) -> None:
        self._connect_tid = None
        self._connect_resend_at = math.inf
        for p in list(self._pending.values()):
            if p.resend_at is None:
                self._fail(p, reason)

    def _announced(self, pending: _Pending, data: bytes) -> str | None:
        if len(data) < _ANNOUNCED.size:
            return self._drop(DROP_TRUNCATED)
        _, _, interval, leechers, seeders = _ANNOUNCED.unpack_from(data)
        peers = decode_compact_peers(data[_ANNOUNCED.size :], v6=self.v6, limit=self._max_peers)
        del self._pending[pending.tid]
        self._events.append(
            Announced(pending.request_id, tuple(peers), interval, seeders, leechers)
        )
        return None

    def _scraped(self, pending: _Pending, data: bytes) -> str | None:
        count = min((len(data) - 8) // _SCRAPE_ENTRY.size, len(pending.info_hashes))
        if count < 1:
            return self._drop(DROP_TRUNCATED)
        stats = {
            pending.info_hashes[i]: ScrapeStats(
                *_SCRAPE_ENTRY.unpack_from(data, 8 + i * _SCRAPE_ENTRY.size)
            )
            for i in range(count)
        }
        del self._pending[pending.tid]
        self._events.append(Scraped(pending.request_id, stats))
        return None

    # --- sending ------------------------------------------------------------------------

    def _start(
        self,
        action: int,
        body: bytes,
        info_hashes: tuple[bytes, ...],
        now: float,
        timeout: float | None,
    ) -> int:
        request_id = self._next_request_id
        self._next_request_id += 1
        cap = timeout if timeout is not None else self._timeout
        pending = _Pending(
            request_id=request_id,
            action=action,
            body=body,
            info_hashes=info_hashes,
            tid=self._new_tid(),
            started=now,
            give_up_at=now + cap if cap is not None else math.inf,
        )
        self._pending[pending.tid] = pending
        if now < self._connection_expires:
            self._send_request(pending, now)
        else:
            self._ensure_connect(now)
        return request_id

    def _ensure_connect(self, now: float) -> None:
        if self._connect_tid is None:
            self._connect_tid = self._new_tid()
            self._connect_attempt = 0
            self._send_connect(now)

    def _send_connect(self, now: float) -> None:
        # The same transaction id on every attempt: a late answer to an earlier one still counts.
        assert self._connect_tid is not None
        packet = _REQUEST_HEAD.pack(PROTOCOL_ID, ACTION_CONNECT, self._connect_tid)
        self._outbox.append((packet, self.addr))
        self.sent["connect"] += 1
        self._connect_resend_at = now + self._schedule[self._connect_attempt]

    def _send_request(self, p: _Pending, now: float) -> None:
        assert self._connection_id is not None
        head = _REQUEST_HEAD.pack(self._connection_id, p.action, p.tid)
        self._outbox.append((head + p.body, self.addr))
        self.sent["announce" if p.action == ACTION_ANNOUNCE else "scrape"] += 1
        p.resend_at = now + self._schedule[p.attempt]

    def _stop_connect_if_unwanted(self) -> None:
        if self._connect_tid is not None and all(
            p.resend_at is not None for p in self._pending.values()
        ):
            self._connect_tid = None
            self._connect_resend_at = math.inf

    def _new_tid(self) -> int:
        while True:
            tid = self._rng.getrandbits(32)
            if tid not in self._pending and tid != self._connect_tid:
                return tid

    def _fail(self, p: _Pending, reason: str) -> None:
        del self._pending[p.tid]
        self._events.append(TrackerFailed(p.request_id, reason))

    def _drop(self, reason: str) -> str:
        self.dropped[reason] += 1
        return reason
