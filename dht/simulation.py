"""A deterministic DHT network in one process: the production core on a virtual clock.

``SimNetwork`` drives many ``DhtProtocol`` instances exactly as ``dht.io.node.Node`` drives one
(receive_datagram / datagrams_to_send / get_timer / handle_timer / next_event), but datagrams
travel through a priority queue of (time, sequence) with seeded latency and loss instead of
sockets. Nothing here touches the wall clock, so a run is reproducible from its seed, and a
network of thousands of nodes runs hours of virtual time in seconds of real time.

What the simulator shows is what ships: there is no simulated protocol, only the real one.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from dht.config import DhtConfig
from dht.events import DhtEvent, LookupDone
from dht.ids import ID_LEN, id_to_int, random_id
from dht.protocol import DhtProtocol
from dht.wire import Addr

__all__ = ["SimNetwork", "SimNode", "sim_config"]


def sim_config(**overrides: object) -> DhtConfig:
    """Production defaults, with maintenance every 10 s to keep big networks cheap to run."""
    cfg = DhtConfig(maintenance_s=10.0)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


@dataclass(eq=False)
class SimNode:
    addr: Addr
    core: DhtProtocol
    events: list[DhtEvent] = field(default_factory=list)
    alive: bool = True
    timer_at: float | None = None
    keep_events: bool = True


# Heap entries: (time, seq, kind, node, payload). kind 0 = datagram, 1 = timer.
_DATAGRAM = 0
_TIMER = 1


class SimNetwork:
    def __init__(
        self,
        seed: int = 0,
        *,
        latency: tuple[float, float] = (0.01, 0.1),
        loss: float = 0.0,
        config: DhtConfig | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.latency = latency
        self.loss = loss
        self.config = config or sim_config()
        self.nodes: dict[Addr, SimNode] = {}
        self._heap: list[tuple[float, int, int, SimNode | None, object]] = []
        self._seq = 0
        self._next_ip = 1
        self.delivered = 0
        self.lost = 0
        # Called for every datagram before delivery; return False to drop it (hostile tests).
        self.filter: Callable[[bytes, Addr, Addr], bool] | None = None

    # --- building the network ------------------------------------------------------------

    def new_addr(self) -> Addr:
        i = self._next_ip
        self._next_ip += 1
        return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 6881

    def add_node(
        self,
        *,
        addr: Addr | None = None,
        node_id: bytes | None = None,
        config: DhtConfig | None = None,
    ) -> SimNode:
        addr = addr or self.new_addr()
        core = DhtProtocol(
            node_id if node_id is not None else random_id(self.rng),
            rng=random.Random(self.rng.getrandbits(64)),
            now=self.now,
            config=config or self.config,
        )
        node = SimNode(addr, core)
        self.nodes[addr] = node
        self._after(node)
        return node

    def remove_node(self, node: SimNode) -> None:
        """The node goes silent: packets to it are lost, its timers stop."""
        node.alive = False
        self.nodes.pop(node.addr, None)

    def alive(self) -> list[SimNode]:
        return list(self.nodes.values())

    # --- running ---------------------------------------------------------------------------

    def _push(self, when: float, kind: int, node: SimNode | None, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, node, payload))

    def _after(self, node: SimNode) -> None:
        """Collect what a node wants to send, its events and its next timer."""
        core = node.core
        for data, dst in core.datagrams_to_send(self.now):
            if self.loss and self.rng.random() < self.loss:
                self.lost += 1
                continue
            lo, hi = self.latency
            self._push(self.now + self.rng.uniform(lo, hi), _DATAGRAM, None, (data, node.addr, dst))
        event = core.next_event()
        while event is not None:
            if node.keep_events:
                node.events.append(event)
            event = core.next_event()
        deadline = core.get_timer()
        if deadline is not None and (node.timer_at is None or deadline < node.timer_at):
            node.timer_at = deadline
            self._push(max(deadline, self.now), _TIMER, node, deadline)

    def step(self) -> bool:
        """Process the next scheduled action. False when there is nothing left to do."""
        if not self._heap:
            return False
        when, _, kind, node, payload = heapq.heappop(self._heap)
        self.now = max(self.now, when)
        if kind == _DATAGRAM:
            data, src, dst = cast(tuple[bytes, Addr, Addr], payload)
            target = self.nodes.get(dst)
            if target is None or (self.filter is not None and not self.filter(data, src, dst)):
                self.lost += 1
                return True
            self.delivered += 1
            target.core.receive_datagram(data, src, self.now)
            self._after(target)
        else:
            assert node is not None
            if not node.alive or node.timer_at != payload:
                return True
            node.timer_at = None
            node.core.handle_timer(self.now)
            self._after(node)
        return True

    # A driver of several cores under one scheduler (``crawl.simulation``) steps the network
    # itself: it commands cores directly, then has their output collected.
    def poll(self, node: SimNode) -> None:
        """Collect what ``node``'s core wants to send, its events and its next timer."""
        self._after(node)

    def next_due(self) -> float | None:
        """When the next datagram or timer is due (None: nothing is scheduled)."""
        return self._heap[0][0] if self._heap else None

    def run_until(self, t: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= t:
            self.step()
        self.now = max(self.now, t)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def run_until_done(self, node: SimNode, request_id: int, limit_s: float = 300.0) -> LookupDone:
        """Run until ``node`` reports ``LookupDone`` for ``request_id`` (bounded in time)."""
        end = self.now + limit_s
        while self.now <= end:
            for ev in node.events:
                if isinstance(ev, LookupDone) and ev.request_id == request_id:
                    return ev
            if not self._heap:
                break
            self.step()
        raise TimeoutError(f"lookup {request_id} not done after {limit_s} virtual seconds")

    # --- commands on a node (each followed by collecting its output) -------------------------

    def bootstrap(self, node: SimNode, routers: list[Addr]) -> int:
        rid = node.core.bootstrap(routers, self.now)
        self._after(node)
        return rid

    def find_node(self, node: SimNode, target: bytes) -> int:
        rid = node.core.find_node(target, self.now)
        self._after(node)
        return rid

    def get_peers(self, node: SimNode, info_hash: bytes) -> int:
        rid = node.core.get_peers(info_hash, self.now)
        self._after(node)
        return rid

    def announce(self, node: SimNode, info_hash: bytes, port: int) -> int:
        rid = node.core.announce(info_hash, port, self.now)
        self._after(node)
        return rid

    # --- building whole networks and checking them ----------------------------------------------

    def grow(self, count: int, *, batch: int = 50, settle_s: float = 5.0) -> list[SimNode]:
        """Add ``count`` nodes in batches, each bootstrapping from a few random older nodes."""
        added: list[SimNode] = []
        while len(added) < count:
            existing = self.alive()
            for _ in range(min(batch, count - len(added))):
                pool = existing or self.alive()  # the very first batch joins its first node
                node = self.add_node()
                if pool:
                    seeds = self.rng.sample(pool, min(3, len(pool)))
                    self.bootstrap(node, [s.addr for s in seeds])
                added.append(node)
            self.run_for(settle_s)
        return added

    def true_closest(self, target: bytes, k: int = 8) -> list[bytes]:
        t = id_to_int(target)
        ids = [n.core.node_id for n in self.nodes.values()]
        ids.sort(key=lambda i: id_to_int(i) ^ t)
        return ids[:k]

    def random_target(self) -> bytes:
        return self.rng.getrandbits(8 * ID_LEN).to_bytes(ID_LEN, "big")
