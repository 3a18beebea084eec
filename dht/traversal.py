"""Iterative lookups (BEP 5, Kademlia): the traversal as a pure state machine.

A ``Lookup`` keeps a shortlist of candidate nodes sorted by XOR distance to the target. It
hands out at most ``alpha`` requests at a time to the closest candidates not yet asked, takes
the nodes (and peers, and tokens) each reply brings, and is done when the ``k`` closest
candidates that have not failed have all answered. A request that is slow (its *soft* timeout
passed) stops counting against ``alpha``, so one dead node cannot stall the walk; it is asked
once more (``max_attempts``), since on a lossy network a lost datagram would otherwise drop a
live node from the result, and a late answer to either request is still used. That second
request does not count against ``alpha`` either: dead nodes near the target (a table full of
peers that have exited) must never take the walk's parallelism from live ones, and a walk
never waits for a request past its soft timeout.

It never sends anything itself: the lookup manager (``dht.lookups``) asks ``next_requests()``,
sends the queries, reports back with ``on_reply`` / ``on_stall`` / ``on_failure``, and asks
``done`` (the one test of whether a walk is over). The same object serves find_node,
get_peers and the get_peers walk of an announce.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from dht.ids import id_to_int
from dht.wire import Addr, NodeContact

__all__ = ["Candidate", "CandidateState", "Lookup"]


class CandidateState(enum.Enum):
    NEW = 0
    PENDING = 1
    STALLED = 2  # soft timeout passed; may still answer
    REPLIED = 3
    FAILED = 4
    RETRYING = 5  # asked again after a stall, outside ``alpha``


class Candidate:
    __slots__ = ("addr", "attempts", "distance", "id", "outstanding", "state", "token")

    def __init__(self, node_id: bytes | None, addr: Addr, distance: int) -> None:
        self.id = node_id
        self.addr = addr
        self.distance = distance
        self.state = CandidateState.NEW
        self.token: bytes | None = None
        self.attempts = 0  # requests sent to it
        self.outstanding = 0  # requests sent and neither answered nor failed

    def __repr__(self) -> str:
        ident = self.id.hex()[:8] if self.id else "?"
        return f"Candidate({ident}, {self.addr}, {self.state.name})"


_LIVE = (CandidateState.NEW, CandidateState.PENDING, CandidateState.REPLIED)


class Lookup:
    def __init__(
        self,
        target: bytes,
        *,
        own_id: bytes | None = None,
        k: int = 8,
        alpha: int = 3,
        max_candidates: int = 200,
        max_queries: int = 400,
        max_attempts: int = 2,
    ) -> None:
        self.target = target
        self._target = id_to_int(target)
        self._own_id = own_id
        self.k = k
        self.alpha = alpha
        self.max_candidates = max_candidates
        self.max_queries = max_queries
        self.max_attempts = max_attempts
        self._candidates: list[Candidate] = []  # sorted by distance, unknown ids first
        self._addrs: set[Addr] = set()
        self._in_flight = 0
        self.queried = 0
        self.replied = 0
        self.peers: set[Addr] = set()

    # --- feeding ------------------------------------------------------------------------------

    def add_nodes(self, nodes: Iterable[NodeContact]) -> int:
        """Merge nodes into the shortlist. Returns how many were new."""
        added = 0
        for n in nodes:
            if n.addr in self._addrs or n.id == self._own_id or n.addr[1] == 0:
                continue
            self._addrs.add(n.addr)
            self._candidates.append(Candidate(n.id, n.addr, id_to_int(n.id) ^ self._target))
            added += 1
        if added:
            self._candidates.sort(key=_distance)
            self._trim()
        return added

    def add_addresses(self, addrs: Iterable[Addr]) -> None:
        """Seed with nodes whose ids we do not know (bootstrap routers): asked first."""
        for a in addrs:
            if a not in self._addrs:
                self._addrs.add(a)
                self._candidates.insert(0, Candidate(None, a, -1))

    def _trim(self) -> None:
        # Drop the farthest candidates that are not answering or asked, so a flood of fake
        # nodes cannot grow the shortlist.
        excess = len(self._candidates) - self.max_candidates
        i = len(self._candidates) - 1
        while excess > 0 and i >= 0:
            c = self._candidates[i]
            if c.state in (CandidateState.NEW, CandidateState.FAILED):
                del self._candidates[i]
                self._addrs.discard(c.addr)
                excess -= 1
            i -= 1

    # --- the walk -----------------------------------------------------------------------------

    def _skipped(self, c: Candidate) -> bool:
        """Not part of the result window: failed, or slow and out of attempts."""
        state = c.state
        return state is CandidateState.FAILED or (
            state is CandidateState.STALLED and c.attempts >= self.max_attempts
        )

    def next_requests(self) -> list[Candidate]:
        """Candidates to query now (marked PENDING, or RETRYING for a second request to a
        stalled one, which takes no ``alpha`` slot). Empty when nothing should be sent."""
        out: list[Candidate] = []
        seen = 0
        for c in self._candidates:
            if self._skipped(c):
                continue
            if seen >= self.k:
                break
            seen += 1
            state = c.state
            if state is CandidateState.STALLED:
                if self.queried >= self.max_queries:
                    break
                c.state = CandidateState.RETRYING
            elif state is CandidateState.NEW and self._in_flight < self.alpha:
                if self.queried >= self.max_queries:
                    break
                c.state = CandidateState.PENDING
                self._in_flight += 1
            else:
                continue
            c.attempts += 1
            c.outstanding += 1
            self.queried += 1
            out.append(c)
        return out

    def unsend(self, c: Candidate) -> None:
        """The request for ``c`` could not be sent (no capacity): ask again later."""
        if c.state is CandidateState.PENDING:
            self._in_flight -= 1
        elif c.state is not CandidateState.RETRYING:
            return
        c.state = CandidateState.NEW if c.attempts == 1 else CandidateState.STALLED
        c.attempts -= 1
        c.outstanding -= 1
        self.queried -= 1

    def on_reply(
        self,
        c: Candidate,
        node_id: bytes,
        nodes: Iterable[NodeContact] = (),
        *,
        token: bytes | None = None,
        peers: Iterable[Addr] = (),
    ) -> list[Addr]:
        """``c`` answered. Returns the peers that are new to this lookup."""
        c.outstanding -= 1
        if c.state is CandidateState.PENDING:
            self._in_flight -= 1
        if c.state is CandidateState.REPLIED:
            return []
        c.state = CandidateState.REPLIED
        self.replied += 1
        c.token = token
        if c.id != node_id:
            c.id = node_id
            c.distance = id_to_int(node_id) ^ self._target
            self._candidates.sort(key=_distance)
        self.add_nodes(nodes)
        new = [p for p in peers if p not in self.peers]
        self.peers.update(new)
        return new

    def on_stall(self, c: Candidate) -> None:
        if c.state is CandidateState.PENDING:
            c.state = CandidateState.STALLED
            self._in_flight -= 1
        elif c.state is CandidateState.RETRYING:
            c.state = CandidateState.STALLED  # out of attempts: out of the window

    def on_failure(self, c: Candidate, *, final: bool = False) -> None:
        """A request to ``c`` timed out or got an error. ``final``: never count it, even if
        it answered (a BEP 42 non-conforming node)."""
        if final:
            if c.state is CandidateState.PENDING:
                self._in_flight -= 1
            if c.state is CandidateState.REPLIED:
                self.replied -= 1
            c.state = CandidateState.FAILED
            return
        c.outstanding -= 1
        if c.state is CandidateState.REPLIED or c.state is CandidateState.FAILED:
            return
        if c.state is CandidateState.PENDING:
            self._in_flight -= 1
            c.state = CandidateState.STALLED
        elif c.state is CandidateState.RETRYING:
            c.state = CandidateState.STALLED
        # Failed for good once no request to it is left and it has used its attempts.
        if c.outstanding <= 0 and c.attempts >= self.max_attempts:
            c.state = CandidateState.FAILED

    # --- results ------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def done(self) -> bool:
        """The walk is over: the ``k`` closest live candidates have answered (or are out of
        the query budget), or, with fewer than ``k`` of them, all of them have. A candidate
        whose requests are past their soft timeouts and out of attempts is not waited for
        (its hard timeout may be seconds away). A lookup that only waits for a free slot to
        send is not done: its candidates are NEW."""
        seen = 0
        for c in self._candidates:
            if self._skipped(c):
                continue
            if seen >= self.k:
                return True
            seen += 1
            if c.state is not CandidateState.REPLIED:
                if c.state is not CandidateState.PENDING and self.queried >= self.max_queries:
                    continue  # out of budget: it will not be asked
                return False
        # Fewer than k live candidates, and every one has answered.
        return True

    def closest(self, n: int | None = None) -> list[Candidate]:
        """The nodes that answered, closest first (with their tokens, for announce)."""
        n = self.k if n is None else n
        out = [c for c in self._candidates if c.state is CandidateState.REPLIED and c.id]
        return out[:n]


def _distance(c: Candidate) -> int:
    return c.distance
