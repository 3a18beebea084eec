"""The crawl on the simulator: a ``CrawlEngine`` on ``dht.simulation.SimNetwork``'s clock.

Each endpoint core of the engine joins the network as a node at an address of its own, so
the network moves its datagrams and fires its timers exactly as for any other node. This
driver hands the cores' events to the engine and wakes the engine at its deadlines,
stepping the network one action at a time so that the engine reacts at the virtual
instant an answer lands. What the engine says is recorded into a sink (``MemorySink``, or
anything with ``CrawlStore.record_hash``): a crawl of thousands of nodes runs in one
process in seconds, with no sockets and no sleeps.

``populate`` builds a network to crawl cheaply: nodes whose routing tables are filled
straight from the true neighbourhood plus random far nodes, instead of by bootstrapping.
Metadata resolution (BEP 9, over TCP) is not simulated.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol

from crawl.engine import CrawlEngine, spread_ids
from crawl.events import (
    CrawlStalled,
    HashObserved,
    NodeAnswered,
    PeersLookedUp,
    SamplesReceived,
)
from crawl.scheduler import SchedulerConfig
from dht.protocol import DhtConfig
from dht.simulation import SimNetwork, SimNode
from dht.wire import Addr

__all__ = ["HashSink", "MemorySink", "SimCrawler", "populate"]


class HashSink(Protocol):
    """Where sightings go; ``CrawlStore`` is one. Returns True for an info-hash new to it."""

    def record_hash(
        self,
        info_hash: bytes,
        wall: float,
        how: str,
        node: Addr | None,
        node_id: bytes | None = None,
        peer: Addr | None = None,
    ) -> bool: ...


class MemorySink:
    """Sightings in memory: how often each info-hash was seen, and how first."""

    def __init__(self) -> None:
        self.seen: dict[bytes, int] = {}
        self.how: dict[bytes, str] = {}

    def record_hash(
        self,
        info_hash: bytes,
        wall: float,
        how: str,
        node: Addr | None,
        node_id: bytes | None = None,
        peer: Addr | None = None,
    ) -> bool:
        count = self.seen.get(info_hash, 0)
        self.seen[info_hash] = count + 1
        if not count:
            self.how[info_hash] = how
        return not count


class SimCrawler:
    """A crawl from ``ids`` node ids on ``sim``, starting at ``seeds``."""

    def __init__(
        self,
        sim: SimNetwork,
        seeds: Sequence[Addr],
        *,
        ids: int = 1,
        schedule: SchedulerConfig | None = None,
        dht: DhtConfig | None = None,
        sink: HashSink | None = None,
        seed: int = 0,
        startup_timeout_s: float = 20.0,
    ) -> None:
        self.sim = sim
        self.sink: HashSink = sink if sink is not None else MemorySink()
        rng = random.Random(seed)
        self.engine = CrawlEngine(
            spread_ids(ids, rng),
            rng=rng,
            now=sim.now,
            schedule=schedule,
            dht=dht,
            startup_timeout_s=startup_timeout_s,
        )
        self.nodes: list[SimNode] = []
        for endpoint in self.engine.endpoints:
            addr = sim.new_addr()
            node = SimNode(addr, endpoint.core)
            sim.nodes[addr] = node
            self.engine.set_local(addr)
            self.nodes.append(node)
        self.new_hashes = 0  # info-hashes new to the sink
        self.node_rows: dict[Addr, NodeAnswered] = {}  # the latest numbers of each node
        self.lookups: dict[int, PeersLookedUp] = {}
        self.stalled: str | None = None
        self.engine.add_seeds(seeds, sim.now)
        self._poll()

    # --- running -----------------------------------------------------------------------------

    def run_until(self, t: float, until: Callable[[], bool] | None = None) -> bool:
        """Run the network and the crawl to virtual time ``t``, or until ``until()`` holds
        (checked after every action; returns whether it held)."""
        sim, engine = self.sim, self.engine
        while until is None or not until():
            due = sim.next_due()
            wake = engine.get_timer()
            if wake is not None and wake <= t and (due is None or wake < due):
                sim.run_until(wake)  # nothing else is due before: only the clock moves
                engine.handle_timer(sim.now)
                self._poll()
                continue
            if due is None or due > t:
                sim.run_until(t)
                return False
            sim.step()
            self._feed()
        return True

    def run_for(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        return self.run_until(self.sim.now + seconds, until)

    def find_peers(self, info_hash: bytes) -> int:
        handle = self.engine.find_peers(info_hash, self.sim.now)
        self._poll()
        return handle

    # --- plumbing ----------------------------------------------------------------------------

    def _feed(self) -> None:
        """Hand the events the network collected from our cores to the engine."""
        fed = False
        now = self.sim.now
        for i, node in enumerate(self.nodes):
            if node.events:
                for event in node.events:
                    self.engine.on_core_event(i, event, now)
                node.events.clear()
                fed = True
        if fed:
            self.engine.handle_timer(now)
            self._poll()

    def _poll(self) -> None:
        for node in self.nodes:
            self.sim.poll(node)
        self._feed_events()

    def _feed_events(self) -> None:
        engine, now = self.engine, self.sim.now
        event = engine.next_event()
        while event is not None:
            if isinstance(event, SamplesReceived):
                new = 0
                for h in event.hashes:
                    new += self.sink.record_hash(h, now, "sample", event.addr, event.node_id)
                self.new_hashes += new
                engine.sampled_yield(event.addr, new, now)
            elif isinstance(event, HashObserved):
                self.new_hashes += self.sink.record_hash(
                    event.info_hash, now, event.method, event.addr, None, event.peer
                )
            elif isinstance(event, NodeAnswered):
                self.node_rows[event.addr] = event
            elif isinstance(event, PeersLookedUp):
                self.lookups[event.lookup] = event
            elif isinstance(event, CrawlStalled):
                self.stalled = event.reason
            event = engine.next_event()


def populate(
    sim: SimNetwork,
    count: int,
    *,
    config: DhtConfig | None = None,
    neighbours: int = 8,
    far: int = 24,
) -> list[SimNode]:
    """``count`` nodes whose tables hold their ``neighbours`` closest on each side (by id
    order) and ``far`` random others, as if they had met: a network in milliseconds."""
    nodes = [sim.add_node(config=config) for _ in range(count)]
    order = sorted(nodes, key=lambda n: n.core.node_id)
    now = sim.now
    for i, node in enumerate(order):
        table = node.core.routing
        near = order[max(0, i - neighbours) : i] + order[i + 1 : i + 1 + neighbours]
        for other in near + sim.rng.sample(nodes, min(far, count)):
            if other is not node:
                table.node_seen(other.core.node_id, other.addr, now)
    return nodes
