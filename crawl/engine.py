"""The crawl engine: the crawl's DHT cores and its scheduler as one sans-IO object (BEP 5, 51).

``CrawlEngine`` owns one ``DhtProtocol`` per *endpoint* (a node id and an address family:
``--ids N`` gives N ids, a dual-stack bind two families each, BEP 32) and the
``CrawlScheduler``. It is driven like a core, in the aioquic manner:
``receive_datagram(endpoint, data, addr, now)``, ``datagrams_to_send(now)`` (each datagram
with the endpoint to send it from), ``get_timer()`` (one deadline for everything),
``handle_timer(now)``, and ``next_event()`` for the ``crawl.events`` records a driver stores.

It sends what the scheduler picks through the cores' ``query`` command, feeds their
``QueryAnswered`` / ``QueryFailed`` back to the scheduler, and turns the cores'
``InfoHashSeen`` into sightings. Each datagram and each core event is an untrusted item:
whatever one breaks is counted in ``dropped`` and the crawl goes on. Our nodes answer
queries like any node (other nodes put them in their tables and send them get_peers and
announce_peer, which is what we observe).
The cores never walk the DHT on their own (bucket refresh is off, and no lookup starts but
``find_peers``), so every query to an address learned from the DHT passes the crawl's
address policy. No socket, clock or database here: the asyncio driver (``crawl.io``) and the
simulator driver (``crawl.simulation``) carry the very same object.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from crawl.events import (
    CrawlEvent,
    CrawlStalled,
    HashObserved,
    NodeAnswered,
    PeersLookedUp,
    SamplesReceived,
)
from crawl.scheduler import CrawlQuery, CrawlScheduler, CrawlStats, SchedulerConfig, Support
from dht.addresses import AddressClass, classify
from dht.bloom import ScrapeFilter
from dht.events import DhtEvent, InfoHashSeen, LookupDone, PeersFound, QueryAnswered, QueryFailed
from dht.protocol import DhtConfig, DhtProtocol
from dht.scrapes import Scrape, estimate
from dht.wire import Addr, Response

__all__ = ["CrawlEngine", "Endpoint", "family_of", "spread_ids"]

MIN_WAKE_S = 0.001  # the scheduler's next deadline is at least this far ahead
STARTUP_TICK_S = 0.25  # while nobody has answered: ask the seeds again, check the time limit
# Request ids of endpoint i start at i << 40, so one number names one request in the engine.
_ENDPOINT_REQUEST_IDS = 1 << 40


def family_of(addr: Addr) -> int:
    return 6 if ":" in addr[0] else 4


def spread_ids(count: int, rng: random.Random) -> list[bytes]:
    """``count`` node ids, one in each of ``count`` equal slices of the keyspace."""
    span = (1 << 160) // count
    return [(i * span + rng.randrange(span)).to_bytes(20, "big") for i in range(count)]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One of our DHT nodes: node id number ``via`` (``CrawlQuery.via``) in one family."""

    via: int
    family: int  # 4 or 6
    core: DhtProtocol


@dataclass(slots=True)
class _PeerLookup:
    info_hash: bytes
    open: set[int] = field(default_factory=set)  # core request ids still running
    peers: dict[Addr, None] = field(default_factory=dict)
    queried: int = 0
    replied: int = 0
    scrapes: list[Scrape] = field(default_factory=list)  # BEP 33: one per family when asked


