"""The DHT node's protocol core (BEP 5, with BEP 42 ``ip``, BEP 43 ``ro``, BEP 51 samples).

``DhtProtocol`` is sans-IO in the aioquic manner: the driver feeds it datagrams and the
current time, and takes back datagrams to send, one timer deadline and events. It never opens
a socket, reads a clock or draws randomness other than from the ``random.Random`` it is given.
``dht.io.node.Node`` drives one over asyncio; ``dht.simulation`` drives thousands on a virtual
clock.

It is a dispatcher over units, each with one job: ``queries.QueryAnswerer`` (answers, one
handler per method), ``lookups.LookupManager`` (running lookups and their queue),
``maintenance.Maintenance`` and ``maintenance.Bootstrap`` (keeping the table alive, joining),
over the state units ``routing``, ``tokens``, ``storage``, ``transactions``. Each query we
send has an owner (``transactions.RequestOwner``) told what became of it; this module only
matches answers and deadlines to queries and calls the owner.

Against a hostile network: ``wire.decode`` refuses deep nesting before decoding; the
admission limits (``ratelimit.QueryAdmission``) hold for every decoded query and charge
garbage to its source; ``answer_size.fit_answer`` keeps answers within a multiple of their
query; the tables limit entries per host and subnet (``subnets``).

Input never raises: garbage is dropped and counted, a decodable query with bad arguments gets
error 203, an unknown method 204 (libtorrent sends 203 for that; both are accepted from
others). A datagram's path: ``receive_datagram`` -> ``wire.decode`` -> ``_on_query`` (a
handler of the answerer) or ``_on_response`` (transactions -> the query's owner) -> queued
for ``datagrams_to_send``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from dht.answer_size import fit_answer
from dht.config import VERSION, DhtConfig, Stats
from dht.events import DhtEvent, ExternalAddressChanged, QueryFailed
from dht.external_ip import ExternalIpVoter
from dht.ids import bep42_exempt, bep42_id, bep42_valid, random_id
from dht.lookups import Announce, FindNode, GetPeers, LookupManager
from dht.maintenance import Bootstrap, Maintenance
from dht.pool import NodePool
from dht.queries import QueryAnswerer, QueryRefusedError
from dht.ratelimit import QueryAdmission, TokenBucket
from dht.requests import UserRequest
from dht.routing import RoutingTable
from dht.storage import PeerStore
from dht.tokens import TokenIssuer
from dht.transactions import NO_OWNER, Pending, RequestOwner, Transactions
from dht.wire import (
    ERROR_METHOD_UNKNOWN,
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

if TYPE_CHECKING:
    from dht.keeper import Republisher

# DhtConfig, Stats and VERSION live in dht.config; drivers and the CLI import them from here.
__all__ = ["VERSION", "DhtConfig", "DhtProtocol", "Stats"]


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
        self.config = cfg = config or DhtConfig()
        self.family = family
        self.sibling: DhtProtocol | None = None
        self.rng = rng
        self.node_id = node_id if node_id is not None else random_id(rng)
        self.routing = RoutingTable(self.node_id, now=now, k=cfg.k)
        self.tokens = TokenIssuer(rng, now)
        self.storage = PeerStore(
            max_hashes=cfg.max_peer_hashes,
            max_peers=cfg.max_peers_per_hash,
            ttl_s=cfg.peer_ttl_s,
            max_total=cfg.max_total_peers,
        )
        self.stats = Stats()
        self.external_ip = ExternalIpVoter()
        self.pool = NodePool(cfg.pool_size) if cfg.bootstrap_mode else None
        self.policy = cfg.address_policy
        self._tx = Transactions(cfg.max_pending, rng.getrandbits(16))
        self._out: list[tuple[bytes, Addr]] = []
        self._events: deque[DhtEvent] = deque()
        self._next_id = first_request_id
        # Bumped whenever the deadline may have moved earlier (a query sent): lets a driver
        # skip get_timer() after datagrams that only got answered.
        self.timer_version = 0
        # The units this core dispatches to.
        self.answers = QueryAnswerer(self, events=self._events)
        # Method -> (name it is counted under, handler): one dict lookup per query for both.
        self._dispatch = {m: (m.decode(), h) for m, h in self.answers.handlers.items()}
        self.lookups = LookupManager(self, config=cfg, tx=self._tx, events=self._events)
        self.maintenance = Maintenance(self, config=cfg, lookups=self.lookups, now=now)
        self.bootstrapper = Bootstrap(self, config=cfg, lookups=self.lookups, events=self._events)
        self.lookups.on_finished = self.bootstrapper.lookup_finished
        # BEP 44: our own and kept items, put again hourly (made on first use, see below).
        self._republisher: Republisher | None = None
        self._born = now
        # Rate limits (0: none): on the queries we answer, and on those we send.
        self._admission = QueryAdmission(
            rate_per_ip=cfg.rate_per_ip,
            burst=cfg.rate_burst,
            max_sources=cfg.max_sources,
            max_rate=cfg.max_query_rate,
            now=now,
        )
        self._limited = self._admission.enabled
        self._out_bucket = (
            TokenBucket(cfg.max_out_rate, max(1.0, cfg.max_out_rate / 4), now=now)
            if cfg.max_out_rate > 0
            else None
        )
        self._throttled_until: float | None = None  # out of sending budget until then

    # --- the sans-IO surface ------------------------------------------------------------------


    @property
    def republisher(self) -> Republisher:
        """The BEP 44 republisher, made on first use: a one-shot client puts nothing, and
        the item modules cost import time that resolve counts from process start."""
        if self._republisher is None:
            from dht.keeper import Republisher

            self._republisher = Republisher(self, self._born)
        return self._republisher
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
        m = self.maintenance.next_at
        if deadline is None or m < deadline:
            deadline = m
        throttled = self._throttled_until
        return throttled if throttled is not None and throttled < deadline else deadline

    def handle_timer(self, now: float) -> None:
        if self._throttled_until is not None and now >= self._throttled_until:
            self._throttled_until = None
        soft, hard = self._tx.expire(now)
        for p in soft:
            p.owner.on_soft_timeout(p, now)
        for p in hard:
            self.stats.timeouts += 1
            if p.node_id is not None:
                self.routing.node_failed(p.node_id, now)
                if self.pool is not None:
                    self.pool.remove(p.node_id)
            p.owner.on_timeout(p, now)
        if now >= self.maintenance.next_at:
            self.lookups.expire(now)
            self.maintenance.tick(now)
            if self._republisher is not None or self.answers.item_count:
                self.republisher.tick(now)  # it also expires the items stored for others
        self.lookups.pump(now)

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        stats = self.stats
        stats.received += 1
        # Limits apply to what a source sends unasked: queries (canonical ones end with their
        # "y": "q", checked before decoding, as cheap as dropping gets), any other decoded
        # query, and garbage, which is charged to its source's bucket. Answers to our own
        # queries are never dropped: a source out of tokens is still heard when its datagram
        # ends like an answer. Queries from this host (testnets, local tools) are not limited.
        admitted = False
        if self._limited:
            ip = addr[0]
            if data.endswith(b"1:y1:qe"):
                refused = self._admission.refuse(ip, now)
                if refused is not None:
                    stats.drop(refused)
                    return
                admitted = True
            elif (
                not data.endswith(b"1:y1:re")
                and not data.endswith(b"1:y1:ee")
                and self._admission.exhausted(ip, now)
            ):
                stats.drop("rate limited")
                return
        try:
            msg = decode(data)
        except KrpcDecodeError as exc:
            if exc.t is None:
                stats.drop("garbage")
                if self._limited:
                    self._admission.charge(addr[0], now)
            elif exc.is_query:
                if self.config.read_only:
                    stats.drop("read-only")
                    return
                if self._limited and not admitted:
                    refused = self._admission.refuse(addr[0], now)
                    if refused is not None:
                        stats.drop(refused)
                        return
                stats.errors_out += 1
                self._out.append(
                    (encode_error(exc.t, exc.code, exc.reason, version=self.config.version), addr)
                )
            else:
                stats.drop("bad response")
                p = self._tx.match(exc.t, addr)
                if p is not None:
                    self._failed(p, f"bad response: {exc.reason}", now)
            return
        kind = type(msg)
        if kind is Query:
            if self._limited and not admitted:
                refused = self._admission.refuse(addr[0], now)
                if refused is not None:
                    stats.drop(refused)
                    return
            self._on_query(msg, addr, now, len(data))  # type: ignore[arg-type]
        elif kind is Response:
            self._on_response(msg, addr, now)  # type: ignore[arg-type]
        else:
            self._on_error(msg, addr, now)  # type: ignore[arg-type]

    # --- commands -----------------------------------------------------------------------------

    def new_request_id(self) -> int:
        """The handle of a new command: its events carry it."""
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
        rid = self.new_request_id()
        owner = UserRequest(rid, self._events)
        if self.send_query(addr, method, args, now, owner, node_id) is None:
            self._events.append(QueryFailed(rid, addr, "busy"))
        return rid

    def find_node(self, target: bytes, now: float, *, seeds: Iterable[Addr] = ()) -> int:
        return self.lookups.start(FindNode(self.new_request_id(), target), now, seeds).id

    def get_peers(self, info_hash: bytes, now: float, *, seeds: Iterable[Addr] = ()) -> int:
        return self.lookups.start(GetPeers(self.new_request_id(), info_hash), now, seeds).id

    def announce(
        self,
        info_hash: bytes,
        port: int,
        now: float,
        *,
        implied_port: bool = False,
        seed: bool = False,
    ) -> int:
        """get_peers for ``info_hash``, then announce_peer to the K closest with their tokens
        (``seed``: as a seed, BEP 33)."""
        t = Announce(self.new_request_id(), info_hash, port, implied_port, seed)
        return self.lookups.start(t, now).id

    def bootstrap(self, routers: Sequence[Addr], now: float) -> int:
        """Join the DHT: a lookup for our own id seeded with ``routers`` and known nodes.

        If nothing answers and the table stays empty, it is retried with back-off (an event
        ``BootstrapStalled`` says so each time).
        """
        return self.bootstrapper.start(routers, now)

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
                self.bootstrapper.remember(c)
                kept += 1
        return kept

    def contacts(self) -> list[NodeContact]:
        """What a saved state should hold: the routing table's nodes, and while the table is
        smaller than the state we were restored from, that state's contacts too, so that a
        node that could not join (no router resolved, nobody answered) does not save a
        worse state over a better one."""
        table = self.routing.contacts()
        saved = self.bootstrapper.saved
        if len(table) >= len(saved):
            return table
        known = {c.id for c in table}
        return table + [c for c in saved if c.id not in known]

    def add_node(self, addr: Addr, now: float) -> None:
        """Ping a node we were told about; it joins the table if it answers."""
        self.send_query(addr, b"ping", {}, now, NO_OWNER, None)

    def cancel(self, request_id: int) -> None:
        """Stop a lookup without a LookupDone; answers still on their way are ignored."""
        self.lookups.cancel(request_id)

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
            "items": self.answers.item_count,  # BEP 44 items stored for others
            "lookups": len(self.lookups),
            "pool": len(self.pool) if self.pool is not None else None,
            "pending": len(self._tx),
        }

    def acceptable(self, addr: Addr) -> bool:
        """May we send to ``addr``, a node someone told us about? (address hygiene)"""
        policy = self.policy
        return policy is None or policy.acceptable(addr)

    def change_id(self, node_id: bytes, now: float) -> None:
        """Take a new node id (BEP 42). The table is rebuilt around it: bucket ranges are
        relative to our own id, so every known node is placed again."""
        old = self.routing
        self.node_id = node_id
        self.routing = RoutingTable(node_id, now=now, k=self.config.k)
        for e in old:
            if e.confirmed:
                self.routing.node_seen(e.id, e.addr, e.last_reply, e.rtt)

    # --- answering queries (the hot path) -----------------------------------------------------

    def _on_query(self, q: Query, addr: Addr, now: float, size: int) -> None:
        stats = self.stats
        cfg = self.config
        method = q.method
        entry = self._dispatch.get(method)
        name = "other" if entry is None else entry[0]
        stats.queries_in[name] = stats.queries_in.get(name, 0) + 1
        if cfg.read_only:
            stats.drop("read-only")
            return
        try:
            ip = pack_addr(addr)
        except (OSError, ValueError):
            stats.drop("bad source address")
            return
        if entry is None:
            self._answer_error(q.t, ERROR_METHOD_UNKNOWN, "Method Unknown", ip, addr)
            return
        handler = entry[1]
        try:
            r = handler(q, addr, now)
        except QueryRefusedError as exc:
            self._answer_error(q.t, exc.code, exc.message, ip, addr)
            return
        answer = encode_response(q.t, r, ip=ip, version=cfg.version)
        # Answers to this host cannot be aimed at anyone else: they are not capped.
        if (
            len(answer) > cfg.answer_floor
            and len(answer) > cfg.answer_ratio * size
            and not (addr[0].startswith("127.") or addr[0] == "::1")
        ):
            answer = fit_answer(
                q.t, r, ip, cfg.version, max(cfg.answer_floor, int(cfg.answer_ratio * size))
            )
            stats.drop("answer trimmed")
        self._out.append((answer, addr))
        # What the query tells us about the querier.
        if q.read_only or (cfg.enforce_node_id and not self._id_conforms(q.id, addr[0])):
            return
        if self.policy is not None and not self.policy.acceptable(addr):
            return  # we answer it, but will not send to it on our own
        if self.routing.node_queried(q.id, addr, now):
            # BEP 5: a node that only queries us is not good; it may join once it answers a ping.
            self.maintenance.ping_candidate(q.id, addr, now)
        elif self.pool is not None and q.id not in self.pool:
            self.maintenance.verify_for_pool(q.id, addr, now)

    def _answer_error(self, t: bytes, code: int, message: str, ip: bytes, addr: Addr) -> None:
        self.stats.errors_out += 1
        self._out.append((encode_error(t, code, message, ip=ip, version=self.config.version), addr))

    def _id_conforms(self, node_id: bytes, ip: str) -> bool:
        return bep42_valid(node_id, ip, exempt_local=self.config.bep42_exempt_local)

    # --- answers to our queries ---------------------------------------------------------------

    def _on_response(self, msg: Response, addr: Addr, now: float) -> None:
        p = self._tx.match(msg.t, addr)
        if p is None:
            self.stats.drop("unexpected response")
            return
        self.stats.responses_in += 1
        asked = p.node_id
        if asked is not None and asked != msg.id:
            # Another node answers at the address we knew ``asked`` at (a restart without
            # saved state, a BEP 42 id change): ``asked`` is not there any more.
            self.stats.drop("answered by another id")
            self.routing.node_moved(asked, addr, now)
            if self.pool is not None:
                self.pool.remove(asked, addr)
        if msg.ip is not None and self.acceptable(msg.ip):
            self._external_vote(addr[0], msg.ip[0], now)
        trusted = not self.config.enforce_node_id or self._id_conforms(msg.id, addr[0])
        if trusted:
            self.routing.node_seen(msg.id, addr, now, now - p.sent_at)
            if self.pool is not None:
                self.pool.add(msg.id, addr, now)
        else:
            self.stats.drop("non-conforming node id")
        p.owner.on_reply(p, msg, trusted, now)
        self.lookups.pump(now)

    def _on_error(self, msg: KrpcError, addr: Addr, now: float) -> None:
        self.stats.errors_in += 1
        p = self._tx.match(msg.t, addr)
        if p is None:
            self.stats.drop("unexpected error")
            return
        self._failed(p, f"error {msg.code}: {msg.message}", now)

    def _failed(self, p: Pending, reason: str, now: float) -> None:
        p.owner.on_failure(p, reason, now)
        self.lookups.pump(now)

    def _external_vote(self, voter_ip: str, seen_ip: str, now: float) -> None:
        """BEP 42: nodes tell us the address they see; a change agreed on may change our id."""
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

    # --- sending ------------------------------------------------------------------------------

    def can_send(self) -> bool:
        """Room for another query now: a free transaction slot and sending budget."""
        return not self._tx.full and self._throttled_until is None

    def send_query(
        self,
        addr: Addr,
        method: bytes,
        args: dict[bytes, Any],
        now: float,
        owner: RequestOwner,
        node_id: bytes | None,
        *,
        soft: bool = False,
        soft_timeout: float | None = None,
    ) -> Pending | None:
        """Send a query (``id`` is added) owned by ``owner``; None when there is no room (no
        transaction slot, or over the outgoing rate). ``soft``: give it a soft deadline too,
        after which a lookup stops waiting for it (``soft_timeout`` seconds, default the
        config's)."""
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
            soft_timeout=(soft_timeout or cfg.soft_timeout_s) if soft else None,
            node_id=node_id,
            owner=owner,
        )
        if p is None:
            self.stats.drop("no query slot")
            return None
        self.timer_version += 1
        full_args = dict(args)
        full_args[b"id"] = self.node_id
        data = encode_query(p.tid, method, full_args, version=cfg.version, read_only=cfg.read_only)
        self._out.append((data, addr))
        name = method.decode("ascii", "replace")
        self.stats.queries_out[name] = self.stats.queries_out.get(name, 0) + 1
        return p
