"""The crawl on asyncio: UDP sockets, the loop clock and the database around a ``CrawlEngine``.

``Crawler`` binds one socket per engine endpoint (``ids`` node ids on consecutive ports,
each in IPv4, IPv6 or both on the same port), feeds every datagram to the engine with
``loop.time()``, sends what the engine wants sent, keeps its single timer armed with
``loop.call_at``, and writes the engine's records to a ``CrawlStore``. With ``metadata``
it resolves new info-hashes (BEP 9) with bounded concurrency: a get_peers lookup through
the engine (``find_peers``), then ``magnet.io.resolve.resolve`` on the peers found. It
prints nothing: health summaries and progress go to callbacks. No protocol decisions live
here; this module moves datagrams, keeps time and stores.

``run`` is the library call behind ``magnetar crawl``: open the database, crawl until a
duration passes or SIGINT/SIGTERM, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import signal
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crawl.engine import CrawlEngine, spread_ids
from crawl.events import (
    CrawlStalled,
    HashObserved,
    NodeAnswered,
    PeersLookedUp,
    SamplesReceived,
)
from crawl.health import Counters, HealthMeter
from crawl.io.store import CrawlStore, FileRow, NodeRow
from crawl.scheduler import CrawlStats, SchedulerConfig
from dht.addresses import AddressPolicy, format_hostport
from dht.io.node import ANSWER_FOOTPRINT_BYTES, MIN_PENDING, RECEIVE_BUFFER_BYTES, bind_udp
from dht.protocol import DhtConfig
from dht.wire import Addr

__all__ = [
    "CrawlConfig",
    "CrawlError",
    "CrawlReport",
    "Crawler",
    "DatabaseError",
    "crawl_policy",
    "run",
    "spread_ids",
]

log = logging.getLogger("crawl")

TICK_S = 0.25  # housekeeping: flushes, progress, health


@dataclass(slots=True)
class CrawlConfig:
    host: str = "0.0.0.0"
    port: int = 6881  # first port; node i binds port + i (0: any free ports)
    ids: int = 1
    bootstrap: Sequence[Addr] | None = None  # None: the public routers
    schedule: SchedulerConfig = field(default_factory=SchedulerConfig)
    # Send to (and fetch metadata from) private/loopback addresses learned from the DHT.
    # Without it, loopback or private bootstrap addresses still make it a lab crawl.
    allow_private: bool = False
    metadata: bool = False
    metadata_concurrency: int = 8
    metadata_timeout_s: float = 30.0
    metadata_connections: int = 8  # peer connections per resolve
    metadata_queue: int = 10_000  # info-hashes waiting for resolution; more are skipped
    scrape: bool = False  # BEP 33: estimate seeds and peers of each new info-hash
    scrape_concurrency: int = 4
    scrape_timeout_s: float = 30.0
    scrape_queue: int = 10_000  # info-hashes waiting for a scrape; more are skipped
    stats_interval_s: float = 60.0
    query_timeout_s: float = 4.0
    startup_timeout_s: float = 20.0  # no node answered by then: the crawl fails
    sample_interval_s: int = 6 * 3600  # BEP 51 interval our own nodes ask of others
    seed: int | None = None  # for the scheduler's random choices (tests, benchmarks)


class CrawlError(Exception):
    """The crawl could not run (nothing resolved, nobody answered, cannot bind); one line."""


class DatabaseError(CrawlError):
    """The database could not be opened (bad input rather than a failed crawl)."""


@dataclass(slots=True)
class CrawlReport:
    seconds: float
    counters: Counters
    health: dict[str, object]


class _Socket(asyncio.DatagramProtocol):
    """One endpoint's UDP socket: datagrams in go to the engine through the crawler."""

    def __init__(self, crawler: Crawler, endpoint: int) -> None:
        self.crawler = crawler
        self.endpoint = endpoint
        self.transport: asyncio.DatagramTransport | None = None

    def itself(self) -> _Socket:
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.crawler._received(self.endpoint, data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the query will time out; nothing else to do.
        self.crawler.send_errors += 1


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
        self.policy = crawl_policy(config)
        self.engine: CrawlEngine | None = None
        self.sockets: list[_Socket] = []
        self.send_errors = 0
        self.metadata_ok = 0
        self.metadata_failed = 0
        self.metadata_skipped = 0  # queue full
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._flush_soon = False
        self._closed = False  # after shutdown: late callbacks find nothing to do
        self._dropped_seen = 0  # engine.dropped when last logged
        self._failure: str | None = None
        self._wake = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._meta_queue: asyncio.Queue[tuple[bytes, Addr | None]] = asyncio.Queue(
            max(1, config.metadata_queue)
        )
        self._peer_waits: dict[int, asyncio.Future[PeersLookedUp]] = {}
        self._scrape_queue: asyncio.Queue[bytes] = asyncio.Queue(max(1, config.scrape_queue))
        self.scraped = 0
        self.scrape_skipped = 0  # queue full

    # --- life cycle --------------------------------------------------------------------------

    async def run(
        self, *, duration: float | None = None, stop: asyncio.Event | None = None
    ) -> CrawlReport:
        """Crawl until ``duration`` seconds pass or ``stop`` is set. Raises ``CrawlError``."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self._start()
            meter = HealthMeter(loop.time(), self.counters())
            next_health = loop.time() + self.config.stats_interval_s
            end = math.inf if duration is None else started + duration
            while True:
                now = loop.time()
                if self._failure is not None:
                    raise CrawlError(self._failure)
                if now >= end or (stop is not None and stop.is_set()):
                    break
                self.store.maybe_flush(now)
                if self.on_progress is not None:
                    self.on_progress(self.progress(now - started))
                if now >= next_health:
                    next_health = now + self.config.stats_interval_s
                    health = meter.summary(now, self.counters(), extra=self._extra())
                    if self.on_health is not None:
                        self.on_health(health)
                self._wake.clear()
                wait = max(0.0, min(end, now + TICK_S) - loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            now = loop.time()
            health = meter.summary(now, self.counters(), extra=self._extra())
            return CrawlReport(now - started, self.counters(), health)
        finally:
            await self._shutdown()

    async def _start(self) -> None:
        from dht.io.routers import DEFAULT_ROUTERS, resolve_routers

        cfg = self.config
        loop = self._loop = asyncio.get_running_loop()
        routers = tuple(cfg.bootstrap) if cfg.bootstrap is not None else DEFAULT_ROUTERS
        # BEP 32: a node bound to "::" is in both DHTs, one socket (and core) per family.
        binds = [(6, "::"), (4, "0.0.0.0")] if cfg.host == "::" else [(_family(cfg.host), cfg.host)]
        socks: list[socket.socket] = []
        try:
            for via in range(cfg.ids):
                port = cfg.port + via if cfg.port else 0
                for family, host in binds:
                    sock = bind_udp(family, host, port, RECEIVE_BUFFER_BYTES)
                    socks.append(sock)
                    port = port or int(sock.getsockname()[1])  # both families on one port
            dht = DhtConfig(
                query_timeout_s=cfg.query_timeout_s,
                sample_interval_s=cfg.sample_interval_s,
                address_policy=self.policy,
                max_pending=min(DhtConfig().max_pending, _fits(socks)),
            )
            engine = self.engine = CrawlEngine(
                spread_ids(cfg.ids, self.rng),
                rng=self.rng,
                now=loop.time(),
                families=[family for family, _ in binds],
                schedule=cfg.schedule,
                dht=dht,
                accept=self.policy.acceptable,
                startup_timeout_s=cfg.startup_timeout_s,
            )
            for i, sock in enumerate(socks):
                endpoint = _Socket(self, i)
                await loop.create_datagram_endpoint(endpoint.itself, sock=sock)
                self.sockets.append(endpoint)
                name = sock.getsockname()
                engine.set_local((str(name[0]), int(name[1])))
        except OSError as exc:
            for sock in socks:
                sock.close()
            where = format_hostport((cfg.host, cfg.port))
            raise CrawlError(f"cannot bind {where}: {exc.strerror or exc}") from None
        seeds: list[Addr] = []
        for family, _ in binds:
            af = socket.AF_INET6 if family == 6 else socket.AF_INET
            seeds += await resolve_routers(routers, family=af)
        if not seeds:
            raise CrawlError(f"none of the {len(routers)} bootstrap nodes resolved")
        engine.add_seeds(seeds, loop.time())
        self._flush()
        if cfg.scrape:
            self._workers.extend(
                asyncio.create_task(self._scrape_worker())
                for _ in range(max(1, cfg.scrape_concurrency))
            )
        if cfg.metadata:
            self._workers = [
                asyncio.create_task(self._metadata_worker())
                for _ in range(max(1, cfg.metadata_concurrency))
            ]

    async def _shutdown(self) -> None:
        self._closed = True
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for s in self.sockets:
            if s.transport is not None:
                s.transport.close()
                s.transport = None
        for fut in self._peer_waits.values():
            fut.cancel()
        self.store.flush()

    # --- datagrams and the timer -------------------------------------------------------------

    def _received(self, endpoint: int, data: bytes, addr: Addr) -> None:
        engine, loop = self.engine, self._loop
        if self._closed or engine is None or loop is None:
            return
        engine.receive_datagram(endpoint, data, addr, loop.time())
        # Once per burst (the loop reads many datagrams per wake-up), not once per datagram.
        if not self._flush_soon:
            self._flush_soon = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Send what the engine wants sent, store what it learned, re-arm its timer."""
        self._flush_soon = False
        engine, loop = self.engine, self._loop
        if self._closed or engine is None or loop is None:
            return
        sockets = self.sockets
        for endpoint, data, dst in engine.datagrams_to_send(loop.time()):
            transport = sockets[endpoint].transport if endpoint < len(sockets) else None
            if transport is None:
                continue
            try:
                transport.sendto(data, dst)
            except (OSError, ValueError):
                self.send_errors += 1
        self._take_events()
        if engine.dropped != self._dropped_seen:
            self._dropped_seen = engine.dropped
            log.debug("dropped a crawled node's datagram or answer: %s", engine.last_dropped)
        deadline = engine.get_timer()
        if deadline is not None and deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        engine, loop = self.engine, self._loop
        if self._closed or engine is None or loop is None:
            return
        # The loop may wake a hair early: time never runs backwards for the engine.
        now = max(self._timer_at, loop.time())
        self._timer = None
        self._timer_at = math.inf
        engine.handle_timer(now)
        self._flush()

    # --- what the engine learned -------------------------------------------------------------

    def _take_events(self) -> None:
        engine, loop = self.engine, self._loop
        assert engine is not None and loop is not None
        store = self.store
        event = engine.next_event()
        while event is not None:
            if isinstance(event, SamplesReceived):
                wall = time.time()
                new = 0
                for h in event.hashes:
                    if store.record_hash(h, wall, "sample", event.addr, event.node_id):
                        new += 1
                        self._want_metadata(h, None)
                engine.sampled_yield(event.addr, new, loop.time())
            elif isinstance(event, HashObserved):
                peer = event.peer
                if store.record_hash(
                    event.info_hash, time.time(), event.method, event.addr, None, peer
                ):
                    ok = peer is not None and self.policy.acceptable(peer)
                    self._want_metadata(event.info_hash, peer if ok else None)
            elif isinstance(event, NodeAnswered):
                store.record_node(self._node_row(event))
            elif isinstance(event, PeersLookedUp):
                fut = self._peer_waits.pop(event.lookup, None)
                if fut is not None and not fut.done():
                    fut.set_result(event)
            elif isinstance(event, CrawlStalled):
                self._failure = event.reason
                self._wake.set()
            event = engine.next_event()

    def _node_row(self, ev: NodeAnswered) -> NodeRow:
        return NodeRow(
            addr=ev.addr,
            node_id=ev.node_id,
            first_seen=self._wall(ev.first_seen),
            last_seen=self._wall(ev.last_seen),
            bep51=ev.bep51,
            num=ev.num,
            interval=ev.interval,
            samples=ev.samples,
            new_hashes=ev.new_hashes,
            queries=ev.queries,
            replies=ev.replies,
        )

    def _wall(self, loop_time: float) -> float:
        """A loop-clock time as Unix time (the two clocks run at the same rate)."""
        assert self._loop is not None
        return time.time() - (self._loop.time() - loop_time)

    # --- metadata ----------------------------------------------------------------------------

    def _want_metadata(self, info_hash: bytes, peer: Addr | None) -> None:
        if self.config.scrape:
            try:
                self._scrape_queue.put_nowait(info_hash)
            except asyncio.QueueFull:
                self.scrape_skipped += 1
        if not self.config.metadata:
            return
        try:
            self._meta_queue.put_nowait((info_hash, peer))
        except asyncio.QueueFull:
            self.metadata_skipped += 1

    async def _find_peers(
        self, info_hash: bytes, timeout: float, *, scrape: bool = False
    ) -> PeersLookedUp | None:
        engine, loop = self.engine, self._loop
        assert engine is not None and loop is not None
        fut: asyncio.Future[PeersLookedUp] = loop.create_future()
        handle = engine.find_peers(info_hash, loop.time(), scrape=scrape)
        self._peer_waits[handle] = fut
        self._flush()
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            self._peer_waits.pop(handle, None)
            engine.cancel_peers(handle)
            return None

    async def _scrape_worker(self) -> None:
        """BEP 33: one scrape lookup at a time; a lookup that timed out records nothing."""
        while True:
            info_hash = await self._scrape_queue.get()
            found = await self._find_peers(info_hash, self.config.scrape_timeout_s, scrape=True)
            if found is not None and found.seeds_estimate is not None:
                seeds, peers = found.seeds_estimate, found.peers_estimate or 0.0
                self.store.record_scrape(info_hash, seeds, peers, found.replied, time.time())
                self.scraped += 1

    async def _metadata_worker(self) -> None:
        while True:
            info_hash, peer = await self._meta_queue.get()
            try:
                await self._resolve_one(info_hash, peer)
            except Exception as exc:
                # The one boundary per info-hash: whatever a resolve raises (a bug, a peer's
                # bytes no check foresaw) is recorded, and the worker takes the next one.
                log.debug("metadata of %s failed", info_hash.hex(), exc_info=True)
                self.metadata_failed += 1
                reason = f"unexpected error: {type(exc).__name__}: {exc}"
                self.store.record_metadata_failure(info_hash, time.time(), reason[:200])

    async def _resolve_one(self, info_hash: bytes, peer: Addr | None) -> None:
        from magnet.io.resolve import ResolveError, resolve
        from magnet.uri import MagnetError, MagnetLink

        cfg = self.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.metadata_timeout_s
        found = await self._find_peers(info_hash, cfg.metadata_timeout_s)
        known = [peer] if peer else []  # the announced peer, if any, goes first
        # Peers from the DHT pass the crawl's address policy, as nodes do.
        looked_up = [p for p in (found.peers if found else []) if self.policy.acceptable(p)]
        peers = list(dict.fromkeys([*known, *looked_up]))
        try:
            if not peers:
                raise ResolveError(_no_peers(found, cfg.metadata_timeout_s), "no-peers")
            result = await resolve(
                MagnetLink(btih=info_hash, peers=tuple(peers)),
                timeout=max(0.5, deadline - loop.time()),
                use_dht=False,  # the peers were just looked up through our own nodes
                use_trackers=False,
                max_connections=cfg.metadata_connections,
                allow_private=self.policy.allow_private,
            )
        except (ResolveError, MagnetError) as exc:
            self.metadata_failed += 1
            reason = exc.reason if isinstance(exc, ResolveError) else str(exc)
            self.store.record_metadata_failure(info_hash, time.time(), reason)
            return
        meta = result.meta
        self.store.record_metadata(
            info_hash,
            name=meta.name,
            total_size=meta.total_size,
            piece_length=meta.piece_length,
            files=[FileRow("/".join(f.path), f.length) for f in meta.files],
            wall=time.time(),
            peer=result.peer,
        )
        self.metadata_ok += 1

    # --- numbers -----------------------------------------------------------------------------

    @property
    def stats(self) -> CrawlStats:
        return self.engine.stats if self.engine is not None else CrawlStats()

    @property
    def passive(self) -> int:
        return self.engine.passive if self.engine is not None else 0

    def counters(self) -> Counters:
        return Counters.of(
            self.stats,
            unique=self.store.new_hashes,
            passive=self.passive,
            metadata_ok=self.metadata_ok,
            metadata_failed=self.metadata_failed,
        )

    def _extra(self) -> dict[str, int]:
        extra = dict(self.engine.snapshot()) if self.engine is not None else {}
        extra["metadata_queued"] = self._meta_queue.qsize()
        extra["metadata_skipped"] = self.metadata_skipped
        if self.config.scrape:
            extra["scraped"] = self.scraped
            extra["scrape_skipped"] = self.scrape_skipped
        return extra

    def progress(self, elapsed: float) -> dict[str, object]:
        """A snapshot for progress displays."""
        st = self.stats
        return {
            "elapsed_s": elapsed,
            "nodes_met": st.nodes_met,
            "sent": st.sent,
            "replies": st.replies,
            "bep51_nodes": st.bep51_yes,
            "samples": st.samples,
            "unique": self.store.new_hashes,
            "passive": self.passive,
            "metadata": self.metadata_ok,
            "rate": (st.sent / elapsed) if elapsed > 0 else 0.0,
        }


def crawl_policy(config: CrawlConfig) -> AddressPolicy:
    """Where the crawl may send, and which peers it may dial: ``allow_private`` opens
    private and loopback addresses; otherwise the bind address and the bootstrap addresses
    decide, as for a DHT node (``AddressPolicy.for_network``): a crawl bootstrapped from
    loopback or LAN addresses is a crawl of a lab network."""
    if config.allow_private:
        return AddressPolicy(allow_private=True, allow_loopback=True)
    return AddressPolicy.for_network(config.host, config.bootstrap or ())


def _no_peers(found: PeersLookedUp | None, timeout: float) -> str:
    if found is None:
        return f"no peers: the DHT lookup did not finish in {timeout:g} s"
    if not found.replied:
        return "no peers: no DHT node answered"
    return (
        f"no peers: {found.replied} of {found.queried} DHT nodes answered, "
        "none knows peers for this info-hash"
    )


def _family(host: str) -> int:
    return 6 if ":" in host else 4


def _fits(socks: Sequence[socket.socket]) -> int:
    """Queries out at most per core: what the smallest receive buffer holds answers for
    (answers beyond it are dropped by the kernel, and their queries wait out timeouts)."""
    granted = []
    for sock in socks:
        with contextlib.suppress(OSError):
            granted.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    if not granted:
        return DhtConfig().max_pending
    return max(MIN_PENDING, min(granted) // ANSWER_FOOTPRINT_BYTES)


def run(
    db: str,
    config: CrawlConfig,
    *,
    duration: float | None = None,
    on_health: Callable[[dict[str, object]], None] | None = None,
    on_progress: Callable[[dict[str, object]], None] | None = None,
) -> CrawlReport:
    """Crawl into the database ``db`` until ``duration`` seconds pass or SIGINT/SIGTERM.

    Raises ``DatabaseError`` when ``db`` cannot be opened, ``CrawlError`` when the crawl
    cannot run (cannot bind, no bootstrap node resolved or answered); both say why in one
    line.
    """
    from dht.io.node import run as run_loop

    try:
        store = CrawlStore(db)
    except (sqlite3.Error, OSError) as exc:
        raise DatabaseError(f"cannot open database {db}: {exc}") from None

    async def main() -> CrawlReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or no signals here: only the duration stops it
        crawler = Crawler(config, store, on_health=on_health, on_progress=on_progress)
        return await crawler.run(duration=duration, stop=stop)

    try:
        report: CrawlReport = run_loop(main())
        return report
    finally:
        store.close()
