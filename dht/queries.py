"""Answers to the queries other nodes send us: one handler per KRPC method, in a table.

BEP 5 ``ping``, ``find_node``, ``get_peers`` and ``announce_peer``, BEP 51
``sample_infohashes``; ``nodes`` or ``nodes6`` by the DHT we are part of, both when a query
says ``want`` (BEP 32). ``QueryAnswerer.handlers`` maps the method's bytes to a handler that
takes the decoded query, the source address and ``now`` and returns the ``r`` dict of the
answer, or raises ``QueryRefusedError`` for an error answer (an unknown method has no handler:
the dispatcher answers 204). Handlers only build answers and store announces; encoding,
counting and what we learn about the querier are the dispatcher's (``dht.protocol``).

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
        self.handlers: dict[bytes, Handler] = {
            b"ping": self.ping,
            b"find_node": self.find_node,
            b"get_peers": self.get_peers,
            b"announce_peer": self.announce_peer,
            b"sample_infohashes": self.sample_infohashes,
        }

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
        self.storage.add(info_hash, (addr[0], port), now)
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
