"""Running lookups: traversals, the queries they send, their deadlines and their queue.

A ``Traversal`` is one lookup the core runs (BEP 5): a ``dht.traversal.Lookup`` (the pure
walk), the KRPC query it sends to each node, and what happens when the walk is over. The
kinds are subclasses, as libtorrent's ``traversal_algorithm`` has ``get_peers`` and its
``obfuscated_get_peers`` and announce observers: ``FindNode`` (and ``Refresh``, which only
names itself differently), ``GetPeers``, and ``Announce``, a get_peers whose walk is
followed by an announce_peer phase to the closest nodes with their tokens. BEP 44 get and put
(``dht.itemlookups``) and the BEP 33 scrape (``dht.scrapes``) are subclasses in their own
modules, which see each trusted answer through the ``replied`` hook.

``LookupManager`` owns the running traversals: it starts them, sends their queries (each
owned by a ``LookupQuery`` that reports back itself), finishes them when the walk says it is
done (``Lookup.done``, the one test) or their deadline passes, and keeps the queue of
traversals that found no free transaction slot until slots free up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from dht.config import DhtConfig
from dht.events import DhtEvent, LookupDone, PeersFound
from dht.transactions import Pending, RequestOwner, Transactions
from dht.traversal import Candidate, Lookup
from dht.wire import Addr, NodeContact, Response

if TYPE_CHECKING:
    from dht.protocol import DhtProtocol

__all__ = [
    "Announce",
    "AnnounceQuery",
    "FindNode",
    "GetPeers",
    "LookupManager",
    "LookupQuery",
    "Refresh",
    "RttEstimate",
    "Traversal",
]


class Traversal:
    """One running lookup. ``kind`` names it in ``LookupDone``; ``method`` and ``target_key``
    make the query each node is sent."""

    kind: ClassVar[str] = "find_node"
    method: ClassVar[bytes] = b"find_node"
    target_key: ClassVar[bytes] = b"target"

    __slots__ = ("announced", "deadline", "id", "lookup", "manager", "pending", "target", "walking")

    def __init__(self, request_id: int, target: bytes) -> None:
        self.id = request_id
        self.target = target
        self.walking = True  # False once the walk is over (an announce is then announcing)
        self.announced = 0
        self.pending: list[Pending] = []  # every query sent for it, to cancel when it ends
        # Given by LookupManager.start:
        self.manager: LookupManager
        self.lookup: Lookup
        self.deadline: float

    def query_args(self) -> dict[bytes, Any]:
        return {self.target_key: self.target}

    def started(self, now: float) -> None:
        """Hook: the traversal was just registered, before its first queries."""

    def replied(self, cand: Candidate, msg: Response, now: float) -> None:
        """Hook: ``cand`` answered and the answer is trusted (its nodes already taken)."""

    def walk_done(self, now: float) -> bool:
        """Hook: the walk is over. True when the traversal is finished too; False when it goes
        on with a phase of its own, which ends by calling ``manager.finish`` again."""
        return True


class FindNode(Traversal):
    kind = "find_node"
    __slots__ = ()


class Refresh(FindNode):
    """A find_node into the range of a bucket nobody touched for a while (BEP 5)."""

    kind = "refresh"
    __slots__ = ()


class GetPeers(Traversal):
    kind = "get_peers"
    method = b"get_peers"
    target_key = b"info_hash"
    __slots__ = ()

    def started(self, now: float) -> None:
        # Peers announced to us count too: we are part of the DHT we search.
        m = self.manager
        local = m.host.storage.get(self.target, now, m.config.max_peers_per_hash, m.host.rng)
        if local:
            self.lookup.peers.update(local)
            m.events.append(PeersFound(self.id, tuple(local)))


class Announce(GetPeers):
    """get_peers for the info-hash, then announce_peer to the K closest with their tokens."""

    kind = "announce"
    __slots__ = ("implied_port", "port", "seed", "waiting")

    def __init__(
        self, request_id: int, info_hash: bytes, port: int, implied_port: bool, seed: bool = False
    ) -> None:
        super().__init__(request_id, info_hash)
        self.port = port
        self.implied_port = implied_port
        self.seed = seed  # BEP 33: we have the whole torrent
        self.waiting = 0  # announce_peer queries still out

    def started(self, now: float) -> None:
        pass  # an announce reports only what the network says, not our own store

    def walk_done(self, now: float) -> bool:
        send = self.manager.host.send_query
        for cand in self.lookup.closest():
            if cand.token is None:
                continue
            args: dict[bytes, Any] = {
                b"info_hash": self.target,
                b"port": self.port,
                b"token": cand.token,
            }
            if self.implied_port:
                args[b"implied_port"] = 1
            if self.seed:
                args[b"seed"] = 1
            p = send(cand.addr, b"announce_peer", args, now, AnnounceQuery(self), cand.id)
            if p is not None:
                self.pending.append(p)
                self.waiting += 1
        return self.waiting == 0

    def answered(self, accepted: bool, now: float) -> None:
        """One announce_peer came back (or failed): the last one finishes the announce."""
        self.announced += accepted
        self.waiting -= 1
        if self.waiting == 0 and self.manager.get(self.id) is self:
            self.manager.finish(self, now)


# How long a lookup waits for a query before it counts it as slow and asks another node:
# RFC 6298's estimate over the answers to this core's lookup queries (srtt + 4 rttvar),
# within [SOFT_TIMEOUT_MIN_S, config.soft_timeout_s]. Dead nodes near a target cost a
# lookup one soft timeout each layer (and the retry one more): on a network whose nodes
# answer in 50 ms that is a quarter second, not the fixed second.
SOFT_TIMEOUT_MIN_S = 0.25


class RttEstimate:
    """Smoothed round-trip time of answered lookup queries (RFC 6298, section 2)."""

    __slots__ = ("rttvar", "srtt")

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt

    def soft_timeout(self, cap: float) -> float:
        """When to stop waiting for a query: ``cap`` until an answer was timed."""
        if self.srtt is None:
            return cap
        return min(cap, max(SOFT_TIMEOUT_MIN_S, self.srtt + 4 * self.rttvar))


class LookupQuery(RequestOwner):
    """One query of a traversal's walk, to one candidate."""

    __slots__ = ("candidate", "traversal")

    def __init__(self, traversal: Traversal, candidate: Candidate) -> None:
        self.traversal = traversal
        self.candidate = candidate

    def on_reply(self, p: Pending, msg: Response, trusted: bool, now: float) -> None:
        t = self.traversal
        t.manager.rtt.sample(now - p.sent_at)
        t.manager.on_reply(t, self.candidate, msg, trusted, now)

    def on_soft_timeout(self, p: Pending, now: float) -> None:
        t = self.traversal
        t.lookup.on_stall(self.candidate)
        t.manager.advance(t, now)

    def on_failure(self, p: Pending, reason: str, now: float) -> None:
        t = self.traversal
        t.lookup.on_failure(self.candidate)
        t.manager.advance(t, now)


