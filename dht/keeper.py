"""Keeping BEP 44 items alive: our own, put again hourly, and others' that we chose to keep.

Storing nodes drop an item two hours after its last put, so whoever wants it to live puts it
again about hourly (BEP 44). Its owner can, and so can anyone else interested in it: an
immutable item is just its value, and a mutable one is re-put exactly as it was got (k, seq,
sig, v, salt), no private key needed.

``RefreshItem`` is one such put again: the usual get walk for tokens, then

- it adopts the newest item the walk proved (a mutable item's higher seq, signature checked):
  a kept item follows its owner's updates and never pushes an old value back;
- it sends no put when the K closest answering nodes (at least K = 8 answered) all hold the
  item at its seq or newer: someone else is keeping it (the BEP's rule, so that a popular
  item is not put by every one of its keepers every hour).

The skip is only allowed when our previous refresh did not put: copies we put ourselves one
period ago are half-way through their life, and counting them would let a lone keeper skip
every other hour and leave the item gone for up to a period each time.

``Republisher`` is the scheduled job: own items (``add``, after a put) and kept items
(``keep``, after a get), each table bounded (the oldest is forgotten first), refreshed every
``item_republish_s``; it also expires the item store. Everything here is sans-IO.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dht.itemlookups import PutItem, start_put
from dht.items import Item, MutableItem

if TYPE_CHECKING:
    from dht.protocol import DhtProtocol

__all__ = ["RefreshItem", "Republisher"]

EXPIRE_EVERY_S = 60.0  # how often the item store drops what expired (memory, not correctness)


def seq_of(item: Item) -> int | None:
    return item.seq if isinstance(item, MutableItem) else None


class RefreshItem(PutItem):
    """A put again of an item we hold: adopts a newer one, skips when the closest are fresh.

    ``done`` is called with it once the walk is over and the put phase (if any) started:
    ``final_item()`` is the item now refreshed (adopted or not), ``put_to`` the puts sent.
    """

    kind = "refresh_item"
    __slots__ = ("done", "may_skip", "skipped")

    def __init__(
        self,
        request_id: int,
        item: Item,
        *,
        may_skip: bool,
        done: Callable[[RefreshItem], None] | None = None,
    ) -> None:
        salt = item.salt if isinstance(item, MutableItem) else b""
        super().__init__(request_id, item.target, item=item, salt=salt)
        self.may_skip = may_skip
        self.done = done
        self.skipped = False

    def walk_done(self, now: float) -> bool:
        held, best = self.item, self.best
        if isinstance(held, MutableItem) and isinstance(best, MutableItem) and best.seq > held.seq:
            self.item = best  # the owner wrote since: follow it
        self.skipped = self.may_skip and self.closest_are_fresh()
        finished = True if self.skipped else super().walk_done(now)
        if self.done is not None:
            self.done(self)
        return finished

    def closest_are_fresh(self) -> bool:
        """At least K nodes answered, and the K closest of them hold ours or newer."""
        assert self.item is not None
        k = self.manager.host.config.k
        closest = self.lookup.closest(k)
        if self.found < k or len(closest) < k:
            return False
        ours = seq_of(self.item)
        for cand in closest:
            if cand.addr not in self.holders:
                return False
            theirs = self.holders[cand.addr]
            if ours is not None and (theirs is None or theirs < ours):
                return False
        return True


@dataclass(slots=True)
class _Entry:
    item: Item
    due: float
    put_last: bool  # our last refresh (or the user's put) sent it: no skipping the next


class Republisher:
    """Our own items and the items we keep for others, put again every ``item_republish_s``.

    At most ``max_own_items`` own and ``max_kept_items`` kept items (the oldest is forgotten
    first). ``tick`` runs with the core's maintenance; it also expires the item store now and
    then. ``refreshes`` and ``skipped`` count refresh walks started and puts left out.
    """

    def __init__(self, host: DhtProtocol, now: float) -> None:
        self.host = host
        self._own: OrderedDict[bytes, _Entry] = OrderedDict()
        self._kept: OrderedDict[bytes, _Entry] = OrderedDict()
        self._expire_at = now + EXPIRE_EVERY_S
        self.refreshes = 0
        self.skipped = 0

    def __len__(self) -> int:
        return len(self._own)

    @property
    def kept(self) -> int:
        return len(self._kept)

    def add(self, item: Item, now: float) -> None:
        """Keep our own ``item`` alive: it was just put, the next put is one period from now.
        A new item under a target replaces the old (a mutable item's newer seq)."""
        self._kept.pop(item.target, None)  # ours now: one refresh per target is enough
        self._insert(self._own, item, now, True, self.host.config.max_own_items)

    def keep(self, item: Item, now: float) -> None:
        """Keep someone else's ``item`` alive (it was just got, checked): refreshed from one
        period from now on, following its newer seqs. Our own items are kept already."""
        if item.target in self._own:
            return
        self._insert(self._kept, item, now, False, self.host.config.max_kept_items)

    def remove(self, target: bytes) -> None:
        self._own.pop(target, None)
        self._kept.pop(target, None)

    def item(self, target: bytes) -> Item | None:
        """The item refreshed under ``target``, as last adopted."""
        entry = self._own.get(target) or self._kept.get(target)
        return entry.item if entry is not None else None

    def _insert(
        self, table: OrderedDict[bytes, _Entry], item: Item, now: float, put: bool, bound: int
    ) -> None:
        table.pop(item.target, None)
        table[item.target] = _Entry(item, now + self.host.config.item_republish_s, put)
        while len(table) > bound:
            table.popitem(last=False)

    def tick(self, now: float) -> None:
        host = self.host
        if now >= self._expire_at:
            self._expire_at = now + EXPIRE_EVERY_S
            host.answers.items.expire(now)
        period = host.config.item_republish_s
        for table in (self._own, self._kept):
            for entry in [e for e in table.values() if e.due <= now]:
                entry.due = now + period
                self.refreshes += 1
                t = RefreshItem(
                    host.new_request_id(),
                    entry.item,
                    may_skip=not entry.put_last,
                    done=self._refreshed_by(entry),
                )
                start_put(host, t, now)

    def _refreshed_by(self, entry: _Entry) -> Callable[[RefreshItem], None]:
        def refreshed(t: RefreshItem) -> None:
            # The entry may have been replaced or dropped meanwhile: then it is not updated
            # in any table, only this closure's copy.
            entry.item = t.final_item()
            entry.put_last = t.put_to > 0  # nothing sent (no token, no one): nothing to trust
            self.skipped += t.skipped

        return refreshed
