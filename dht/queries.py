"""Answers to the queries other nodes send us: one handler per KRPC method, in a table.

BEP 5 ``ping``, ``find_node``, ``get_peers`` (with BEP 33 scrape filters when asked) and
``announce_peer`` (BEP 33 ``seed``), BEP 51 ``sample_infohashes``, BEP 44 ``get`` and ``put``
(items in ``dht.itemstore``, checked by ``dht.items``); ``nodes`` or ``nodes6`` by the DHT we
are part of, both when a query says ``want`` (BEP 32). ``QueryAnswerer.handlers`` maps the
method's bytes to a handler that takes the decoded query, the source address and ``now``
and returns the ``r`` dict of the answer, or raises ``QueryRefusedError`` for an error
answer (an unknown method has no handler: the dispatcher answers 204). Handlers only build
answers and store announces and items; encoding, counting and what we learn about the
querier are the dispatcher's (``dht.protocol``).

This is the hot path of a busy node: a handler does its lookups and returns, without
layers or copies (``routing.closest_compact`` keeps ready-made answers).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dht.events import DhtEvent, InfoHashSeen
from dht.wire import ERROR_PROTOCOL, Addr, Query

if TYPE_CHECKING:
    from dht.itemstore import ItemStore
    from dht.protocol import DhtProtocol

__all__ = ["Handler", "QueryAnswerer", "QueryRefusedError"]

Handler = Callable[[Query, Addr, float], dict[bytes, Any]]


class QueryRefusedError(Exception):
    """A query we answer with a KRPC error (``code`` 201-204, BEP 5) instead of a response."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class QueryAnswerer:
    """Builds the answers of one core. ``host`` is the core itself: the node id and the
    routing table are read from it on each answer, since a BEP 42 id change replaces both."""

    def __init__(self, host: DhtProtocol, *, events: deque[DhtEvent]) -> None:
        self.host = host
        # Parts of the core that stay the same object for its lifetime, kept at hand.
        self.config = host.config
        self.tokens = host.tokens
        self.storage = host.storage
        self.pool = host.pool
        self.rng = host.rng
        self.events = events
        self.nodes_key = b"nodes" if host.family == 4 else b"nodes6"
        # BEP 44 items we keep for others (and our own, which we also put to the network),
        # made on first use: a one-shot client never stores one, and the item modules cost
        # import time that resolve counts from process start.
        self._items: ItemStore | None = None
        self.handlers: dict[bytes, Handler] = {
            b"ping": self.ping,
            b"find_node": self.find_node,
            b"get_peers": self.get_peers,
            b"announce_peer": self.announce_peer,
            b"sample_infohashes": self.sample_infohashes,
            b"get": self.get,
            b"put": self.put,
        }

    @property
    def items(self) -> ItemStore:
        if self._items is None:
            from dht.itemstore import ItemStore

            cfg = self.config
            self._items = ItemStore(
                max_items=cfg.max_items,
                max_bytes=cfg.max_item_bytes,
                max_per_source=cfg.max_items_per_source,
                ttl_s=cfg.item_ttl_s,
            )
        return self._items

    @property
    def item_count(self) -> int:
        """Items stored, without making the store."""
        return 0 if self._items is None else len(self._items)

    # --- the handlers -------------------------------------------------------------------------

    def ping(self, q: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        return {b"id": self.host.node_id}

    def find_node(self, q: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        host = self.host
        r = {b"id": host.node_id}
        if self.pool is None and not q.args.get(b"want"):
            r[self.nodes_key] = host.routing.closest_compact(q.target)  # type: ignore[arg-type]
        else:
            self.add_nodes(r, q)
        return r

    def get_peers(self, q: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        host = self.host
        info_hash: bytes = q.target  # type: ignore[assignment]
        r: dict[bytes, Any] = {b"id": host.node_id}
        if self.pool is None and not q.args.get(b"want"):
            r[self.nodes_key] = host.routing.closest_compact(info_hash)
        else:
            self.add_nodes(r, q)
        if self.pool is None:  # a router stores no peers, so it hands out no token
            r[b"token"] = self.tokens.issue(addr[0], now, info_hash)
            values = self.storage.values(info_hash, now, self.config.max_values, self.rng)
            if values:
                r[b"values"] = values
            if q.args.get(b"scrape") == 1:  # BEP 33
                filters = self.storage.scrape(info_hash, now)
                if filters is not None:
                    r[b"BFsd"], r[b"BFpe"] = filters
        if self.config.observe:
            self.events.append(InfoHashSeen(info_hash, "get_peers", addr, None))
        return r

    def announce_peer(self, q: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        info_hash: bytes = q.target  # type: ignore[assignment]
        args = q.args
        if self.pool is not None or not self.tokens.check(args[b"token"], addr[0], now, info_hash):
            raise QueryRefusedError(ERROR_PROTOCOL, "invalid token")
        # BEP 5 implied_port: the port the query came from (a peer behind a NAT or on uTP).
        port = addr[1] if args.get(b"implied_port") else args[b"port"]
        self.storage.add(info_hash, (addr[0], port), now, seed=args.get(b"seed") == 1)
        if self.config.observe:
            self.events.append(InfoHashSeen(info_hash, "announce_peer", addr, (addr[0], port)))
        return {b"id": self.host.node_id}

    def sample_infohashes(self, q: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        cfg = self.config
        r = {
            b"id": self.host.node_id,
            b"interval": cfg.sample_interval_s,
            b"num": len(self.storage),
            b"samples": b"".join(self.storage.sample(cfg.sample_count, self.rng)),
        }
        self.add_nodes(r, q)
        return r

    def get(self, q: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        """BEP 44 get: the item we hold for the target, a write token bound to the target
        and the querier's IP, and the closest nodes. A ``seq`` in the query asks only for
        something newer: ``response_fields`` leaves k, sig and v out otherwise."""
        target: bytes = q.target  # type: ignore[assignment]
        r: dict[bytes, Any] = {b"id": self.host.node_id}
        self.add_nodes(r, q)
        if self.pool is None:  # a router stores nothing, so it hands out no token
            from dht.items import response_fields

            r[b"token"] = self.tokens.issue(addr[0], now, target)
            r.update(response_fields(self.items.get(target, now), q.args.get(b"seq")))
        return r

    def put(self, q: Query, addr: Addr, now: float) -> dict[bytes, Any]:
        """BEP 44 put, refused in libtorrent's order, cheapest check first: shape and sizes
        (203, 205, 207), the token (203), the ed25519 signature (206), then the store's own
        rules: cas (301), seq (302) and the per-source and total caps."""
        if self.pool is not None:
            raise QueryRefusedError(ERROR_PROTOCOL, "a router stores no items")
        from dht.items import PutRejected, check_signature, parse_put

        req = parse_put(q.args)
        if isinstance(req, PutRejected):
            raise QueryRefusedError(req.code, req.message)
        item = req.item
        if not self.tokens.check(req.token, addr[0], now, item.target):
            raise QueryRefusedError(ERROR_PROTOCOL, "invalid token")
        refused = check_signature(item) or self.items.put(item, addr[0], now, cas=req.cas)
        if refused is not None:
            raise QueryRefusedError(refused.code, refused.message)
        return {b"id": self.host.node_id}

    # --- the nodes of an answer ---------------------------------------------------------------

    def nodes_for(self, target: bytes) -> bytes:
        """The compact nodes this core answers for ``target``: from the pool when we are a
        router that has enough verified nodes, else from the routing table."""
        pool = self.pool
        k = self.config.k
        if pool is not None and len(pool) >= k:
            return pool.closest_compact(target, k)
        return self.host.routing.closest_compact(target)

    def add_nodes(self, r: dict[bytes, Any], q: Query) -> None:
        """``nodes`` (IPv4 DHT) or ``nodes6`` (IPv6 DHT) closest to the target; both kinds
        when the query says ``want`` (BEP 32) and the other family's core is linked."""
        target: bytes = q.target  # type: ignore[assignment]
        want = q.args.get(b"want")
        if want:
            host = self.host
            answered = False
            for family, key in ((4, b"n4"), (6, b"n6")):
                if key in want:
                    core = host if family == host.family else host.sibling
                    if core is not None:
                        nodes = core.answers.nodes_for(target)
                        r[b"nodes" if family == 4 else b"nodes6"] = nodes
                        answered = True
            if answered:
                return
        r[self.nodes_key] = self.nodes_for(target)
