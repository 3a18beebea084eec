"""Two `UtpSocket` cores joined by a fake network path on a virtual clock.

The path delays each datagram by ``delay`` plus up to ``jitter`` seconds (so packets
reorder), drops a fraction ``loss``, duplicates a fraction ``dup``, and can be ``cut``
(a peer that vanished). No sockets and no sleeps: `run` jumps the clock from one arrival or
timer to the next, exactly as the asyncio driver would call the cores.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from magnet.utp import UtpConfig, UtpConnection, UtpEvent, UtpSocket
from magnet.utp.events import DataReceived

__all__ = ["ADDR_A", "ADDR_B", "Link"]

ADDR_A = ("127.0.0.1", 6881)
ADDR_B = ("127.0.0.2", 6882)


@dataclass
class Side:
    socket: UtpSocket
    addr: tuple[str, int]
    events: list[tuple[UtpConnection, UtpEvent]] = field(default_factory=list)
    received: dict[UtpConnection, bytearray] = field(default_factory=dict)

    def kinds(self, conn: UtpConnection) -> list[str]:
        return [type(e).__name__ for c, e in self.events if c is conn]


class Link:
    """``a`` and ``b``: the two sides; ``now``: the virtual clock, seconds."""

    def __init__(
        self,
        *,
        seed: int = 1,
        delay: float = 0.02,
        jitter: float = 0.0,
        loss: float = 0.0,
        dup: float = 0.0,
        config: UtpConfig | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.a = Side(UtpSocket(rng=random.Random(seed + 1), config=config), ADDR_A)
        self.b = Side(UtpSocket(rng=random.Random(seed + 2), config=config), ADDR_B)
        self.delay, self.jitter, self.loss, self.dup = delay, jitter, loss, dup
        self.cut = False
        self.now = 0.0
        self.datagrams = 0
        self.max_in_flight = 0
        self.hold_b = False  # b's owner stops reading: its events (and window) pile up
        self._heap: list[tuple[float, int, int, bytes]] = []
        self._seq = 0
        # Called after every step with the link; tests assert invariants there.
        self.on_step: Callable[[Link], None] | None = None

    def _sides(self) -> tuple[Side, Side]:
        return self.a, self.b

    def flush(self) -> None:
        """Send what both sides have due, then hand their events to the test."""
        for index, side in enumerate(self._sides()):
            unacked = {c: c.unacked for c in side.socket.connections()}
            sent = side.socket.datagrams_to_send(self.now)
            for conn, unacked_before in unacked.items():
                # New data goes out only within the window; a closed window is probed
                # with a single byte. (Retransmissions replace lost packets: not counted.)
                if conn.unacked > unacked_before:
                    assert conn.in_flight <= max(conn.send_window, 1), (
                        conn.in_flight,
                        conn.send_window,
                    )
                self.max_in_flight = max(self.max_in_flight, conn.in_flight)
            for data, addr in sent:
                target = 1 - index
                assert addr == self._sides()[target].addr
                self.datagrams += 1
                copies = 2 if self.rng.random() < self.dup else 1
                for _ in range(copies):
                    if self.cut or self.rng.random() < self.loss:
                        continue
                    at = self.now + self.delay + self.rng.random() * self.jitter
                    self._seq += 1
                    heapq.heappush(self._heap, (at, self._seq, target, data))
            while (
                not (side is self.b and self.hold_b)
                and (item := side.socket.next_event()) is not None
            ):
                side.events.append(item)
                conn, event = item
                if isinstance(event, DataReceived):
                    side.received.setdefault(conn, bytearray()).extend(event.data)
        if self.on_step is not None:
            self.on_step(self)

    def step(self) -> bool:
        """Advance to the next arrival or deadline; False when nothing is left to happen."""
        self.flush()
        timers = [t for s in self._sides() if (t := s.socket.get_timer()) is not None]
        arrival = self._heap[0][0] if self._heap else None
        candidates = [*timers, *([arrival] if arrival is not None else [])]
        if not candidates:
            return False
        self.now = max(self.now, min(candidates))
        while self._heap and self._heap[0][0] <= self.now:
            _, _, target, data = heapq.heappop(self._heap)
            side = self._sides()[target]
            source = self._sides()[1 - target]
            side.socket.receive_datagram(data, source.addr, self.now)
        for side in self._sides():
            deadline = side.socket.get_timer()
            if deadline is not None and deadline <= self.now:
                side.socket.handle_timer(self.now)
        self.flush()
        return True

    def run(self, until: float, stop: Callable[[], bool] | None = None) -> None:
        """Step until virtual time ``until``, quiescence, or ``stop()``."""
        while self.now < until:
            if stop is not None and stop():
                return
            if not self.step():
                return

    def open(self) -> tuple[UtpConnection, UtpConnection]:
        """Connect a to b; return (initiator, acceptor) once both are connected."""
        client = self.a.socket.connect(self.b.addr, self.now)
        self.run(
            self.now + 30, stop=lambda: bool(self.b.events) and "Connected" in self.a.kinds(client)
        )
        assert "Connected" in self.a.kinds(client)
        server = self.b.events[0][0]
        return client, server
