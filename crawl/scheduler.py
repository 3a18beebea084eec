"""The crawl scheduler: which node to ask what next (BEP 5 find_node, BEP 51 sample_infohashes).

A pure state machine in the aioquic manner: fed ``now`` and the outcome of each query, it
hands out the next query to send and the time at which it may have another. It never touches
a socket or a clock, so every rule below is tested without the network.

Rules (BEP 51 "Indexing" and politeness):

* A node first met is asked ``sample_infohashes`` for a random target: the answer both says
  whether it supports BEP 51 and, through ``nodes``, shows more of the DHT. An answer without
  ``samples`` (libtorrent-style forward compatibility answers unknown queries that carry a
  ``target`` like find_node) or an error 203/204 means "unsupported"; such a node is only
  used for discovery (find_node) afterwards.
* A supporting node is asked again no earlier than the ``interval`` it returned (never
  before; clamped to 0..21600 s per BEP 51, and never below ``min_revisit_s``). ``num``
  decides whether it is worth it soon: a node holding more info-hashes than it showed, whose
  samples still bring new ones, is revisited at the interval; one that showed its whole
  store, or whose last ``drained_after`` answers brought nothing new, only after
  ``idle_revisit_s``.
* Nodes not asked yet and nodes due again take turns, so neither starves the other.
* When there is nobody new to meet, find_node on random targets (and, now and then, on our
  own ids, so that nodes near them learn of us and send us their get_peers and announces)
  walks further, to any one node at most every ``find_interval_s``.
* Addresses learned from others pass ``accept`` (the address policy: no private or bogon
  addresses unless the crawl is of such a network); seeds given by the operator do not.
* Global budgets: queries per second (a token bucket), bytes per second both ways
  (estimated sizes; answers may overdraw the budget, which then delays the next query), and
  queries in flight.
* Everything is bounded: the node table (least recently active evicted), the frontier of
  nodes to meet, the revisit heap (one entry per node at most).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from dht.ratelimit import TokenBucket
from dht.wire import Addr, NodeContact

__all__ = [
    "BEP51_MAX_INTERVAL_S",
    "CrawlQuery",
    "CrawlStats",
    "NodeRecord",
    "SchedulerConfig",
    "Support",
    "CrawlScheduler",
    "failure_kind",
]

BEP51_MAX_INTERVAL_S = 21600  # BEP 51: interval is at most 6 hours
SAMPLE_QUERY_BYTES = 130  # sample_infohashes / find_node query with UDP+IP headers, about
REPLY_OVERHEAD_BYTES = 110  # envelope, id, ip, v, interval, num, headers: about
SAMPLE_BYTES = 20
NODE_BYTES = 26
SEED_RETRY_S = 2.0  # while nobody answers, ask the seeds again this often
# BEP 51 num as believed: a node claiming more is rounded down (the number only decides
# revisits, and an unbounded int from a stranger once overflowed the crawl's database).
MAX_NUM = 1 << 32


@dataclass(slots=True)
class SchedulerConfig:
    qps: float = 50.0  # queries per second, all kinds, all our node ids together
    bandwidth: float = 128 * 1024.0  # bytes per second, queries and answers (estimated)
    max_in_flight: int = 32  # queries out at once ("concurrent lookups")
    max_nodes: int = 200_000  # node table
    max_frontier: int = 20_000  # nodes met but not yet asked
    min_revisit_s: float = 30.0  # never ask a node for samples more often, whatever it says
    idle_revisit_s: float = 3600.0  # revisit a drained node (or one with nothing) this late
    find_interval_s: float = 300.0  # find_node to one node at most this often
    dead_retry_s: float = 1800.0  # a node that did not answer is tried again this late
    drained_after: int = 3  # sample answers in a row with nothing new: the node is drained
    own_target_share: float = 0.25  # share of find_node aimed at our own ids
    max_failures: int = 2  # consecutive failures before a node counts as dead
    retry_s: float = 5.0  # after a timeout, try a node again this late


class Support:
    UNKNOWN = 0
    YES = 1
    NO = 2


@dataclass(slots=True)
class NodeRecord:
    """What the crawl knows of one node (keyed by address)."""

    addr: Addr
    node_id: bytes | None
    first_seen: float
    support: int = Support.UNKNOWN
    last_reply: float | None = None
    queries: int = 0
    replies: int = 0
    failures: int = 0  # consecutive
    num: int | None = None  # BEP 51 num of the last answer
    interval: int | None = None  # BEP 51 interval of the last answer
    samples: int = 0  # samples received, all answers
    new_hashes: int = 0  # info-hashes first found through this node
    dry_answers: int = 0  # consecutive sample answers that brought nothing new
    next_sample_at: float = 0.0  # earliest time for the next sample_infohashes (or retry)
    next_find_at: float = 0.0  # earliest time for the next find_node
    in_flight: bool = False
    dead_until: float = 0.0
    seed: bool = False  # given by the operator, not learned


@dataclass(frozen=True, slots=True)
class CrawlQuery:
    """A query to send: ``method`` to ``addr`` with ``target``, from our node ``via``."""

    qid: int
    addr: Addr
    method: bytes  # b"sample_infohashes" or b"find_node"
    target: bytes
    via: int  # index of our node (one per node id)


@dataclass(slots=True)
class CrawlStats:
    queries: dict[str, int] = field(default_factory=dict)  # sent, by method
    replies: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # timeout, error-203, ...
    nodes_met: int = 0
    bep51_yes: int = 0
    bep51_no: int = 0
    sample_replies: int = 0
    samples: int = 0  # info-hashes received in samples (with repeats)
    bad_samples: int = 0  # answers whose samples were not a multiple of 20 bytes
    refused: int = 0  # learned addresses refused by the address policy
    frontier_dropped: int = 0
    evicted: int = 0
    bytes_out: int = 0
    bytes_in: int = 0

    @property
    def sent(self) -> int:
        return sum(self.queries.values())

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


def failure_kind(reason: str) -> str:
    """A short kind for a query failure reason (``DhtQueryError.reason``)."""
    if reason.startswith("error "):
        code = reason[6:].split(":", 1)[0].strip()
        return f"error-{code}" if code.isdigit() else "error"
    if reason.startswith("bad response"):
        return "bad-response"
    if reason.startswith("no IPv"):
        return "no-socket"
    return reason.split(":", 1)[0].strip().replace(" ", "-") or "unknown"


class _ByteBudget:
    """Bytes per second with a one-second burst; answers may overdraw it (a debt)."""

    __slots__ = ("_last", "allowance", "burst", "rate")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.burst = rate
        self.allowance = rate
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self.allowance = min(self.burst, self.allowance + (now - self._last) * self.rate)
            self._last = now

    def ready_at(self, now: float, n: float) -> float:
        self._refill(now)
        need = min(n, self.burst)
        missing = need - self.allowance
        return now if missing <= 0 else now + missing / self.rate

    def charge(self, now: float, n: float) -> None:
        self._refill(now)
        self.allowance -= n


class CrawlScheduler:
    """Decides the crawl's queries. ``own_ids``: one per node we crawl from (``via``)."""

    def __init__(
        self,
        own_ids: Sequence[bytes],
        *,
        rng: random.Random,
        now: float,
        config: SchedulerConfig | None = None,
        accept: Callable[[Addr], bool] | None = None,
    ) -> None:
        if not own_ids:
            raise ValueError("need at least one node id to crawl from")
        cfg = self.config = config or SchedulerConfig()
        if cfg.qps <= 0 or cfg.bandwidth <= 0 or cfg.max_in_flight < 1:
            raise ValueError("qps, bandwidth and max_in_flight must be positive")
        self.own_ids = list(own_ids)
        self._own = set(own_ids)
        self.rng = rng
        self.accept = accept or (lambda addr: True)
        self.nodes: OrderedDict[Addr, NodeRecord] = OrderedDict()  # least recently active first
        self._frontier: deque[Addr] = deque()
        self._due: list[tuple[float, int, Addr]] = []  # (next_sample_at, seq, addr)
        self._seq = 0
        self._next_qid = 1
        self._in_flight: dict[int, tuple[CrawlQuery, NodeRecord]] = {}
        # Nodes that answered, by when they were last asked for nodes: the discovery walk.
        self._walk: OrderedDict[Addr, None] = OrderedDict()
        self._via = 0
        self._fresh_first = False  # whether new nodes go before due ones at the next pick
        # A tenth of a second's worth at once: bursts of answers overflow socket buffers.
        self._qps = TokenBucket(cfg.qps, max(1.0, cfg.qps / 10), now=now)
        self._bytes = _ByteBudget(cfg.bandwidth, now)
        self.stats = CrawlStats()

    # --- feeding addresses -------------------------------------------------------------------

    def add_seeds(self, addrs: Iterable[Addr], now: float) -> None:
        """Operator-given entry points (bootstrap routers): not filtered by ``accept``."""
        for addr in addrs:
            self._meet(addr, None, now, seed=True)

    def reseed(self, addrs: Iterable[Addr], now: float) -> None:
        """Ask the seeds again (start-up, while nobody has answered yet)."""
        for addr in addrs:
            rec = self.nodes.get(addr)
            if rec is None:
                self._meet(addr, None, now, seed=True)
            elif not rec.in_flight and rec.last_reply is None and addr not in self._frontier:
                failed_at = rec.dead_until - self.config.dead_retry_s
                if now - failed_at >= SEED_RETRY_S:
                    self._frontier.append(addr)

    def heard_about(self, contacts: Iterable[NodeContact], now: float) -> int:
        """Nodes mentioned by others (``nodes`` in answers). Returns how many were new."""
        new = 0
        for c in contacts:
            if c.id in self._own:
                continue
            if c.addr in self.nodes:
                continue
            if not self.accept(c.addr):
                self.stats.refused += 1
                continue
            new += self._meet(c.addr, c.id, now)
        return new

    def queried_by(self, addr: Addr, now: float) -> None:
        """A node sent us a query: it is alive, and worth meeting if we have not."""
        if addr in self.nodes:
            return
        if not self.accept(addr):
            self.stats.refused += 1
            return
        self._meet(addr, None, now)

    def _meet(self, addr: Addr, node_id: bytes | None, now: float, *, seed: bool = False) -> int:
        if addr in self.nodes:
            return 0
        if len(self._frontier) >= self.config.max_frontier:
            self.stats.frontier_dropped += 1
            return 0
        if len(self.nodes) >= self.config.max_nodes:
            self._evict()
        self.nodes[addr] = NodeRecord(addr, node_id, now, seed=seed)
        self._frontier.append(addr)
        self.stats.nodes_met += 1
        return 1

    def _evict(self) -> None:
        for addr, rec in self.nodes.items():
            if not rec.in_flight:
                del self.nodes[addr]  # its frontier or heap entry is skipped when reached
                self.stats.evicted += 1
                return

    # --- what to send next -------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def frontier(self) -> int:
        return len(self._frontier)

    def next_query(self, now: float) -> CrawlQuery | None:
        """The next query to send now, or None (then ask ``get_timer`` when to try again)."""
        if len(self._in_flight) >= self.config.max_in_flight:
            return None
        if self._bytes.ready_at(now, SAMPLE_QUERY_BYTES) > now:
            return None
        if self._qps.tokens(now) < 1:
            return None
        pick = self._pick(now)
        if pick is None:
            return None
        rec, method = pick
        self._qps.take(now)
        self._bytes.charge(now, SAMPLE_QUERY_BYTES)
        self.stats.bytes_out += SAMPLE_QUERY_BYTES
        via = self._via
        self._via = (self._via + 1) % len(self.own_ids)
        if method == b"find_node" and self.rng.random() < self.config.own_target_share:
            target = self.own_ids[via]
        else:
            target = self.rng.getrandbits(160).to_bytes(20, "big")
        q = CrawlQuery(self._next_qid, rec.addr, method, target, via)
        self._next_qid += 1
        rec.in_flight = True
        rec.queries += 1
        if method == b"find_node":
            rec.next_find_at = now + self.config.find_interval_s
        name = method.decode()
        self.stats.queries[name] = self.stats.queries.get(name, 0) + 1
        self._in_flight[q.qid] = (q, rec)
        self.nodes.move_to_end(rec.addr)
        return q

    def _pick(self, now: float) -> tuple[NodeRecord, bytes] | None:
        # Nodes not asked yet and nodes due again take turns. Either alone can always have
        # someone ready: supporting nodes with short intervals and a full in-flight window
        # would keep new nodes waiting forever, and the endless frontier of a big DHT would
        # keep a productive node from its revisit.
        self._fresh_first = not self._fresh_first
        if self._fresh_first:
            pick = self._pick_fresh(now) or self._pick_due(now)
        else:
            pick = self._pick_due(now) or self._pick_fresh(now)
        # Nobody new, nobody due: walk on, find_node to a node not asked for nodes lately.
        return pick or self._discovery(now)

    def _pick_due(self, now: float) -> tuple[NodeRecord, bytes] | None:
        """Supporting nodes whose interval has passed, and retries."""
        due = self._due
        while due and due[0][0] <= now:
            at, _, addr = heapq.heappop(due)
            rec = self.nodes.get(addr)
            if rec is None or rec.next_sample_at != at:
                continue  # evicted or rescheduled: a stale entry
            if rec.in_flight:  # busy with another query: a little later
                self._push(rec, now + 1.0)
                continue
            return rec, b"find_node" if rec.support == Support.NO else b"sample_infohashes"
        return None

    def _pick_fresh(self, now: float) -> tuple[NodeRecord, bytes] | None:
        """Nodes met and not asked yet."""
        frontier = self._frontier
        while frontier:
            addr = frontier.popleft()
            rec = self.nodes.get(addr)
            if rec is None or rec.in_flight:
                continue
            if rec.support == Support.NO:
                return rec, b"find_node"
            if rec.support == Support.YES and rec.next_sample_at > now:
                self._push(rec, rec.next_sample_at)  # back in line: its interval holds
                continue
            return rec, b"sample_infohashes"
        return None

    def _discovery(self, now: float) -> tuple[NodeRecord, bytes] | None:
        walk = self._walk
        for _ in range(8):
            if not walk:
                return None
            addr = next(iter(walk))
            rec = self.nodes.get(addr)
            if rec is None or rec.failures:
                del walk[addr]  # evicted or failing: it comes back when it answers
                continue
            if rec.next_find_at > now:
                return None  # the head is the next one due
            walk.move_to_end(addr)
            if rec.in_flight:
                continue
            return rec, b"find_node"
        return None

    def get_timer(self, now: float) -> float | None:
        """When ``next_query`` may return a query again (None: only after an answer)."""
        if len(self._in_flight) >= self.config.max_in_flight:
            return None
        budget = max(self._bytes.ready_at(now, SAMPLE_QUERY_BYTES), self._qps.next_available(now))
        if budget <= now and self._qps.tokens(now) < 1:
            budget = now + 1e-3  # float rounding: a hair short of a whole token
        if self._frontier:
            return budget
        due = self._due[0][0] if self._due else math.inf
        for addr in self._walk:
            rec = self.nodes.get(addr)
            due = min(due, rec.next_find_at if rec is not None else now)
            break
        if due == math.inf:
            return None
        return max(budget, due)

    # --- outcomes ----------------------------------------------------------------------------

    def on_reply(
        self,
        qid: int,
        now: float,
        *,
        node_id: bytes,
        nodes: Sequence[NodeContact] = (),
        samples: bytes | None = None,
        num: object = None,
        interval: object = None,
    ) -> list[bytes]:
        """An answer came. ``samples`` is None when the answer had no ``samples`` key.

        Returns the info-hashes sampled (empty for find_node or unsupported); the caller
        then tells ``sampled_yield`` how many of them were new to the crawl.
        """
        entry = self._in_flight.pop(qid, None)
        if entry is None:
            return []
        q, rec = entry
        st = self.stats
        st.replies += 1
        rec.in_flight = False
        rec.failures = 0
        rec.last_reply = now
        rec.replies += 1
        rec.node_id = node_id
        if rec.addr not in self._walk and len(self._walk) < self.config.max_nodes:
            # It just gave us nodes: the walk asks it again after find_interval_s.
            rec.next_find_at = max(rec.next_find_at, now + self.config.find_interval_s)
            self._walk[rec.addr] = None
        size = REPLY_OVERHEAD_BYTES + NODE_BYTES * len(nodes)
        hashes: list[bytes] = []
        if q.method == b"sample_infohashes":
            if samples is None:
                self._set_support(rec, Support.NO)
                rec.next_find_at = now + self.config.find_interval_s  # it answered as find_node
            else:
                self._set_support(rec, Support.YES)
                size += len(samples)
                st.sample_replies += 1
                if len(samples) % SAMPLE_BYTES:
                    st.bad_samples += 1
                else:
                    hashes = [samples[i : i + 20] for i in range(0, len(samples), SAMPLE_BYTES)]
                st.samples += len(hashes)
                rec.samples += len(hashes)
                rec.num = _clamp_num(num)
                rec.interval = _clamp_interval(interval)
                self._schedule(rec, now, rec.interval, len(hashes))
        st.bytes_in += size
        self._bytes.charge(now, size)
        self.nodes.move_to_end(rec.addr)
        self.heard_about(nodes, now)
        return hashes

    def sampled_yield(self, addr: Addr, new: int, now: float) -> None:
        """How many of a node's last samples were new to the crawl (decides revisits)."""
        rec = self.nodes.get(addr)
        if rec is None:
            return
        rec.new_hashes += new
        if new:
            rec.dry_answers = 0
            return
        rec.dry_answers += 1
        if rec.dry_answers >= self.config.drained_after and rec.interval is not None:
            wait = max(rec.interval, self.config.idle_revisit_s, self.config.min_revisit_s)
            if now + wait > rec.next_sample_at:
                self._push(rec, now + wait)

    def on_failure(self, qid: int, now: float, reason: str) -> None:
        """A query failed: timeout, KRPC error, or not sent (busy)."""
        entry = self._in_flight.pop(qid, None)
        if entry is None:
            return
        q, rec = entry
        kind = failure_kind(reason)
        self.stats.failures[kind] = self.stats.failures.get(kind, 0) + 1
        rec.in_flight = False
        if kind in {"busy", "no-socket"}:
            if kind == "busy" and len(self._frontier) < self.config.max_frontier:
                self._frontier.append(rec.addr)  # our side was full: try it again soon
            return
        if kind.startswith("error"):
            # It answered: alive. 203/204 to sample_infohashes means no BEP 51 support.
            rec.failures = 0
            rec.last_reply = now
            if rec.addr not in self._walk and len(self._walk) < self.config.max_nodes:
                self._walk[rec.addr] = None
            if q.method == b"sample_infohashes" and kind in ("error-203", "error-204"):
                self._set_support(rec, Support.NO)
                rec.next_find_at = now  # still good for discovery
            return
        rec.failures += 1
        rec.next_find_at = max(rec.next_find_at, now + self.config.min_revisit_s)
        if rec.failures >= self.config.max_failures:
            rec.dead_until = now + self.config.dead_retry_s
            rec.next_find_at = rec.dead_until
            self._push(rec, max(rec.next_sample_at, rec.dead_until))
        else:
            # A lost answer (ours or theirs): try once more. A supporting node's interval
            # still holds; we never saw an answer that could have changed it.
            self._push(rec, max(rec.next_sample_at, now + self.config.retry_s))

    # --- internals ---------------------------------------------------------------------------

    def _set_support(self, rec: NodeRecord, support: int) -> None:
        if rec.support == support:
            return
        if rec.support == Support.YES:
            self.stats.bep51_yes -= 1
        elif rec.support == Support.NO:
            self.stats.bep51_no -= 1
        rec.support = support
        if support == Support.YES:
            self.stats.bep51_yes += 1
        else:
            self.stats.bep51_no += 1

    def _schedule(self, rec: NodeRecord, now: float, interval: int, shown: int) -> None:
        """When to ask a supporting node again, from its interval and num (BEP 51)."""
        cfg = self.config
        wait = max(float(interval), cfg.min_revisit_s)
        more = rec.num is not None and rec.num > shown
        if not more:
            # It showed all it has (or has nothing): its store changes slowly.
            wait = max(wait, cfg.idle_revisit_s)
        self._push(rec, now + wait)

    def _push(self, rec: NodeRecord, at: float) -> None:
        rec.next_sample_at = at
        self._seq += 1
        heapq.heappush(self._due, (at, self._seq, rec.addr))
        if len(self._due) > 2 * max(len(self.nodes), 1024):
            # Stale entries (rescheduled nodes) pile up only after many reschedules: rebuild.
            live = [
                (r.next_sample_at, i, r.addr)
                for i, r in enumerate(self.nodes.values())
                if r.next_sample_at > 0
                and not r.in_flight
                and (r.support == Support.YES or r.failures)
            ]
            heapq.heapify(live)
            self._due = live

    def snapshot(self) -> dict[str, int]:
        """Counts for progress lines."""
        return {
            "nodes": len(self.nodes),
            "frontier": len(self._frontier),
            "due": len(self._due),
            "in_flight": len(self._in_flight),
        }


def _clamp_num(value: object) -> int | None:
    """BEP 51 num: a non-negative int, at most ``MAX_NUM``; anything else is unknown."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return None
    return min(value, MAX_NUM)


def _clamp_interval(value: object) -> int:
    """BEP 51: interval is 0..21600 s. Missing or absurd: assume the longest."""
    if not isinstance(value, int) or isinstance(value, bool):
        return BEP51_MAX_INTERVAL_S
    return min(max(value, 0), BEP51_MAX_INTERVAL_S)