class CrawlEngine:
    """The crawl, sans-IO. ``ids``: our node ids; ``families``: 4, 6 or both.

    ``accept`` is the address policy for nodes learned from others (the engine adds the
    family check); ``dht`` the cores' configuration (``observe`` and no bucket refresh are
    forced). ``startup_timeout_s``: with no answer by then, a ``CrawlStalled`` event.
    """

    def __init__(
        self,
        ids: Sequence[bytes],
        *,
        rng: random.Random,
        now: float,
        families: Sequence[int] = (4,),
        schedule: SchedulerConfig | None = None,
        dht: DhtConfig | None = None,
        accept: Callable[[Addr], bool] | None = None,
        startup_timeout_s: float = 20.0,
    ) -> None:
        if not ids:
            raise ValueError("need at least one node id to crawl from")
        if not families or set(families) - {4, 6}:
            raise ValueError("families must be 4, 6 or both")
        # The crawl walks the DHT itself, through its address policy: no bucket refresh.
        config = replace(dht or DhtConfig(), observe=True, refresh_s=math.inf)
        self.endpoints: list[Endpoint] = []
        self._endpoint_of: dict[tuple[int, int], int] = {}
        for via, node_id in enumerate(ids):
            for family in dict.fromkeys(families):
                index = len(self.endpoints)
                core = DhtProtocol(
                    node_id,
                    rng=rng,
                    now=now,
                    config=config,
                    family=family,
                    first_request_id=index * _ENDPOINT_REQUEST_IDS + 1,
                )
                self.endpoints.append(Endpoint(via, family, core))
                self._endpoint_of[via, family] = index
            if (via, 4) in self._endpoint_of and (via, 6) in self._endpoint_of:
                v4 = self.endpoints[self._endpoint_of[via, 4]].core
                v6 = self.endpoints[self._endpoint_of[via, 6]].core
                v4.sibling, v6.sibling = v6, v4  # BEP 32 "want": both kinds of nodes
        self.cores = [e.core for e in self.endpoints]
        self._families = frozenset(families)
        self._policy = accept
        self.scheduler = CrawlScheduler(
            list(ids), rng=rng, now=now, config=schedule, accept=self.acceptable
        )
        self.startup_timeout_s = startup_timeout_s
        self.passive = 0  # sightings from queries to our nodes
        # Core events (answers, sightings) whose handling raised: dropped, counted, the
        # crawl goes on. The last reason, for the health line.
        self.dropped = 0
        self.last_dropped: str | None = None
        self._started = now
        self._seeds: list[Addr] = []
        self._queries: dict[int, CrawlQuery] = {}  # core request id -> the scheduler's query
        self._events: deque[CrawlEvent] = deque()
        self._sched_at: float | None = None
        self._startup_at: float | None = now + STARTUP_TICK_S
        self._local: set[Addr] = set()
        self._local_ports: set[int] = set()
        self._lookups: dict[int, _PeerLookup] = {}  # find_peers handle -> its lookups
        self._lookup_of: dict[int, int] = {}  # core request id -> find_peers handle
        self._next_lookup = 1

    # --- set-up ------------------------------------------------------------------------------

    def acceptable(self, addr: Addr) -> bool:
        """May the crawl send to ``addr``, learned from another node?"""
        return family_of(addr) in self._families and (self._policy is None or self._policy(addr))

    def set_local(self, addr: Addr) -> None:
        """An address one of our endpoints is bound to: queries from it are not sightings."""
        self._local.add(addr)
        self._local_ports.add(addr[1])

    def is_own(self, addr: Addr) -> bool:
        if addr in self._local:
            return True
        return addr[1] in self._local_ports and classify(addr[0]) is AddressClass.LOOPBACK

    def add_seeds(self, addrs: Iterable[Addr], now: float) -> None:
        """Operator-given entry points (resolved bootstrap routers); asked first."""
        self._seeds = list(addrs)
        self.scheduler.add_seeds(self._seeds, now)
        self._pump(now)

    # --- the sans-IO surface -----------------------------------------------------------------

    def receive_datagram(self, endpoint: int, data: bytes, addr: Addr, now: float) -> None:
        core = self.cores[endpoint]
        try:
            core.receive_datagram(data, addr, now)
        except Exception as exc:
            # One datagram from one stranger: whatever it trips is its loss, not the crawl's.
            self._drop(exc)
        if core.has_events:
            self._drain(endpoint, now)
            self._pump(now)

    def datagrams_to_send(self, now: float) -> list[tuple[int, bytes, Addr]]:
        """(endpoint, datagram, destination) for everything the cores want sent."""
        out: list[tuple[int, bytes, Addr]] = []
        for i, core in enumerate(self.cores):
            for data, dst in core.datagrams_to_send(now):
                out.append((i, data, dst))
        return out

    def get_timer(self) -> float | None:
        deadline = self._sched_at
        if self._startup_at is not None and (deadline is None or self._startup_at < deadline):
            deadline = self._startup_at
        for core in self.cores:
            t = core.get_timer()
            if t is not None and (deadline is None or t < deadline):
                deadline = t
        return deadline

    def handle_timer(self, now: float) -> None:
        for i, core in enumerate(self.cores):
            t = core.get_timer()
            if t is not None and t <= now:
                core.handle_timer(now)
            if core.has_events:
                self._drain(i, now)
        self._startup(now)
        self._pump(now)

    def next_event(self) -> CrawlEvent | None:
        return self._events.popleft() if self._events else None

    # --- commands ----------------------------------------------------------------------------

    def sampled_yield(self, addr: Addr, new: int, now: float) -> None:
        """Answer to ``SamplesReceived``: how many of those info-hashes were new to the crawl."""
        self.scheduler.sampled_yield(addr, new, now)
        self._note_node(addr)

    def find_peers(self, info_hash: bytes, now: float, *, scrape: bool = False) -> int:
        """A get_peers lookup (BEP 5) from our first node id, in each family; its peers come
        in one ``PeersLookedUp`` carrying the returned handle. For metadata resolution.
        ``scrape``: ask for BEP 33 filters too; the event then carries the estimates."""
        handle = self._next_lookup
        self._next_lookup += 1
        state = self._lookups[handle] = _PeerLookup(info_hash)
        started = []
        for i, e in enumerate(self.endpoints):
            if e.via != 0:
                continue
            core = e.core
            # An empty table (start-up): walk from the seeds, as a fresh client would.
            fam = e.family
            seeds = [] if len(core.routing) else [s for s in self._seeds if family_of(s) == fam]
            if scrape:
                t = Scrape(core.new_request_id(), info_hash)
                state.scrapes.append(t)
                rid = core.lookups.start(t, now, seeds).id
            else:
                rid = core.get_peers(info_hash, now, seeds=seeds)
            state.open.add(rid)
            self._lookup_of[rid] = handle
            started.append(i)
        for i in started:
            if self.cores[i].has_events:
                self._drain(i, now)
        return handle

    def cancel_peers(self, handle: int) -> None:
        """Stop a ``find_peers`` lookup; no ``PeersLookedUp`` follows."""
        state = self._lookups.pop(handle, None)
        if state is None:
            return
        for rid in state.open:
            self._lookup_of.pop(rid, None)
            for core in self.cores:
                core.cancel(rid)

    # --- what the cores say ------------------------------------------------------------------

    def on_core_event(self, endpoint: int, event: DhtEvent, now: float) -> None:
        """One event of core ``endpoint``. Drivers that run the cores themselves (the
        simulator) pass each event here, then call ``handle_timer``.

        The exception boundary of one crawled node: whatever its answer (or query) breaks is
        counted in ``dropped`` and the event dropped; nothing escapes to the driver's loop.
        """
        try:
            self._on_core_event(event, now)
        except Exception as exc:
            self._drop(exc)

    def _drop(self, exc: Exception) -> None:
        self.dropped += 1
        self.last_dropped = f"{type(exc).__name__}: {exc}"[:200]

    def _on_core_event(self, event: DhtEvent, now: float) -> None:
        if isinstance(event, QueryAnswered):
            q = self._queries.pop(event.request_id, None)
            if q is not None:
                try:
                    self._answered(q, event.response, now)
                except Exception as exc:
                    self._drop(exc)
                    # Frees the query's slot and counts it unless on_reply already did.
                    self.scheduler.on_failure(q.qid, now, f"bad response: {exc}")
        elif isinstance(event, QueryFailed):
            q = self._queries.pop(event.request_id, None)
            if q is not None:
                self.scheduler.on_failure(q.qid, now, event.reason)
                self._note_node(q.addr)
        elif isinstance(event, InfoHashSeen):
            if not self.is_own(event.addr):  # our own metadata lookups are not sightings
                self.passive += 1
                self.scheduler.queried_by(event.addr, now)
                self._events.append(
                    HashObserved(event.info_hash, event.method, event.addr, event.peer)
                )
        elif isinstance(event, PeersFound):
            handle = self._lookup_of.get(event.request_id)
            if handle is not None:
                self._lookups[handle].peers.update(dict.fromkeys(event.peers))
        elif isinstance(event, LookupDone):
            self._lookup_done(event)

    def _drain(self, endpoint: int, now: float) -> None:
        core = self.cores[endpoint]
        event = core.next_event()
        while event is not None:
            self.on_core_event(endpoint, event, now)
            event = core.next_event()

    def _answered(self, q: CrawlQuery, resp: Response, now: float) -> None:
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
        hashes = self.scheduler.on_reply(
            q.qid,
            now,
            node_id=resp.id,
            nodes=nodes,
            samples=samples,
            num=r.get(b"num"),
            interval=r.get(b"interval"),
        )
        if hashes:
            # The node's numbers follow once the driver says how many were new.
            self._events.append(SamplesReceived(q.addr, resp.id, tuple(hashes)))
        else:
            self._note_node(q.addr)

    def _lookup_done(self, done: LookupDone) -> None:
        handle = self._lookup_of.pop(done.request_id, None)
        if handle is None:
            return
        state = self._lookups[handle]
        state.open.discard(done.request_id)
        state.queried += done.queried
        state.replied += done.replied
        if not state.open:
            del self._lookups[handle]
            seeds = peers = None
            if state.scrapes:
                seeds = estimate(ScrapeFilter.union_of(t.seed_filter for t in state.scrapes))
                peers = estimate(ScrapeFilter.union_of(t.peer_filter for t in state.scrapes))
            self._events.append(
                PeersLookedUp(
                    handle,
                    state.info_hash,
                    tuple(state.peers),
                    state.queried,
                    state.replied,
                    seeds,
                    peers,
                )
            )

    def _note_node(self, addr: Addr) -> None:
        rec = self.scheduler.nodes.get(addr)
        if rec is None or rec.last_reply is None:
            return
        self._events.append(
            NodeAnswered(
                addr=rec.addr,
                node_id=rec.node_id,
                first_seen=rec.first_seen,
                last_seen=rec.last_reply,
                bep51=None if rec.support == Support.UNKNOWN else rec.support == Support.YES,
                num=rec.num,
                interval=rec.interval,
                samples=rec.samples,
                new_hashes=rec.new_hashes,
                queries=rec.queries,
                replies=rec.replies,
            )
        )

    # --- sending -----------------------------------------------------------------------------

    def _pump(self, now: float) -> None:
        """Send every query the scheduler allows now; note when it may allow another."""
        sched = self.scheduler
        used: set[int] = set()
        while (q := sched.next_query(now)) is not None:
            endpoint = self._endpoint_of.get((q.via, family_of(q.addr)))
            if endpoint is None:
                sched.on_failure(q.qid, now, f"no IPv{family_of(q.addr)} socket")
                continue
            rid = self.cores[endpoint].query(q.addr, q.method, {b"target": q.target}, now)
            self._queries[rid] = q
            used.add(endpoint)
        for endpoint in used:
            # Only a "busy" refusal can be there already: handed back now, sent again later
            # (not in this loop: a full transaction table would refuse it again at once).
            if self.cores[endpoint].has_events:
                self._drain(endpoint, now)
        at = sched.get_timer(now)
        # Nothing more can go at ``now`` (the loop above took all there was): a deadline not
        # in the future would only spin a driver, real or simulated.
        self._sched_at = at if at is None or at > now else now + MIN_WAKE_S

    def _startup(self, now: float) -> None:
        if self._startup_at is None or now < self._startup_at:
            return
        st = self.scheduler.stats
        answered = st.replies + sum(v for k, v in st.failures.items() if k.startswith("error"))
        if answered:
            self._startup_at = None
            return
        if now - self._started >= self.startup_timeout_s:
            self._startup_at = None
            self._events.append(
                CrawlStalled(
                    f"no DHT node answered within {self.startup_timeout_s:g} s "
                    f"({len(self._seeds)} bootstrap addresses, {st.sent} queries sent)"
                )
            )
            return
        self.scheduler.reseed(self._seeds, now)
        self._startup_at = now + STARTUP_TICK_S

    # --- numbers -----------------------------------------------------------------------------

    @property
    def stats(self) -> CrawlStats:
        return self.scheduler.stats

    def snapshot(self) -> dict[str, int]:
        """Counts for progress lines."""
        counts = self.scheduler.snapshot()
        counts["dropped"] = self.dropped
        return counts
