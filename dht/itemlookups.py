"""BEP 44 lookups: getting an item from the DHT and putting one.

``GetItem`` walks toward the target with ``get`` queries (the same walk as get_peers) and
keeps the best item the answers carry, checked as the BEP tells a requester to: an immutable
value must hash to the target, a mutable one must match SHA-1(k + salt) and its signature;
the highest ``seq`` wins. ``PutItem`` is that walk followed by a ``put`` phase to the K
closest nodes that gave a write token. A mutable put may be given a ready item, or a private
key seed, value and salt: it signs once the walk is over, with ``seq`` one more than the
highest seen when none was asked for, and sends ``cas`` only to nodes that had the item (the
BEP: a node with nothing stored has nothing to compare). ``LookupDone.announced`` counts the
nodes that accepted the put.

Putting items again (our own hourly, and others' we keep) is ``dht.keeper``'s. Everything
here is sans-IO, like ``dht.lookups``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dht.items import (
    BencodedValue,
    Item,
    MutableItem,
    item_from_response,
    public_key,
    put_arguments,
    sign,
)
from dht.lookups import Traversal
from dht.transactions import Pending, RequestOwner
from dht.traversal import Candidate
from dht.wire import Addr, Response

if TYPE_CHECKING:
    from dht.protocol import DhtProtocol

__all__ = [
    "GetItem",
    "PutItem",
    "PutQuery",
    "PutResult",
    "best_item",
    "start_get",
    "start_put",
]

MAX_ERRORS = 16  # distinct put refusals remembered per put


class GetItem(Traversal):
    """A get lookup: ``best`` is the item with the highest seq any answer proved."""

    kind = "get_item"
    method = b"get"
    target_key = b"target"
    __slots__ = ("best", "found", "holders", "min_seq", "salt")

    def __init__(
        self, request_id: int, target: bytes, *, salt: bytes = b"", min_seq: int | None = None
    ) -> None:
        super().__init__(request_id, target)
        self.salt = salt
        self.min_seq = min_seq  # only items newer than this count (``seq`` in the query)
        self.best: Item | None = None
        self.found = 0  # answers that carried a valid item
        # Nodes that answered with a valid item, and its seq (None for immutable): a put
        # sends cas only to them.
        self.holders: dict[Addr, int | None] = {}

    def query_args(self) -> dict[bytes, Any]:
        args: dict[bytes, Any] = {b"target": self.target}
        if self.min_seq is not None:
            args[b"seq"] = self.min_seq
        return args

    def started(self, now: float) -> None:
        # Our own store counts: we are part of the DHT we search.
        self.consider(self.manager.host.answers.items.get(self.target, now))

    def replied(self, cand: Candidate, msg: Response, now: float) -> None:
        item = item_from_response(self.target, msg.values, self.salt)
        if item is None:
            return
        self.found += 1
        self.holders[cand.addr] = item.seq if isinstance(item, MutableItem) else None
        self.consider(item)

    def consider(self, item: Item | None) -> None:
        if item is None:
            return
        if isinstance(item, MutableItem):
            if self.min_seq is not None and item.seq <= self.min_seq:
                return
            best = self.best
            if isinstance(best, MutableItem) and best.seq >= item.seq:
                return
        elif self.best is not None:
            return  # one immutable value per target: the first proof is enough
        self.best = item


class PutItem(GetItem):
    """A get walk for tokens, then ``put`` to the K closest nodes that gave one."""

    kind = "put_item"
    __slots__ = ("cas", "errors", "item", "put_to", "seed", "seq", "value", "waiting")

    def __init__(
        self,
        request_id: int,
        target: bytes,
        *,
        item: Item | None = None,
        seed: bytes = b"",
        value: BencodedValue | None = None,
        salt: bytes = b"",
        seq: int | None = None,
        cas: int | None = None,
    ) -> None:
        super().__init__(request_id, target, salt=salt)
        self.item = item  # ready to put; else signed from seed, value, salt and seq
        self.seed = seed
        self.value = value
        self.seq = seq
        self.cas = cas
        self.waiting = 0
        self.put_to = 0  # put queries sent
        self.errors: dict[str, int] = {}  # refusals by reason

    def started(self, now: float) -> None:
        pass  # what counts is what the network holds, not our own store

    def final_item(self) -> Item:
        """The item to put: the given one, or one signed now with the next seq."""
        if self.item is None:
            assert self.value is not None
            seq = self.seq
            if seq is None:
                best = self.best
                seq = best.seq + 1 if isinstance(best, MutableItem) else 1
            v = self.value
            sig = sign(self.seed, self.salt, seq, v)
            self.item = MutableItem(public_key(self.seed), self.salt, seq, v, sig)
        return self.item

    def walk_done(self, now: float) -> bool:
        item = self.final_item()
        host = self.manager.host
        for cand in self.lookup.closest():
            if cand.token is None:
                continue
            cas = self.cas if cand.addr in self.holders else None
            args = put_arguments(item, cand.token, cas)
            p = host.send_query(cand.addr, b"put", args, now, PutQuery(self), cand.id)
            if p is not None:
                self.pending.append(p)
                self.waiting += 1
                self.put_to += 1
        return self.waiting == 0

    def answered(self, reason: str | None, now: float) -> None:
        """One put came back: ``reason`` None when it was accepted. The last one finishes."""
        if reason is None:
            self.announced += 1
        elif reason in self.errors or len(self.errors) < MAX_ERRORS:
            self.errors[reason] = self.errors.get(reason, 0) + 1
        self.waiting -= 1
        if self.waiting == 0 and self.manager.get(self.id) is self:
            self.manager.finish(self, now)


class PutQuery(RequestOwner):
    """One put of a put's last phase."""

    __slots__ = ("put",)

    def __init__(self, put: PutItem) -> None:
        self.put = put

    def on_reply(self, p: Pending, msg: Response, trusted: bool, now: float) -> None:
        self.put.answered(None, now)

    def on_failure(self, p: Pending, reason: str, now: float) -> None:
        self.put.answered(reason, now)


