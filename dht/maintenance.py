"""Keeping the routing table alive (BEP 5) and joining the DHT, on the core's timer.

``Maintenance.tick`` runs every ``maintenance_s``: it expires stored peers, pings questionable
nodes (least recently heard first) and candidates waiting in replacement caches of buckets
with room, has a router (``bootstrap_mode``) re-verify its pool, and refreshes a bucket
nobody touched for ``refresh_s`` with a lookup into its range, telling the routing table so
(``RoutingTable.refreshed``). Confirmation pings are few at a time (``pings_per_tick``) and
each is owned by a ``ConfirmPing``, which forgets the node as pending whatever the outcome.

``Bootstrap`` joins the DHT: a find_node for our own id from the routers and the nodes a
saved state knew, retried with back-off (``BootstrapStalled``) while the table stays empty.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from dht.config import DhtConfig
from dht.events import BootstrapStalled, DhtEvent
from dht.ids import id_to_int, random_id_in_bucket
from dht.lookups import FindNode, LookupManager, Refresh, Traversal
from dht.routing import NodeEntry
from dht.transactions import Pending, RequestOwner
from dht.wire import Addr, NodeContact, Response

if TYPE_CHECKING:
    from dht.protocol import DhtProtocol

__all__ = ["STORAGE_EXPIRE_S", "Bootstrap", "ConfirmPing", "Maintenance"]

STORAGE_EXPIRE_S = 60.0  # how often stored peers past their lifetime are dropped


class ConfirmPing(RequestOwner):
    """A ping that finds out whether a node is alive; ``outstanding`` holds the ids of those
    pings still out, so that a node is pinged once at a time and few pings are out at all."""

    __slots__ = ("node_id", "outstanding")

    def __init__(self, node_id: bytes, outstanding: set[bytes]) -> None:
        self.node_id = node_id
        self.outstanding = outstanding

    def on_reply(self, p: Pending, msg: Response, trusted: bool, now: float) -> None:
        self.outstanding.discard(self.node_id)

    def on_failure(self, p: Pending, reason: str, now: float) -> None:
        self.outstanding.discard(self.node_id)


class Maintenance:
    def __init__(
        self,
        host: DhtProtocol,
        *,
        config: DhtConfig,
        lookups: LookupManager,
        now: float,
    ) -> None:
        self.host = host
        self.config = config
        self._lookups = lookups
        self.next_at = now + config.maintenance_s
        self._last_expire = now
        self._pinging: set[bytes] = set()  # liveness and candidate pings out
        self._verifying: set[bytes] = set()  # a router's pool verification pings out

    def _ping(self, node_id: bytes, addr: Addr, now: float, out: set[bytes]) -> None:
        if self.host.send_query(addr, b"ping", {}, now, ConfirmPing(node_id, out), node_id):
            out.add(node_id)

    def ping_candidate(self, node_id: bytes, addr: Addr, now: float) -> None:
        """Ping a node that could fill a bucket with room, now rather than at the next tick,
        as long as few such pings are out (the rest wait in the replacement cache)."""
        pinging = self._pinging
        if len(pinging) < self.config.pings_per_tick and node_id not in pinging:
            self._ping(node_id, addr, now, pinging)

    def verify_for_pool(self, node_id: bytes, addr: Addr, now: float) -> None:
        """A router pings a node before it hands the node out to others."""
        verifying = self._verifying
        if len(verifying) < self.config.pool_verifying and node_id not in verifying:
            self._ping(node_id, addr, now, verifying)

    def heard_about(self, nodes: Iterable[NodeContact], now: float) -> None:
        """Nodes an answer mentioned: those that may fill a bucket wait in its replacement
        cache until a ping confirms them (BEP 5)."""
        heard_about = self.host.routing.heard_about
        for n in nodes:
            if heard_about(n.id, n.addr, now):
                self.ping_candidate(n.id, n.addr, now)

    def tick(self, now: float) -> None:
        cfg = self.config
        host = self.host
        routing = host.routing
        self.next_at = now + cfg.maintenance_s
        if now - self._last_expire >= STORAGE_EXPIRE_S:
            self._last_expire = now
            host.storage.expire(now)
        host.bootstrapper.tick(now)
        budget = self._ping_all(routing.questionable(now), cfg.pings_per_tick, now)
        budget = self._ping_all(routing.candidates(budget), budget, now)
        # A router re-verifies the pool entries it verified longest ago.
        pool = host.pool
        if pool is not None:
            room = cfg.pool_verifying - len(self._verifying)
            for n in pool.stale(min(room, 64), now - cfg.pool_reverify_s):
                self.verify_for_pool(n.id, n.addr, now)
        self._refresh(now)

    def _ping_all(self, entries: Iterable[NodeEntry], budget: int, now: float) -> int:
        """Ping up to ``budget`` of ``entries`` not pinged yet; returns the budget left."""
        pinging = self._pinging
        can_send = self.host.can_send
        for e in entries:
            if budget <= 0 or not can_send():
                break
            if e.id not in pinging:
                self._ping(e.id, e.addr, now, pinging)
                budget -= 1
        return budget

    def _refresh(self, now: float) -> None:
        """Refresh the first bucket nobody touched for ``refresh_s``, one at a time."""
        host = self.host
        routing = host.routing
        if not len(routing) or self._lookups.running(Refresh.kind):
            return
        stale = routing.stale_buckets(now, self.config.refresh_s)
        if not stale:
            return
        index = stale[0]
        if index == routing.bucket_count - 1:
            target = host.node_id  # the last bucket covers everything near us
        else:
            target = random_id_in_bucket(id_to_int(host.node_id), index, host.rng)
        routing.refreshed(index, now)
        self._lookups.start(Refresh(host.new_request_id(), target), now)


class Bootstrap:
    def __init__(
        self,
        host: DhtProtocol,
        *,
        config: DhtConfig,
        lookups: LookupManager,
        events: deque[DhtEvent],
    ) -> None:
        self.host = host
        self.config = config
        self.events = events
        self._lookups = lookups
        self.routers: list[Addr] = []
        self._saved: list[NodeContact] = []  # contacts from a saved state, asked first
        self._lookup_id: int | None = None
        self._attempt = 0
        self._retry_at: float | None = None

    def start(self, routers: Sequence[Addr], now: float) -> int:
        self.routers = list(routers)
        self._attempt = 0
        self._retry_at = None
        return self._join(now, self._saved)

    def _join(self, now: float, nodes: Iterable[NodeContact] = ()) -> int:
        host = self.host
        rid = host.new_request_id()
        self._lookup_id = rid
        self._lookups.start(FindNode(rid, host.node_id), now, self.routers, nodes)
        return rid

    @property
    def saved(self) -> list[NodeContact]:
        """The contacts of a saved state this core was restored from (see ``remember``)."""
        return list(self._saved)

    def remember(self, contact: NodeContact) -> None:
        """A node a saved state knew: the next bootstrap asks it along with the routers."""
        self._saved.append(contact)
        del self._saved[: max(0, len(self._saved) - 4 * self.config.k * 20)]

    def lookup_finished(self, t: Traversal, now: float) -> None:
        if t.id != self._lookup_id:
            return
        self._lookup_id = None
        if len(self.host.routing) == 0 and self.routers:
            backoff = self.config.bootstrap_backoff_s
            delay = backoff[min(self._attempt, len(backoff) - 1)]
            self._attempt += 1
            self._retry_at = now + delay
            self.events.append(BootstrapStalled(self._attempt, delay, len(self.routers)))

    def tick(self, now: float) -> None:
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            if len(self.host.routing) == 0:
                self._join(now)
            else:
                self._attempt = 0
