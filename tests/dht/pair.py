"""Two DHT cores wired to each other on a virtual clock, for tests (the ``pair`` fixture).

In the manner of h11's ``ConnectionPair`` and aioquic's ``client_and_server``: no sockets, no
event loop, no wall clock. ``transfer`` moves what each core wants to send to the other one;
``run`` does so until both are quiet; ``advance`` moves the clock, firing the cores' timers on
the way. Datagrams to any other address are lost (counted), and ``drop`` may lose chosen ones.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from dht.config import DhtConfig
from dht.events import DhtEvent
from dht.protocol import DhtProtocol
from dht.wire import Addr

__all__ = ["A_ADDR", "B_ADDR", "CorePair"]

A_ADDR: Addr = ("9.0.0.10", 6881)
B_ADDR: Addr = ("9.0.0.11", 6882)


class CorePair:
    def __init__(
        self,
        *,
        a: DhtConfig | None = None,
        b: DhtConfig | None = None,
        seed: int = 1,
        latency: float = 0.01,
    ) -> None:
        self.now = 0.0
        self.latency = latency
        self.a = DhtProtocol(b"a" * 20, rng=random.Random(seed), now=0.0, config=a)
        self.b = DhtProtocol(b"b" * 20, rng=random.Random(seed + 1), now=0.0, config=b)
        self.addr = {self.a: A_ADDR, self.b: B_ADDR}
        self._cores = {A_ADDR: self.a, B_ADDR: self.b}
        self.events: dict[DhtProtocol, list[DhtEvent]] = {self.a: [], self.b: []}
        # Return True to lose a datagram (data, source, destination).
        self.drop: Callable[[bytes, Addr, Addr], bool] | None = None
        self.lost = 0

    def events_of(self, core: DhtProtocol) -> list[DhtEvent]:
        """Every event ``core`` has reported so far (collected on each transfer)."""
        self._collect()
        return self.events[core]

    def _collect(self) -> None:
        for core in (self.a, self.b):
            while (ev := core.next_event()) is not None:
                self.events[core].append(ev)

    def transfer(self) -> int:
        """One hop: what each core has to send reaches the other after ``latency``. Returns
        how many datagrams were sent (lost ones included)."""
        flights = []
        for core in (self.a, self.b):
            src = self.addr[core]
            for data, dst in core.datagrams_to_send(self.now):
                flights.append((data, src, dst))
        self._collect()
        if not flights:
            return 0
        self.now += self.latency
        for data, src, dst in flights:
            target = self._cores.get(dst)
            if target is None or (self.drop is not None and self.drop(data, src, dst)):
                self.lost += 1
                continue
            target.receive_datagram(data, src, self.now)
        self._collect()
        return len(flights)

    def run(self, max_hops: int = 100) -> None:
        """Transfer until neither core has anything to send."""
        for _ in range(max_hops):
            if not self.transfer():
                return
        raise AssertionError(f"still talking after {max_hops} hops")

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, firing each core's timer when it falls due and
        delivering what the cores send on the way."""
        end = self.now + seconds
        while True:
            self.run()
            due = [t for t in (self.a.get_timer(), self.b.get_timer()) if t is not None]
            nxt = min(due) if due else None
            if nxt is None or nxt > end:
                break
            self.now = max(self.now, nxt)
            for core in (self.a, self.b):
                timer = core.get_timer()
                if timer is not None and timer <= self.now:
                    core.handle_timer(self.now)
        self.now = max(self.now, end)
        self._collect()
