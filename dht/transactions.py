"""Outstanding KRPC queries: transaction ids, matching replies, timeouts (BEP 5).

Every query we send gets a 2-byte transaction id and waits here until its reply, its error
or its deadline. A reply must come from the address the query went to (as libtorrent checks):
a matching ``t`` from elsewhere is someone else's packet. The table is bounded: when
``max_pending`` queries are out, ``open`` refuses and the caller queues or drops.

Each query has two deadlines: a short *soft* one after which a lookup stops waiting for it
and asks another node (the reply is still welcome), and the *hard* one after which it failed.

Whoever sends a query hands in an *owner* (libtorrent calls it an observer): the object told
what became of it, through ``on_reply``, ``on_soft_timeout``, ``on_timeout`` and
``on_failure``. The core's dispatcher calls these and never asks what kind of owner it holds:
a user's ``ping``, a maintenance ping, one query of a lookup and an announce_peer each answer
for themselves.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from dht.wire import Addr, Response

__all__ = ["NO_OWNER", "Pending", "RequestOwner", "Transactions"]


class RequestOwner:
    """What asked a query, told what became of it. The defaults do nothing; a timeout is a
    failure with reason "timeout" unless an owner says otherwise."""

    __slots__ = ()

    def on_reply(self, p: Pending, msg: Response, trusted: bool, now: float) -> None:
        """The query was answered. ``trusted`` is False when the answering node's id breaks
        BEP 42 while we enforce it: its answer may be used, but must not count."""

    def on_soft_timeout(self, p: Pending, now: float) -> None:
        """The query is slow (its soft deadline passed); its answer is still welcome."""

    def on_timeout(self, p: Pending, now: float) -> None:
        self.on_failure(p, "timeout", now)

    def on_failure(self, p: Pending, reason: str, now: float) -> None:
        """The query failed: an error answer, a broken answer, or (by default) a timeout."""


NO_OWNER = RequestOwner()  # for queries nobody waits on


@dataclass(slots=True, eq=False)
class Pending:
    tid: bytes
    addr: Addr
    method: bytes
    sent_at: float
    deadline: float
    soft_deadline: float
    node_id: bytes | None  # the id we expect to answer, when we know it
    owner: RequestOwner  # what asked, told of the outcome
    soft_expired: bool = False
    done: bool = False


class Transactions:
    def __init__(self, max_pending: int, first_tid: int) -> None:
        self.max_pending = max_pending
        self._pending: dict[bytes, Pending] = {}
        self._next = first_tid & 0xFFFF
        self._heap: list[tuple[float, int, Pending]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def full(self) -> bool:
        return len(self._pending) >= self.max_pending

    def open(
        self,
        addr: Addr,
        method: bytes,
        now: float,
        *,
        timeout: float,
        soft_timeout: float | None = None,
        node_id: bytes | None = None,
        owner: RequestOwner = NO_OWNER,
    ) -> Pending | None:
        if len(self._pending) >= self.max_pending or len(self._pending) >= 0xFFFF:
            return None
        while True:
            tid = self._next.to_bytes(2, "big")
            self._next = (self._next + 1) & 0xFFFF
            if tid not in self._pending:
                break
        soft = now + soft_timeout if soft_timeout is not None and soft_timeout < timeout else None
        p = Pending(tid, addr, method, now, now + timeout, soft or now + timeout, node_id, owner)
        p.soft_expired = soft is None
        self._pending[tid] = p
        self._push(p.soft_deadline, p)
        if soft is not None:
            self._push(p.deadline, p)
        return p

    def _push(self, when: float, p: Pending) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, p))
        # Entries of answered queries stay in the heap until their deadline; rebuild when
        # they outnumber the live ones so the heap stays proportional to what is pending.
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._pending):
            self._heap = [item for item in self._heap if not item[2].done]
            heapq.heapify(self._heap)

    def match(self, tid: bytes, addr: Addr) -> Pending | None:
        """The pending query a reply answers, removed from the table; None if there is none."""
        p = self._pending.get(tid)
        if p is None or p.addr != addr:
            return None
        del self._pending[tid]
        p.done = True
        return p

    def cancel(self, p: Pending) -> None:
        if not p.done:
            p.done = True
            self._pending.pop(p.tid, None)

    def expire(self, now: float) -> tuple[list[Pending], list[Pending]]:
        """(soft-expired, hard-expired) queries as of ``now``; hard ones leave the table."""
        soft: list[Pending] = []
        hard: list[Pending] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, p = heapq.heappop(heap)
            if p.done:
                continue
            if now >= p.deadline:
                p.done = True
                self._pending.pop(p.tid, None)
                hard.append(p)
            elif not p.soft_expired:
                p.soft_expired = True
                soft.append(p)
        return soft, hard

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][2].done:
            heapq.heappop(heap)
        return heap[0][0] if heap else None
