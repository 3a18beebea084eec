"""Many uTP connections over one UDP port, sans-IO (BEP 29 "connection setup").

`UtpSocket` is what a driver puts behind one UDP socket. It routes each received datagram
to its connection by (peer address, connection id), creates a connection for an unseen
ST_SYN (at most ``max_connections`` in all and ``max_incoming_per_ip`` per peer address, so
a SYN flood costs bounded memory), answers packets for connections it does not know with
ST_RESET (20 bytes, never larger than what provoked it: no amplification), and forgets
connections once they are finished and their events taken.

libtorrent shares this port with the DHT; `is_utp` tells the two apart before parsing: a
KRPC message is a bencoded dictionary and starts with ``d``, which as a uTP first byte
would be type 6, version 4, neither of which exists.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from typing import Final

from magnet.utp.connection import UtpConfig, UtpConnection
from magnet.utp.events import UtpEvent, UtpUsageError
from magnet.utp.header import (
    HEADER_SIZE,
    ST_RESET,
    ST_SYN,
    VERSION,
    Packet,
    UtpError,
    encode,
    parse,
    seq_add,
)

__all__ = ["Addr", "UtpSocket", "is_utp"]

Addr = tuple[str, int]

_MAX_QUEUED_RESETS: Final = 64
_MAX_TYPE: Final = ST_SYN


def is_utp(data: bytes) -> bool:
    """Whether ``data`` looks like a uTP packet (version 1, a known type, a whole header)."""
    return len(data) >= HEADER_SIZE and data[0] & 0x0F == VERSION and data[0] >> 4 <= _MAX_TYPE


class UtpSocket:
    """The uTP connections of one UDP port.

    :param rng: connection ids and initial sequence numbers for every connection.
    :param accept_incoming: whether an ST_SYN from a stranger opens a connection.
    """

    def __init__(
        self,
        *,
        rng: random.Random,
        config: UtpConfig | None = None,
        accept_incoming: bool = True,
        max_connections: int = 512,
        max_incoming_per_ip: int = 8,
    ) -> None:
        self.config = config or UtpConfig()
        self.accept_incoming = accept_incoming
        self.max_connections = max_connections
        self.max_incoming_per_ip = max_incoming_per_ip
        self.dropped = 0  # datagrams that did not parse
        self.refused = 0  # SYNs over a limit
        self.resets_sent = 0
        self._rng = rng
        self._conns: dict[tuple[Addr, int], UtpConnection] = {}
        self._addr: dict[UtpConnection, Addr] = {}
        self._incoming_per_ip: Counter[str] = Counter()
        self._resets: deque[tuple[bytes, Addr]] = deque()

    def __len__(self) -> int:
        return len(self._conns)

    def connections(self) -> list[UtpConnection]:
        return list(self._addr)

    def address_of(self, conn: UtpConnection) -> Addr:
        return self._addr[conn]

    def connect(self, addr: Addr, now: float) -> UtpConnection:
        """Open a connection to ``addr``: its ST_SYN goes out with `datagrams_to_send`."""
        if len(self._conns) >= self.max_connections:
            raise UtpUsageError(f"already {len(self._conns)} uTP connections")
        conn = UtpConnection(rng=self._rng, config=self.config)
        while True:
            recv_id = self._rng.randrange(0x10000)
            if (addr, recv_id) not in self._conns:
                break
        conn.connect(now, recv_id=recv_id)
        self._conns[addr, recv_id] = conn
        self._addr[conn] = addr
        return conn

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> UtpConnection | None:
        """Route one datagram; return the connection it went to (a new one for a SYN)."""
        try:
            packet = parse(data)
        except UtpError:
            self.dropped += 1
            return None
        cid = packet.connection_id
        if packet.type == ST_SYN:
            # A SYN names the initiator's receive id; ours for it is that plus one, so a
            # retransmitted SYN finds the connection it already opened.
            cid = seq_add(cid, 1)
        conn = self._conns.get((addr, cid))
        if conn is None and packet.type == ST_RESET:
            conn = self._by_send_id(addr, cid)
        if conn is not None:
            conn.receive_packet(packet, now)
            return conn
        if packet.type == ST_SYN:
            return self._accept(packet, addr, now)
        if packet.type != ST_RESET:
            self._queue_reset(packet, addr, now)
        return None

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        """Every datagram due now, on every connection, with its destination."""
        out: list[tuple[bytes, Addr]] = []
        while self._resets:
            out.append(self._resets.popleft())
        for conn, addr in self._addr.items():
            out.extend((data, addr) for data in conn.datagrams_to_send(now))
        self._reap()
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline of any connection."""
        deadlines = [t for conn in self._addr if (t := conn.get_timer()) is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        for conn in list(self._addr):
            deadline = conn.get_timer()
            if deadline is not None and deadline <= now:
                conn.handle_timer(now)
        self._reap()

    def next_event(self) -> tuple[UtpConnection, UtpEvent] | None:
        """The next event of any connection, with the connection it belongs to."""
        for conn in self._addr:
            event = conn.next_event()
            if event is not None:
                return conn, event
        self._reap()
        return None

    def _accept(self, syn: Packet, addr: Addr, now: float) -> UtpConnection | None:
        if (
            not self.accept_incoming
            or len(self._conns) >= self.max_connections
            or self._incoming_per_ip[addr[0]] >= self.max_incoming_per_ip
        ):
            self.refused += 1
            return None
        conn = UtpConnection(rng=self._rng, config=self.config)
        conn.accept(syn, now)
        self._conns[addr, conn.recv_id] = conn
        self._addr[conn] = addr
        self._incoming_per_ip[addr[0]] += 1
        return conn

    def _by_send_id(self, addr: Addr, cid: int) -> UtpConnection | None:
        # Peers differ on which id a reset carries; accept our send id as well.
        for conn, conn_addr in self._addr.items():
            if conn_addr == addr and conn.send_id == cid:
                return conn
        return None

    def _queue_reset(self, packet: Packet, addr: Addr, now: float) -> None:
        if len(self._resets) >= _MAX_QUEUED_RESETS:
            return
        reset = Packet(
            type=ST_RESET,
            connection_id=packet.connection_id,
            timestamp_us=int(now * 1_000_000),
            timestamp_difference_us=0,
            wnd_size=0,
            seq_nr=self._rng.randrange(0x10000),
            ack_nr=packet.seq_nr,
        )
        self._resets.append((encode(reset), addr))
        self.resets_sent += 1

    def _reap(self) -> None:
        finished = [conn for conn in self._addr if conn.is_finished]
        for conn in finished:
            addr = self._addr.pop(conn)
            del self._conns[addr, conn.recv_id]
            if not conn.initiator:
                self._incoming_per_ip[addr[0]] -= 1
                if self._incoming_per_ip[addr[0]] <= 0:
                    del self._incoming_per_ip[addr[0]]