class AnnounceQuery(RequestOwner):
    """One announce_peer of an announce's last phase."""

    __slots__ = ("announce",)

    def __init__(self, announce: Announce) -> None:
        self.announce = announce

    def on_reply(self, p: Pending, msg: Response, trusted: bool, now: float) -> None:
        self.announce.answered(True, now)

    def on_failure(self, p: Pending, reason: str, now: float) -> None:
        self.announce.answered(False, now)


class LookupManager:
    def __init__(
        self,
        host: DhtProtocol,
        *,
        config: DhtConfig,
        tx: Transactions,
        events: deque[DhtEvent],
    ) -> None:
        self.host = host
        self.config = config
        self.events = events
        self._tx = tx
        # Told of every traversal that finished (the bootstrap watches for its own).
        self.on_finished: Callable[[Traversal, float], None] = _ignore
        self._running: dict[int, Traversal] = {}
        self._waiting: deque[Traversal] = deque()  # out of query slots: resumed by pump()
        self.rtt = RttEstimate()

    def __len__(self) -> int:
        return len(self._running)

    def get(self, request_id: int) -> Traversal | None:
        return self._running.get(request_id)

    def running(self, kind: str) -> bool:
        return any(t.kind == kind for t in self._running.values())

    def start(
        self,
        t: Traversal,
        now: float,
        seeds: Iterable[Addr] = (),
        nodes: Iterable[NodeContact] = (),
    ) -> Traversal:
        """Register ``t`` and send its first queries. It starts from the closest nodes of the
        routing table, ``seeds`` (addresses of unknown id, asked first) and ``nodes``."""
        cfg = self.config
        host = self.host
        lookup = Lookup(
            t.target,
            own_id=host.node_id,
            k=cfg.k,
            alpha=cfg.alpha,
            max_queries=cfg.lookup_max_queries,
        )
        lookup.add_nodes(e.contact() for e in host.routing.closest(t.target, cfg.k * 2))
        lookup.add_addresses(seeds)
        lookup.add_nodes(nodes)
        t.manager = self
        t.lookup = lookup
        t.deadline = now + cfg.lookup_timeout_s
        self._running[t.id] = t
        t.started(now)
        self.advance(t, now)
        return t

    def advance(self, t: Traversal, now: float) -> None:
        """Send what the walk asks for now; finish the traversal when the walk is done."""
        if not t.walking or self._running.get(t.id) is not t:
            return
        lookup = t.lookup
        batch = lookup.next_requests()
        if batch:
            method = t.method
            args = t.query_args()
            send = self.host.send_query
            soft = self.rtt.soft_timeout(self.config.soft_timeout_s)
            for i, cand in enumerate(batch):
                owner = LookupQuery(t, cand)
                p = send(cand.addr, method, args, now, owner, cand.id, soft=True, soft_timeout=soft)
                if p is None:
                    # No slot: give back this candidate and the rest of the batch (all marked
                    # as asked), or the walk would wait forever for answers never asked for.
                    for unsent in batch[i:]:
                        lookup.unsend(unsent)
                    if t not in self._waiting:
                        self._waiting.append(t)
                    break
                t.pending.append(p)
        if lookup.done:
            self.finish(t, now)

    def on_reply(
        self, t: Traversal, cand: Candidate, msg: Response, trusted: bool, now: float
    ) -> None:
        host = self.host
        lookup = t.lookup
        nodes = self._usable_nodes(msg)
        if trusted:
            # Nodes a reply mentions may fill buckets with room (BEP 5).
            host.maintenance.heard_about(nodes, now)
            new_peers = lookup.on_reply(cand, msg.id, nodes, token=msg.token, peers=msg.peers)
            if new_peers and self._running.get(t.id) is t:
                self.events.append(PeersFound(t.id, tuple(new_peers)))
            t.replied(cand, msg, now)
        else:
            # BEP 42: its nodes may still help, but its answer neither counts toward the end
            # of the walk nor gives a token we would announce with.
            lookup.on_reply(cand, msg.id, nodes)
            lookup.on_failure(cand, final=True)
        self.advance(t, now)

    def _usable_nodes(self, msg: Response) -> tuple[NodeContact, ...]:
        """The nodes a reply tells us about, of our family, minus those we must not contact."""
        host = self.host
        nodes = msg.nodes if host.family == 4 else msg.nodes6
        policy = host.policy
        if policy is None or not nodes:
            return nodes
        return tuple(n for n in nodes if policy.acceptable(n.addr))

    def pump(self, now: float) -> None:
        """Resume queued traversals while there is room to send."""
        waiting = self._waiting
        can_send = self.host.can_send
        while waiting and can_send():
            self.advance(waiting.popleft(), now)

    def finish(self, t: Traversal, now: float, timed_out: bool = False) -> None:
        if t.walking and not timed_out:
            t.walking = False
            if not t.walk_done(now):
                return  # a phase of its own runs first
        t.walking = False
        if self._running.pop(t.id, None) is None:
            return
        lookup = t.lookup
        nodes = tuple(NodeContact(c.id, c.addr) for c in lookup.closest() if c.id)
        self.events.append(
            LookupDone(
                t.id,
                t.kind,
                t.target,
                nodes,
                lookup.queried,
                lookup.replied,
                len(lookup.peers),
                t.announced,
                timed_out,
            )
        )
        self._drop_pending(t)
        self.on_finished(t, now)

    def expire(self, now: float) -> None:
        """Finish, as timed out, the traversals whose deadline has passed."""
        for t in [t for t in self._running.values() if now >= t.deadline]:
            self.finish(t, now, timed_out=True)

    def cancel(self, request_id: int) -> None:
        """Forget a traversal without an event; answers to its queries are ignored."""
        t = self._running.pop(request_id, None)
        if t is not None:
            t.walking = False
            self._drop_pending(t)

    def _drop_pending(self, t: Traversal) -> None:
        cancel = self._tx.cancel
        for p in t.pending:
            cancel(p)
        t.pending.clear()


def _ignore(t: Traversal, now: float) -> None:
    pass