def start_get(
    core: DhtProtocol,
    target: bytes,
    now: float,
    *,
    salt: bytes = b"",
    min_seq: int | None = None,
) -> GetItem:
    """Start a get on ``core``; the traversal holds the result when its LookupDone comes."""
    t = GetItem(core.new_request_id(), target, salt=salt, min_seq=min_seq)
    core.lookups.start(t, now)
    return t


def start_put(core: DhtProtocol, t: PutItem, now: float) -> PutItem:
    """Start a put built by the caller (``PutItem(core.new_request_id(), ...)``)."""
    core.lookups.start(t, now)
    return t


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a put did: the item as put (its seq chosen if it was not given), how many of
    the closest nodes were sent it and how many accepted, and why the others refused."""

    item: Item
    asked: int
    stored: int
    errors: tuple[tuple[str, int], ...] = ()

    @property
    def target(self) -> bytes:
        return self.item.target

    @classmethod
    def of(cls, puts: list[PutItem]) -> PutResult:
        """The result of one put per DHT family (BEP 32), added up."""
        errors: dict[str, int] = {}
        for t in puts:
            for reason, n in t.errors.items():
                errors[reason] = errors.get(reason, 0) + n
        return cls(
            best_item([t.final_item() for t in puts]) or puts[0].final_item(),
            sum(t.put_to for t in puts),
            sum(t.announced for t in puts),
            tuple(sorted(errors.items())),
        )


def best_item(items: list[Item | None]) -> Item | None:
    """The item to believe among several for one target: the highest seq (mutable)."""
    best: Item | None = None
    for item in items:
        if item is None:
            continue
        if best is None or (
            isinstance(item, MutableItem) and isinstance(best, MutableItem) and item.seq > best.seq
        ):
            best = item
    return best
