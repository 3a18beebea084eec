"""The DHT node's protocol core (BEP 5, with BEP 42 ``ip``, BEP 43 ``ro``, BEP 51 samples).

``DhtProtocol`` is sans-IO in the aioquic manner: the driver feeds it datagrams and the
current time, and takes back datagrams to send, one timer deadline and events. It owns the
routing table, tokens, peer store, pending transactions and running lookups; it never opens
a socket, reads a clock or draws randomness other than from the ``random.Random`` it is given.
``dht.io.node.Node`` drives one over asyncio; ``dht.simulation`` drives thousands on a virtual
clock.

Input never raises: garbage is dropped and counted, a decodable query with bad arguments gets
error 203, an unknown method 204 (libtorrent sends 203 for that; both are accepted from
others). A datagram's path: ``receive_datagram`` -> ``wire.decode`` -> ``_on_query`` (answer
from routing table, tokens, storage) or ``_on_response`` (transactions -> lookup or request)
-> queued for ``datagrams_to_send``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dht.addresses import AddressPolicy
from dht.events import (
    BootstrapStalled,
    DhtEvent,
    ExternalAddressChanged,
    InfoHashSeen,
    LookupDone,
    PeersFound,
    QueryAnswered,
    QueryFailed,
)
from dht.external_ip import ExternalIpVoter
from dht.ids import bep42_exempt, bep42_id, bep42_valid, id_to_int, random_id, random_id_in_bucket
from dht.pool import NodePool
from dht.ratelimit import SourceRateLimiter, TokenBucket
from dht.routing import RoutingTable
from dht.storage import PeerStore
from dht.tokens import TokenIssuer
from dht.transactions import Pending, Transactions
from dht.traversal import Lookup
from dht.version import KRPC_VERSION
from dht.wire import (
    ERROR_METHOD_UNKNOWN,
    ERROR_PROTOCOL,
    Addr,
    KrpcDecodeError,
    KrpcError,
    NodeContact,
    Query,
    Response,
    decode,
    encode_error,
    encode_query,
    encode_response,
    pack_addr,
)

__all__ = ["VERSION", "DhtConfig", "DhtProtocol", "Stats"]


VERSION = KRPC_VERSION  # BEP 5 ``v``: from dht.version


@dataclass(slots=True)
class DhtConfig:
    k: int = 8
    alpha: int = 3
    query_timeout_s: float = 4.0  # a query is failed after this long
    soft_timeout_s: float = 1.0  # a lookup stops waiting for a query after this long
    max_pending: int = 4096  # outstanding queries, all kinds together
    lookup_timeout_s: float = 60.0
    lookup_max_queries: int = 400
    maintenance_s: float = 1.0  # how often to ping, refresh and expire
    refresh_s: float = 15 * 60.0  # refresh a bucket unchanged for this long (BEP 5)
    pings_per_tick: int = 8  # liveness and candidate pings per maintenance tick
    max_peer_hashes: int = 20_000
    max_peers_per_hash: int = 500
    max_total_peers: int = 200_000  # peers stored over all info-hashes
    peer_ttl_s: float = 45 * 60.0
    max_values: int = 50  # peers per get_peers answer: keeps answers well under 1024 bytes
    sample_count: int = 20  # BEP 51 samples per answer (libtorrent's cap)
    sample_interval_s: int = 6 * 3600  # BEP 51 interval we ask crawlers to respect
    bootstrap_backoff_s: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 30.0, 60.0)
    read_only: bool = False  # BEP 43: answer nothing, say ro=1
    secure_id: bool = False  # BEP 42: take a conforming node id once our external IP is known
    enforce_node_id: bool = False  # BEP 42: keep nodes with non-conforming ids out of the table
    bep42_exempt_local: bool = True  # local addresses are exempt from BEP 42 (tests turn it off)
    # Who we send to (nodes learned from others): None accepts every address (simulator);
    # dht.Node derives it from the bound address and the bootstrap routers.
    address_policy: AddressPolicy | None = None
    rate_per_ip: float = 0.0  # queries/s one source IP may send us (0: no limit)
    rate_burst: float = 100.0
    max_sources: int = 100_000  # source IPs tracked by the limiter
    max_query_rate: float = 0.0  # queries/s we answer in all (0: no limit)
    max_out_rate: float = 0.0  # queries/s we send in all (0: no limit)
    bootstrap_mode: bool = False  # a router: answer find_node from a big pool, store no peers
    pool_size: int = 100_000  # verified nodes a router keeps
    pool_verifying: int = 256  # verification pings a router keeps in flight at most
    pool_reverify_s: float = 15 * 60.0
    observe: bool = False  # emit InfoHashSeen for incoming get_peers/announce_peer
    version: bytes = VERSION


@dataclass(slots=True)
class Stats:
    """Counters for status lines and metrics. Only ever incremented."""

    received: int = 0
    sent: int = 0
    queries_in: dict[str, int] = field(default_factory=dict)
    queries_out: dict[str, int] = field(default_factory=dict)
    responses_in: int = 0
    errors_in: int = 0
    errors_out: int = 0
    timeouts: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


_METHOD_NAMES = {
    m: m.decode()
    for m in (b"ping", b"find_node", b"get_peers", b"announce_peer", b"sample_infohashes")
}


class _LookupState:
    __slots__ = (
        "announce_port",
        "announce_waiting",
        "announced",
        "deadline",
        "id",
        "implied_port",
        "kind",
        "lookup",
    )

    def __init__(self, rid: int, kind: str, lookup: Lookup, deadline: float) -> None:
        self.id = rid
        self.kind = kind
        self.lookup = lookup
        self.deadline = deadline
        self.announce_port = 0
        self.implied_port = False
        self.announce_waiting = -1  # announce phase: queries still out; -1 = not started
        self.announced = 0


class _Request:
    __slots__ = ("id", "node_id")

    def __init__(self, rid: int, node_id: bytes | None) -> None:
        self.id = rid
        self.node_id = node_id


class _Maintenance:
    """Marks internal pings (liveness, candidates, bootstrap) so their answers emit nothing."""

    __slots__ = ("node_id",)

    def __init__(self, node_id: bytes | None) -> None:
        self.node_id = node_id


class DhtProtocol:
    def __init__(
        self,
        node_id: bytes | None = None,
        *,
        rng: random.Random,
        now: float,
        config: DhtConfig | None = None,
        family: int = 4,
        first_request_id: int = 1,
    ) -> None:
        """``family`` 4 or 6: which DHT this core is part of (BEP 32 runs the IPv6 DHT as a
        separate network with its own table); ``sibling`` may link the other family's core
        so that ``want`` can be answered with both kinds of nodes."""
        self.config = config or DhtConfig()
        self.family = family
        self._nodes_key = b"nodes" if family == 4 else b"nodes6"
        self.sibling: DhtProtocol | None = None
        self.rng = rng
        self.node_id = node_id if node_id is not None else random_id(rng)
        cfg = self.config
        self.routing = RoutingTable(self.node_id, now=now, k=cfg.k)
        self.tokens = TokenIssuer(rng, now)
        self.storage = PeerStore(
            max_hashes=cfg.max_peer_hashes,
            max_peers=cfg.max_peers_per_hash,
            ttl_s=cfg.peer_ttl_s,
            max_total=cfg.max_total_peers,
        )
        self.stats = Stats()
        self._tx = Transactions(cfg.max_pending, rng.getrandbits(16))
        self._out: list[tuple[bytes, Addr]] = []
        self._events: deque[DhtEvent] = deque()
        self._next_id = first_request_id
        self._lookups: dict[int, _LookupState] = {}
        self._waiting: deque[_LookupState] = deque()  # lookups that ran out of query slots
        self._pinging: set[bytes] = set()
        self._next_maintenance = now + cfg.maintenance_s
        # Bumped whenever the deadline may have moved earlier (a query sent): lets a driver
        # skip get_timer() after datagrams that only got answered.
        self.timer_version = 0
        self._routers: list[Addr] = []
        self._saved: list[NodeContact] = []  # contacts from a saved state, for bootstrap
        self._bootstrap_id: int | None = None
        self._bootstrap_attempt = 0
        self._bootstrap_retry_at: float | None = None
        self._last_expire = now
        self.external_ip = ExternalIpVoter()
        self.pool = NodePool(cfg.pool_size) if cfg.bootstrap_mode else None
        self.policy = cfg.address_policy
        self._limiter = (
            SourceRateLimiter(cfg.rate_per_ip, max(1.0, cfg.rate_burst), cfg.max_sources)
            if cfg.rate_per_ip > 0
            else None
        )
        self._in_bucket = (
            TokenBucket(cfg.max_query_rate, max(1.0, cfg.max_query_rate), now=now)
            if cfg.max_query_rate > 0
            else None
        )
        self._out_bucket = (
            TokenBucket(cfg.max_out_rate, max(1.0, cfg.max_out_rate / 4), now=now)
            if cfg.max_out_rate > 0
            else None
        )
        self._limited = self._limiter is not None or self._in_bucket is not None
        self._throttled_until: float | None = None  # out of sending budget until then
        self._verifying: set[bytes] = set()

    # --- the sans-IO surface ------------------------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out = self._out
        self._out = []
        self.stats.sent += len(out)
        return out

    def next_event(self) -> DhtEvent | None:
        return self._events.popleft() if self._events else None

    @property
    def has_events(self) -> bool:
        return bool(self._events)

    def get_timer(self) -> float | None:
        deadline = self._tx.next_deadline()
        m = self._next_maintenance
        if deadline is None or m < deadline:
            deadline = m
        throttled = self._throttled_until
        return throttled if throttled is not None and throttled < deadline else deadline

    def handle_timer(self, now: float) -> None:
        if self._throttled_until is not None and now >= self._throttled_until:
            self._throttled_until = None
        soft, hard = self._tx.expire(now)
        for p in soft:
            owner = p.owner
            if type(owner) is tuple:
                state, cand = owner
                state.lookup.on_stall(cand)
                self._advance(state, now)
        for p in hard:
            self.stats.timeouts += 1
            self._pinging.discard(p.node_id or b"")
            if p.node_id is not None:
                self.routing.node_failed(p.node_id, now)
                if self.pool is not None:
                    self._verifying.discard(p.node_id)
                    self.pool.remove(p.node_id)
            self._fail(p, "timeout", now)
        if now >= self._next_maintenance:
            self._maintenance(now)
        self._pump_waiting(now)

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        stats = self.stats
        stats.received += 1
        # Limits apply to queries only (every canonical query ends with its "y": "q"), so
        # answers to our own lookups are never dropped; checked before decoding, as cheap as
        # dropping gets. Queries from this host (testnets, local tools) are not limited.
        if self._limited and data.endswith(b"1:y1:qe") and not self._admit(addr[0], now):
            return
        try:
            msg = decode(data)
        except KrpcDecodeError as exc:
            if exc.t is None:
                stats.drop("garbage")
            elif exc.is_query:
                if self.config.read_only:
                    stats.drop("read-only")
                    return
                stats.errors_out += 1
                self._out.append(
                    (encode_error(exc.t, exc.code, exc.reason, version=self.config.version), addr)
                )
            else:
                stats.drop("bad response")
                p = self._tx.match(exc.t, addr)
                if p is not None:
                    self._fail(p, f"bad response: {exc.reason}", now)
            return
        kind = type(msg)
        if kind is Query:
            self._on_query(msg, addr, now)  # type: ignore[arg-type]
        elif kind is Response:
            self._on_response(msg, addr, now)  # type: ignore[arg-type]
        else:
            self._on_error(msg, addr, now)  # type: ignore[arg-type]

    # --- commands -----------------------------------------------------------------------------

    def _new_id(self) -> int:
        rid = self._next_id
        self._next_id += 1
        return rid

    def ping(self, addr: Addr, now: float) -> int:
        """Ping ``addr``; answered with QueryAnswered or QueryFailed carrying the returned id."""
        return self.query(addr, b"ping", {}, now)

    def query(
        self,
        addr: Addr,
        method: bytes,
        args: dict[bytes, Any],
        now: float,
        node_id: bytes | None = None,
    ) -> int:
        """Send one query of any method (``id`` is added). Answered like ``ping``."""
        rid = self._new_id()
        if self._send_query(addr, method, args, now, _Request(rid, node_id), node_id) is None:
            self._events.append(QueryFailed(rid, addr, "busy"))
        return rid

    def find_node(self, target: bytes, now: float, *, seeds: Iterable[Addr] = ()) -> int:
        return self._start_lookup("find_node", target, now, seeds)

    def get_peers(self, info_hash: bytes, now: float, *, seeds: Iterable[Addr] = ()) -> int:
        return self._start_lookup("get_peers", info_hash, now, seeds)

    def announce(
        self, info_hash: bytes, port: int, now: float, *, implied_port: bool = False
    ) -> int:
        """get_peers for ``info_hash``, then announce_peer to the K closest with their tokens."""
        rid = self._start_lookup("announce", info_hash, now, (), start=False)
        state = self._lookups[rid]
        state.announce_port = port
        state.implied_port = implied_port
        self._advance(state, now)
        return rid

    def bootstrap(self, routers: Sequence[Addr], now: float) -> int:
        """Join the DHT: a lookup for our own id seeded with ``routers`` and known nodes.

        If nothing answers and the table stays empty, it is retried with back-off (an event
        ``BootstrapStalled`` says so each time).
        """
        self._routers = list(routers)
        self._bootstrap_attempt = 0
        self._bootstrap_retry_at = None
        rid = self.find_node(self.node_id, now, seeds=self._routers)
        if self._saved:
            # Nodes from a saved table go first: they are real nodes near us.
            state = self._lookups[rid]
            state.lookup.add_nodes(self._saved)
            self._advance(state, now)
        self._bootstrap_id = rid
        return rid

    def restore(self, contacts: Iterable[NodeContact], external_ip: str | None, now: float) -> int:
        """Take back what a saved state knew: our external address, and the nodes of our
        table, which become candidates (pinged, admitted when they answer) and the first
        nodes the next bootstrap asks, so a restarted node rejoins without the routers.
        Returns how many contacts were kept."""
        if external_ip is not None:
            self.external_ip.restore(external_ip)
        kept = 0
        for c in contacts:
            if self.acceptable(c.addr) and c.id != self.node_id:
                self.routing.heard_about(c.id, c.addr, now)
                self._saved.append(c)
                kept += 1
        del self._saved[: max(0, len(self._saved) - 4 * self.config.k * 20)]
        return kept

    def add_node(self, addr: Addr, now: float) -> None:
        """Ping a node we were told about; it joins the table if it answers."""
        self._send_query(addr, b"ping", {}, now, _Maintenance(None), None)

    def cancel(self, request_id: int) -> None:
        state = self._lookups.pop(request_id, None)
        if state is not None:
            for p in self._tx.pending():
                if type(p.owner) is tuple and p.owner[0] is state:
                    self._tx.cancel(p)

    def status(self, now: float) -> dict[str, Any]:
        """A snapshot for status lines and metrics (plain JSON-able values)."""
        good, questionable, bad = self.routing.counts(now)
        st = self.stats
        return {
            "nodes": len(self.routing),
            "good": good,
            "questionable": questionable,
            "bad": bad,
            "buckets": self.routing.bucket_count,
            "received": st.received,
            "sent": st.sent,
            "queries_in": dict(st.queries_in),
            "queries_out": dict(st.queries_out),
            "responses_in": st.responses_in,
            "errors_in": st.errors_in,
            "errors_out": st.errors_out,
            "timeouts": st.timeouts,
            "dropped": dict(st.dropped),
            "info_hashes": len(self.storage),
            "peers": self.storage.peer_count,
            "lookups": len(self._lookups),
            "pool": len(self.pool) if self.pool is not None else None,
            "pending": len(self._tx),
        }

    @property
    def active_lookups(self) -> int:
        return len(self._lookups)

    @property
    def pending_queries(self) -> int:
        return len(self._tx)

    def _admit(self, ip: str, now: float) -> bool:
        if ip.startswith("127.") or ip == "::1":
            return True
        if self._limiter is not None and not self._limiter.allow(ip, now):
            self.stats.drop("rate limited")
            return False
        if self._in_bucket is not None and not self._in_bucket.take(now):
            self.stats.drop("over the global query rate")
            return False
        return True

    def acceptable(self, addr: Addr) -> bool:
        """May we send to ``addr``, a node someone told us about? (address hygiene)"""
        policy = self.policy
        return policy is None or policy.acceptable(addr)

    # --- answering queries (the hot path) -----------------------------------------------------

    def _on_query(self, q: Query, addr: Addr, now: float) -> None:
        stats = self.stats
        cfg = self.config
        method = q.method
        name = _METHOD_NAMES.get(method, "other")
        stats.queries_in[name] = stats.queries_in.get(name, 0) + 1
        if cfg.read_only:
            stats.drop("read-only")
            return
        try:
            ip = pack_addr(addr)
        except (OSError, ValueError):
            stats.drop("bad source address")
            return
        r: dict[bytes, Any]
        if method == b"ping":
            r = {b"id": self.node_id}
        elif method == b"find_node":
            r = {b"id": self.node_id}
            self._add_nodes(r, q)
        elif method == b"get_peers":
            info_hash: bytes = q.target  # type: ignore[assignment]
            r = {b"id": self.node_id}
            self._add_nodes(r, q)
            if self.pool is None:  # a router stores no peers, so it hands out no token
                r[b"token"] = self.tokens.issue(addr[0], now)
                values = self.storage.values(info_hash, now, cfg.max_values, self.rng)
                if values:
                    r[b"values"] = values
            if cfg.observe:
                self._events.append(InfoHashSeen(info_hash, "get_peers", addr, None))
        elif method == b"announce_peer":
            info_hash = q.target  # type: ignore[assignment]
            args = q.args
            if self.pool is not None or not self.tokens.check(args[b"token"], addr[0], now):
                self._answer_error(q.t, ERROR_PROTOCOL, "invalid token", ip, addr)
                return
            port = addr[1] if args.get(b"implied_port") else args[b"port"]
            self.storage.add(info_hash, (addr[0], port), now)
            r = {b"id": self.node_id}
            if cfg.observe:
                self._events.append(InfoHashSeen(info_hash, "announce_peer", addr, (addr[0], port)))
        elif method == b"sample_infohashes":
            r = {
                b"id": self.node_id,
                b"interval": cfg.sample_interval_s,
                b"num": len(self.storage),
                b"samples": b"".join(self.storage.sample(cfg.sample_count, self.rng)),
            }
            self._add_nodes(r, q)
        else:
            self._answer_error(q.t, ERROR_METHOD_UNKNOWN, "Method Unknown", ip, addr)
            return
        self._out.append((encode_response(q.t, r, ip=ip, version=cfg.version), addr))
        if q.read_only or (cfg.enforce_node_id and not self._id_conforms(q.id, addr[0])):
            return
        if self.policy is not None and not self.policy.acceptable(addr):
            return  # we answer it, but will not send to it on our own
        if self.routing.node_queried(q.id, addr, now):
            # BEP 5: a node that only queries us is not good; it may join once it answers a ping.
            self._ping_candidate(q.id, addr, now)
        elif self.pool is not None and q.id not in self.pool:
            self._verify_for_pool(q.id, addr, now)

    def _answer_error(self, t: bytes, code: int, message: str, ip: bytes, addr: Addr) -> None:
        self.stats.errors_out += 1
        self._out.append((encode_error(t, code, message, ip=ip, version=self.config.version), addr))

    def _ping_candidate(self, node_id: bytes, addr: Addr, now: float) -> None:
        """Ping a node that could fill a bucket with room, now rather than at the next tick,
        as long as few such pings are out (the rest wait in the replacement cache)."""
        self._confirm(node_id, addr, now, self._pinging, self.config.pings_per_tick)

    def _confirm(self, node_id: bytes, addr: Addr, now: float, out: set[bytes], limit: int) -> None:
        """Ping ``node_id`` unless already pinging it or ``limit`` such pings are out."""
        if (
            len(out) < limit
            and node_id not in out
            and self._send_query(addr, b"ping", {}, now, _Maintenance(node_id), node_id)
        ):
            out.add(node_id)

    def _id_conforms(self, node_id: bytes, ip: str) -> bool:
        return bep42_valid(node_id, ip, exempt_local=self.config.bep42_exempt_local)

    def _external_vote(self, voter_ip: str, seen_ip: str, now: float) -> None:
        changed = self.external_ip.vote(voter_ip, seen_ip)
        if changed is None:
            return
        self._events.append(ExternalAddressChanged(changed))
        if (
            self.config.secure_id
            and not bep42_exempt(changed)
            and not bep42_valid(self.node_id, changed)
        ):
            self.change_id(bep42_id(changed, self.rng), now)

    def change_id(self, node_id: bytes, now: float) -> None:
        """Take a new node id (BEP 42). The table is rebuilt around it: bucket ranges are
        relative to our own id, so every known node is placed again."""
        old = self.routing
        self.node_id = node_id
        self.routing = RoutingTable(node_id, now=now, k=self.config.k)
        for e in old:
            if e.confirmed:
                self.routing.node_seen(e.id, e.addr, e.last_reply, e.rtt)

    def _verify_for_pool(self, node_id: bytes, addr: Addr, now: float) -> None:
        """A router pings a querier before it hands the node out to others."""
        self._confirm(node_id, addr, now, self._verifying, self.config.pool_verifying)

    def _nodes_for(self, target: bytes) -> bytes:
        if self.pool is not None and len(self.pool) >= self.config.k:
            return self.pool.closest_compact(target, self.config.k)
        return self.routing.closest_compact(target)

    def _add_nodes(self, r: dict[bytes, Any], q: Query) -> None:
        """``nodes`` (IPv4 DHT) or ``nodes6`` (IPv6 DHT) closest to the target; both kinds
        when the query says ``want`` (BEP 32) and the other family's core is linked."""
        target: bytes = q.target  # type: ignore[assignment]
        want = q.args.get(b"want")
        if not want:
            if self.pool is None:
                r[self._nodes_key] = self.routing.closest_compact(target)
            else:
                r[self._nodes_key] = self._nodes_for(target)
            return
        answered = False
        for family, key in ((4, b"n4"), (6, b"n6")):
            if key in want:
                core = self if family == self.family else self.sibling
                if core is not None:
                    r[b"nodes" if family == 4 else b"nodes6"] = core._nodes_for(target)
                    answered = True
        if not answered:
            r[self._nodes_key] = self._nodes_for(target)

    # --- replies to our queries ---------------------------------------------------------------

    def _on_response(self, msg: Response, addr: Addr, now: float) -> None:
        p = self._tx.match(msg.t, addr)
        if p is None:
            self.stats.drop("unexpected response")
            return
        self.stats.responses_in += 1
        rtt = now - p.sent_at
        self._pinging.discard(p.node_id or b"")
        if msg.ip is not None and self.acceptable(msg.ip):
            self._external_vote(addr[0], msg.ip[0], now)
        trusted = not self.config.enforce_node_id or self._id_conforms(msg.id, addr[0])
        if trusted:
            self.routing.node_seen(msg.id, addr, now, rtt)
            if self.pool is not None:
                self._verifying.discard(p.node_id or b"")
                self.pool.add(msg.id, addr, now)
        else:
            self.stats.drop("non-conforming node id")
        owner = p.owner
        if type(owner) is tuple and not trusted:
            # BEP 42: its nodes may still help, but its answer neither counts toward the end
            # of the lookup nor gives a token we would announce with.
            state, cand = owner
            state.lookup.on_reply(cand, msg.id, self._usable_nodes(msg))
            state.lookup.on_failure(cand, final=True)
            self._advance(state, now)
        elif type(owner) is tuple:
            state, cand = owner
            # Nodes a reply mentions may fill buckets with room: they wait in the
            # replacement cache until a ping confirms them (BEP 5).
            heard_about = self.routing.heard_about
            nodes = self._usable_nodes(msg)
            for n in nodes:
                if heard_about(n.id, n.addr, now):
                    self._ping_candidate(n.id, n.addr, now)
            new_peers = state.lookup.on_reply(cand, msg.id, nodes, token=msg.token, peers=msg.peers)
            if new_peers and state.id in self._lookups:
                self._events.append(PeersFound(state.id, tuple(new_peers)))
            self._advance(state, now)
        elif type(owner) is _Request:
            self._events.append(QueryAnswered(owner.id, addr, msg, rtt))
        elif type(owner) is _LookupState:  # an announce_peer of an announce
            owner.announced += 1
            self._announce_progress(owner, now)
        self._pump_waiting(now)

    def _usable_nodes(self, msg: Response) -> tuple[NodeContact, ...]:
        """The nodes a reply tells us about, of our family, minus those we must not contact."""
        nodes = msg.nodes if self.family == 4 else msg.nodes6
        policy = self.policy
        if policy is None or not nodes:
            return nodes
        return tuple(n for n in nodes if policy.acceptable(n.addr))

    def _on_error(self, msg: KrpcError, addr: Addr, now: float) -> None:
        self.stats.errors_in += 1
        p = self._tx.match(msg.t, addr)
        if p is None:
            self.stats.drop("unexpected error")
            return
        self._pinging.discard(p.node_id or b"")
        self._fail(p, f"error {msg.code}: {msg.message}", now)

    def _fail(self, p: Pending, reason: str, now: float) -> None:
        owner = p.owner
        if type(owner) is tuple:
            state, cand = owner
            state.lookup.on_failure(cand)
            self._advance(state, now)
        elif type(owner) is _Request:
            self._events.append(QueryFailed(owner.id, p.addr, reason))
        elif type(owner) is _LookupState:
            self._announce_progress(owner, now)
        elif type(owner) is _Maintenance and p.node_id is None:
            pass  # a ping to an address we were told about: nothing to update
        self._pump_waiting(now)

    # --- lookups ------------------------------------------------------------------------------

    def _start_lookup(
        self, kind: str, target: bytes, now: float, seeds: Iterable[Addr], *, start: bool = True
    ) -> int:
        cfg = self.config
        rid = self._new_id()
        lookup = Lookup(
            target,
            own_id=self.node_id,
            k=cfg.k,
            alpha=cfg.alpha,
            max_queries=cfg.lookup_max_queries,
        )
        lookup.add_nodes(e.contact() for e in self.routing.closest(target, cfg.k * 2))
        lookup.add_addresses(seeds)
        state = _LookupState(rid, kind, lookup, now + cfg.lookup_timeout_s)
        self._lookups[rid] = state
        if kind == "get_peers":
            # Peers announced to us count too: we are part of the DHT we search.
            local = self.storage.get(target, now, cfg.max_peers_per_hash, self.rng)
            if local:
                lookup.peers.update(local)
                self._events.append(PeersFound(rid, tuple(local)))
        if start:
            self._advance(state, now)
        return rid

    def _lookup_query(self, state: _LookupState) -> tuple[bytes, dict[bytes, Any]]:
        if state.kind in ("find_node", "refresh"):
            return b"find_node", {b"target": state.lookup.target}
        return b"get_peers", {b"info_hash": state.lookup.target}

    def _advance(self, state: _LookupState, now: float) -> None:
        if self._lookups.get(state.id) is not state or state.announce_waiting >= 0:
            return
        lookup = state.lookup
        method, args = self._lookup_query(state)
        batch = lookup.next_requests()
        for i, cand in enumerate(batch):
            if self._send_query(cand.addr, method, args, now, (state, cand), cand.id) is None:
                # No slot: give back this candidate and the rest of the batch (all marked
                # as asked), or the lookup would wait forever for answers never asked for.
                for unsent in batch[i:]:
                    lookup.unsend(unsent)
                if state not in self._waiting:
                    self._waiting.append(state)
                break
        if lookup.done or (
            lookup.in_flight == 0 and state not in self._waiting and not lookup.waiting()
        ):
            self._finish_lookup(state, now)

    def _pump_waiting(self, now: float) -> None:
        while self._waiting and not self._tx.full and self._throttled_until is None:
            state = self._waiting.popleft()
            self._advance(state, now)

    def _finish_lookup(self, state: _LookupState, now: float, timed_out: bool = False) -> None:
        if state.kind == "announce" and state.announce_waiting < 0 and not timed_out:
            self._start_announce_phase(state, now)
            return
        self._lookups.pop(state.id, None)
        lookup = state.lookup
        nodes = tuple(NodeContact(c.id, c.addr) for c in lookup.closest() if c.id)
        self._events.append(
            LookupDone(
                state.id,
                state.kind,
                lookup.target,
                nodes,
                lookup.queried,
                lookup.replied,
                len(lookup.peers),
                state.announced,
                timed_out,
            )
        )
        if state.id == self._bootstrap_id:
            self._bootstrap_id = None
            if len(self.routing) == 0 and self._routers:
                self._schedule_bootstrap_retry(now)
        # Cancel what is still out for this lookup: its answers are no longer wanted.
        for p in self._tx.pending():
            if type(p.owner) is tuple and p.owner[0] is state:
                self._tx.cancel(p)

    def _start_announce_phase(self, state: _LookupState, now: float) -> None:
        state.announce_waiting = 0
        for cand in state.lookup.closest():
            if cand.token is None:
                continue
            args: dict[bytes, Any] = {
                b"info_hash": state.lookup.target,
                b"port": state.announce_port,
                b"token": cand.token,
            }
            if state.implied_port:
                args[b"implied_port"] = 1
            if self._send_query(cand.addr, b"announce_peer", args, now, state, cand.id) is not None:
                state.announce_waiting += 1
        if state.announce_waiting == 0:
            self._finish_lookup(state, now)

    def _announce_progress(self, state: _LookupState, now: float) -> None:
        state.announce_waiting -= 1
        if state.announce_waiting == 0 and state.id in self._lookups:
            self._finish_lookup(state, now)

    # --- sending ------------------------------------------------------------------------------

    def _send_query(
        self,
        addr: Addr,
        method: bytes,
        args: dict[bytes, Any],
        now: float,
        owner: object,
        node_id: bytes | None,
    ) -> Pending | None:
        cfg = self.config
        bucket = self._out_bucket
        if bucket is not None and not bucket.take(now):
            self.stats.drop("over the outgoing query rate")
            self._throttled_until = bucket.next_available(now)
            self.timer_version += 1
            return None
        p = self._tx.open(
            addr,
            method,
            now,
            timeout=cfg.query_timeout_s,
            soft_timeout=cfg.soft_timeout_s if type(owner) is tuple else None,
            node_id=node_id,
            owner=owner,
        )
        if p is None:
            self.stats.drop("no query slot")
            return None
        self.timer_version += 1
        full_args = dict(args)
        full_args[b"id"] = self.node_id
        self._out.append(
            (
                encode_query(
                    p.tid, method, full_args, version=cfg.version, read_only=cfg.read_only
                ),
                addr,
            )
        )
        name = method.decode("ascii", "replace")
        self.stats.queries_out[name] = self.stats.queries_out.get(name, 0) + 1
        return p

    # --- maintenance --------------------------------------------------------------------------

    def _maintenance(self, now: float) -> None:
        cfg = self.config
        self._next_maintenance = now + cfg.maintenance_s
        for state in [s for s in self._lookups.values() if now >= s.deadline]:
            self._finish_lookup(state, now, timed_out=True)
        if now - self._last_expire >= 60.0:
            self._last_expire = now
            self.storage.expire(now)
        if self._bootstrap_retry_at is not None and now >= self._bootstrap_retry_at:
            self._bootstrap_retry_at = None
            if len(self.routing) == 0:
                self._bootstrap_id = self.find_node(self.node_id, now, seeds=self._routers)
            else:
                self._bootstrap_attempt = 0
        budget = cfg.pings_per_tick
        # Liveness: ping questionable nodes, least recently heard first (BEP 5).
        for e in self.routing.questionable(now):
            if budget <= 0 or self._tx.full:
                break
            if e.id in self._pinging:
                continue
            self._pinging.add(e.id)
            self._send_query(e.addr, b"ping", {}, now, _Maintenance(e.id), e.id)
            budget -= 1
        # Candidates waiting in replacement caches of buckets with room: a ping admits them.
        for e in self.routing.candidates(budget):
            if budget <= 0 or self._tx.full:
                break
            if e.id in self._pinging:
                continue
            self._pinging.add(e.id)
            self._send_query(e.addr, b"ping", {}, now, _Maintenance(e.id), e.id)
            budget -= 1
        # A router re-verifies the pool entries it verified longest ago.
        if self.pool is not None:
            room = cfg.pool_verifying - len(self._verifying)
            for n in self.pool.stale(min(room, 64), now - cfg.pool_reverify_s):
                self._verify_for_pool(n.id, n.addr, now)
        # Refresh buckets nobody touched for 15 minutes with a lookup into their range.
        if len(self.routing) and not any(s.kind == "refresh" for s in self._lookups.values()):
            stale = self.routing.stale_buckets(now, cfg.refresh_s)
            if stale:
                index = stale[0]
                target = random_id_in_bucket(id_to_int(self.node_id), index, self.rng)
                if index == self.routing.bucket_count - 1:
                    target = self.node_id  # the last bucket covers everything near us
                self.routing.buckets()[index].last_changed = now
                self._start_lookup("refresh", target, now, ())

    def _schedule_bootstrap_retry(self, now: float) -> None:
        backoff = self.config.bootstrap_backoff_s
        delay = backoff[min(self._bootstrap_attempt, len(backoff) - 1)]
        self._bootstrap_attempt += 1
        self._bootstrap_retry_at = now + delay
        self._events.append(BootstrapStalled(self._bootstrap_attempt, delay, len(self._routers)))
