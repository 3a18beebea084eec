"""The crawl on asyncio: ``dht.Node`` sockets carrying out a ``CrawlScheduler``'s queries.

``Crawler`` owns one or more DHT nodes (``ids``: distinct node ids on consecutive ports, to
observe more of the keyspace) that answer queries like any node (not read-only: other nodes
put us in their tables and send us their get_peers and announce_peer, which we record, BEP
5). It sends what the scheduler picks, feeds answers back, writes what it learns to a
``CrawlStore``, and optionally resolves metadata (BEP 9) of new info-hashes with bounded
concurrency through ``magnet.io.resolve.resolve`` over its own node. No protocol decisions live
here; this module moves queries and keeps time.

The nodes' cores never walk the DHT on their own (bucket refresh is off, and no core lookup
is started except by metadata resolution), so every query to an address learned from the
DHT passes the crawl's address policy (``dht.addresses.AddressPolicy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from crawl.health import Counters, HealthMeter
from crawl.io.store import CrawlStore, FileRow, NodeRow
from crawl.scheduler import (
    CrawlQuery,
    CrawlScheduler,
    CrawlStats,
    NodeRecord,
    SchedulerConfig,
    Support,
)
from dht.addresses import AddressClass, AddressPolicy, classify
from dht.events import DhtEvent, InfoHashSeen
from dht.io.node import DhtQueryError, Node
from dht.protocol import DhtConfig
from dht.wire import Addr, Response

__all__ = ["CrawlConfig", "CrawlError", "CrawlReport", "Crawler", "spread_ids"]

log = logging.getLogger("crawl")

TICK_S = 0.25  # housekeeping: flushes, progress, health, start-up check


@dataclass(slots=True)
class CrawlConfig:
    host: str = "0.0.0.0"
    port: int = 6881  # first port; node i binds port + i (0: any free ports)
    ids: int = 1
    bootstrap: Sequence[Addr] | None = None  # None: the public routers
    schedule: SchedulerConfig = field(default_factory=SchedulerConfig)
    allow_private: bool = False  # send to private/loopback addresses learned from the DHT
    metadata: bool = False
    metadata_concurrency: int = 8
    metadata_timeout_s: float = 30.0
    metadata_connections: int = 8  # peer connections per resolve
    metadata_queue: int = 10_000  # info-hashes waiting for resolution; more are skipped
    stats_interval_s: float = 60.0
    query_timeout_s: float = 4.0
    startup_timeout_s: float = 20.0  # no node answered by then: the crawl fails
    sample_interval_s: int = 6 * 3600  # BEP 51 interval our own nodes ask of others
    seed: int | None = None  # for the scheduler's random choices (tests, benchmarks)


class CrawlError(Exception):
    """The crawl could not run (nothing resolved, nobody answered); one line why."""


@dataclass(slots=True)
class CrawlReport:
    seconds: float
    counters: Counters
    health: dict[str, object]


def spread_ids(count: int, rng: random.Random) -> list[bytes]:
    """``count`` node ids, one in each of ``count`` equal slices of the keyspace."""
    span = (1 << 160) // count
    return [(i * span + rng.randrange(span)).to_bytes(20, "big") for i in range(count)]


class Crawler:
    def __init__(
        self,
        config: CrawlConfig,
        store: CrawlStore,
        *,
        on_health: Callable[[dict[str, object]], None] | None = None,
        on_progress: Callable[[dict[str, object]], None] | None = None,
    ) -> None:
        if config.ids < 1:
            raise ValueError("ids must be at least 1")
        self.config = config
        self.store = store
        self.on_health = on_health
        self.on_progress = on_progress
        self.rng = random.Random(config.seed) if config.seed is not None else random.SystemRandom()
        self.policy = (
            AddressPolicy(allow_private=True, allow_loopback=True)
            if config.allow_private
            else AddressPolicy.for_bind(config.host)
        )
        self.nodes: list[Node] = []
        self.scheduler: CrawlScheduler | None = None
        self._families: set[int] = set()
        self._own_ports: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._meta_queue: asyncio.Queue[tuple[bytes, Addr | None]] = asyncio.Queue(
            max(1, config.metadata_queue)
        )
        self.passive = 0
        self.metadata_ok = 0
        self.metadata_failed = 0
        self.metadata_skipped = 0  # queue full
        self._seeds: list[Addr] = []

    # --- life cycle --------------------------------------------------------------------------

    async def run(
        self, *, duration: float | None = None, stop: asyncio.Event | None = None
    ) -> CrawlReport:
        """Crawl until ``duration`` seconds pass or ``stop`` is set. Raises ``CrawlError``."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self._start()
            sched = self.scheduler
            assert sched is not None
            meter = HealthMeter(loop.time(), self.counters())
            next_health = loop.time() + self.config.stats_interval_s
            next_tick = loop.time()
            end = math.inf if duration is None else started + duration
            health: dict[str, object] = {}
            while True:
                now = loop.time()
                if now >= end or (stop is not None and stop.is_set()):
                    break
                while (q := sched.next_query(now)) is not None:
                    self._send(q)
                if now >= next_tick:
                    next_tick = now + TICK_S
                    self._housekeeping(now, started)
                    if now >= next_health:
                        next_health = now + self.config.stats_interval_s
                        health = meter.summary(now, self.counters(), extra=self._extra())
                        if self.on_health is not None:
                            self.on_health(health)
                timer = sched.get_timer(now)
                wake_at = min(end, next_tick, timer if timer is not None else math.inf)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, wake_at - loop.time()))
            now = loop.time()
            health = meter.summary(now, self.counters(), extra=self._extra())
            return CrawlReport(now - started, self.counters(), health)
        finally:
            await self._shutdown()

    async def _start(self) -> None:
        from dht.io.routers import DEFAULT_ROUTERS, resolve_routers

        cfg = self.config
        loop = asyncio.get_running_loop()
        ids = spread_ids(cfg.ids, self.rng)
        dht_config = DhtConfig(
            observe=True,
            refresh_s=math.inf,  # the crawl walks the DHT itself, through its address policy
            query_timeout_s=cfg.query_timeout_s,
            sample_interval_s=cfg.sample_interval_s,
        )
        for i, node_id in enumerate(ids):
            port = cfg.port + i if cfg.port else 0
            node = Node(
                cfg.host,
                port,
                node_id=node_id,
                config=dht_config,
                bootstrap_routers=cfg.bootstrap if cfg.bootstrap is not None else DEFAULT_ROUTERS,
            )
            await node.start()
            node.add_listener(self._on_event)
            self.nodes.append(node)
            self._own_ports.update(a[1] for a in node.addrs)
        self._families = {4 if ":" not in a[0] else 6 for n in self.nodes for a in n.addrs}
        self.scheduler = CrawlScheduler(
            ids, rng=self.rng, now=loop.time(), config=cfg.schedule, accept=self._accept
        )
        routers = tuple(cfg.bootstrap) if cfg.bootstrap is not None else DEFAULT_ROUTERS
        seeds: list[Addr] = []
        for family in sorted(self._families):
            af = socket.AF_INET6 if family == 6 else socket.AF_INET
            seeds += await resolve_routers(routers, family=af)
        if not seeds:
            raise CrawlError(f"none of the {len(routers)} bootstrap nodes resolved")
        self._seeds = seeds
        self.scheduler.add_seeds(seeds, loop.time())
        if cfg.metadata:
            self._workers = [
                asyncio.create_task(self._metadata_worker())
                for _ in range(max(1, cfg.metadata_concurrency))
            ]

    async def _shutdown(self) -> None:
        tasks = [*self._tasks, *self._workers]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for node in self.nodes:
            node.close()
        self.store.flush()

    # --- queries -----------------------------------------------------------------------------

    def _accept(self, addr: Addr) -> bool:
        family = 6 if ":" in addr[0] else 4
        return family in self._families and self.policy.acceptable(addr)

    def _send(self, q: CrawlQuery) -> None:
        task = asyncio.create_task(self._query(q))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _query(self, q: CrawlQuery) -> None:
        sched = self.scheduler
        assert sched is not None
        node = self.nodes[q.via]
        loop = asyncio.get_running_loop()
        try:
            resp = await node.query(q.addr, q.method, {b"target": q.target})
        except DhtQueryError as exc:
            sched.on_failure(q.qid, loop.time(), exc.reason)
            self._note_node(q.addr)
        else:
            self._on_response(q, resp, loop.time())
        self._wake.set()

    def _on_response(self, q: CrawlQuery, resp: Response, now: float) -> None:
        sched = self.scheduler
        assert sched is not None
        r = resp.values
        raw = r.get(b"samples")
        samples: bytes | None
        if raw is None:
            samples = None
        elif isinstance(raw, bytes):
            samples = raw
        else:
            samples = b"\0"  # present but not a string: malformed
        nodes = resp.nodes + resp.nodes6 if 6 in self._families else resp.nodes
        hashes = sched.on_reply(
            q.qid,
            now,
            node_id=resp.id,
            nodes=nodes,
            samples=samples,
            num=r.get(b"num"),
            interval=r.get(b"interval"),
        )
        if hashes:
            wall = time.time()
            new = 0
            for h in hashes:
                if self.store.record_hash(h, wall, "sample", q.addr, resp.id):
                    new += 1
                    self._want_metadata(h, None)
            sched.sampled_yield(q.addr, new, now)
        self._note_node(q.addr)

    def _note_node(self, addr: Addr) -> None:
        sched = self.scheduler
        assert sched is not None
        rec = sched.nodes.get(addr)
        if rec is None or rec.last_reply is None:
            return
        self.store.record_node(_node_row(rec))

    # --- passive observation (BEP 5 queries to our nodes) ------------------------------------

    def _on_event(self, event: DhtEvent) -> None:
        if type(event) is not InfoHashSeen:
            return
        addr = event.addr
        if addr[1] in self._own_ports and (
            addr[0] == self.config.host or classify(addr[0]) is AddressClass.LOOPBACK
        ):
            return  # one of our own nodes (metadata lookups): not a sighting
        self.passive += 1
        new = self.store.record_hash(
            event.info_hash, time.time(), event.method, addr, None, event.peer
        )
        if self.scheduler is not None:
            self.scheduler.queried_by(addr, asyncio.get_running_loop().time())
        if new:
            peer = event.peer if event.peer and self.policy.acceptable(event.peer) else None
            self._want_metadata(event.info_hash, peer)

    # --- metadata ----------------------------------------------------------------------------

    def _want_metadata(self, info_hash: bytes, peer: Addr | None) -> None:
        if not self.config.metadata:
            return
        try:
            self._meta_queue.put_nowait((info_hash, peer))
        except asyncio.QueueFull:
            self.metadata_skipped += 1

    async def _metadata_worker(self) -> None:
        from magnet.io.resolve import ResolveError, resolve
        from magnet.uri import MagnetLink

        cfg = self.config
        while True:
            info_hash, peer = await self._meta_queue.get()
            link = MagnetLink(btih=info_hash, peers=(peer,) if peer else ())
            try:
                result = await resolve(
                    link,
                    node=self.nodes[0],
                    timeout=cfg.metadata_timeout_s,
                    use_trackers=False,
                    max_connections=cfg.metadata_connections,
                )
            except ResolveError as exc:
                self.metadata_failed += 1
                self.store.record_metadata_failure(info_hash, time.time(), exc.reason)
                continue
            meta = result.meta
            self.metadata_ok += 1
            self.store.record_metadata(
                info_hash,
                name=meta.name,
                total_size=meta.total_size,
                piece_length=meta.piece_length,
                files=[FileRow("/".join(f.path), f.length) for f in meta.files],
                wall=time.time(),
                peer=result.peer,
            )

    # --- bookkeeping -------------------------------------------------------------------------

    def _housekeeping(self, now: float, started: float) -> None:
        sched = self.scheduler
        assert sched is not None
        self.store.maybe_flush(now)
        st = sched.stats
        answered = st.replies + sum(v for k, v in st.failures.items() if k.startswith("error"))
        if not answered and now - started >= self.config.startup_timeout_s:
            raise CrawlError(
                f"no DHT node answered within {self.config.startup_timeout_s:g} s "
                f"({len(self._seeds)} bootstrap addresses, {st.sent} queries sent)"
            )
        if not answered:
            sched.reseed(self._seeds, now)
        if self.on_progress is not None:
            self.on_progress(self.progress(now - started))

    def counters(self) -> Counters:
        sched = self.scheduler
        return Counters.of(
            sched.stats if sched is not None else CrawlStats(),
            unique=self.store.new_hashes,
            passive=self.passive,
            metadata_ok=self.metadata_ok,
            metadata_failed=self.metadata_failed,
        )

    def _extra(self) -> dict[str, int]:
        sched = self.scheduler
        extra = dict(sched.snapshot()) if sched is not None else {}
        extra["metadata_queued"] = self._meta_queue.qsize()
        extra["metadata_skipped"] = self.metadata_skipped
        return extra

    def progress(self, elapsed: float) -> dict[str, object]:
        """A snapshot for progress displays."""
        sched = self.scheduler
        st = sched.stats if sched is not None else None
        return {
            "elapsed_s": elapsed,
            "nodes_met": st.nodes_met if st else 0,
            "sent": st.sent if st else 0,
            "replies": st.replies if st else 0,
            "bep51_nodes": st.bep51_yes if st else 0,
            "samples": st.samples if st else 0,
            "unique": self.store.new_hashes,
            "passive": self.passive,
            "metadata": self.metadata_ok,
            "rate": (st.sent / elapsed) if st and elapsed > 0 else 0.0,
        }


def _node_row(rec: NodeRecord) -> NodeRow:
    return NodeRow(
        addr=rec.addr,
        node_id=rec.node_id,
        first_seen=_wall(rec.first_seen),
        last_seen=_wall(rec.last_reply if rec.last_reply is not None else rec.first_seen),
        bep51=None if rec.support == Support.UNKNOWN else rec.support == Support.YES,
        num=rec.num,
        interval=rec.interval,
        samples=rec.samples,
        new_hashes=rec.new_hashes,
        queries=rec.queries,
        replies=rec.replies,
    )


def _wall(loop_time: float) -> float:
    """A loop-clock time as Unix time (the two clocks run at the same rate)."""
    return time.time() - (asyncio.get_running_loop().time() - loop_time)
