"""The item store: the BEP 44 items this node keeps for others, bounded and expiring.

Bounded in every direction, like the peer store, so that a flood of puts cannot grow memory
without limit: at most ``max_items`` items and ``max_bytes`` bytes of item data in all (the
least recently used item, put or got, is evicted first), and at most ``max_per_source`` items
charged to one source network, a /24 for IPv4 or a /64 for IPv6 (one host, or one customer,
holds those); a source over its cap loses its own oldest item, not someone else's. An item is
charged to the source that stored it or last changed it; a re-put of the same item from
anyone refreshes its lifetime without moving the charge.

Items expire ``ttl_s`` after their last put (BEP 44: two hours without a refresh; owners
republish hourly). A put obeys the item rules of ``dht.items``: a mutable item only gives
way to a higher ``seq`` (or the same one with the same value, a refresh), and ``cas`` must
name the stored ``seq``. The store trusts that its items were checked (``parse_put`` and
``check_signature``) before they get here.
"""

from __future__ import annotations

import socket
from collections import OrderedDict
from dataclasses import dataclass

from dht.items import (
    KEY_BYTES,
    MAX_SALT_BYTES,
    MAX_V_BYTES,
    SIG_BYTES,
    V_TOO_BIG,
    Item,
    MutableItem,
    PutRejected,
    check_replace,
)

__all__ = ["ITEM_TTL_S", "ItemStore", "item_bytes", "source_prefix"]

ITEM_TTL_S = 2 * 3600.0  # BEP 44: "items may be discarded after 2 hours"
TARGET_BYTES = 20
LARGEST_ITEM_BYTES = TARGET_BYTES + MAX_V_BYTES + KEY_BYTES + SIG_BYTES + MAX_SALT_BYTES

_MAPPED_PREFIX = bytes(10) + b"\xff\xff"  # ::ffff:0:0/96, IPv4-mapped (RFC 4291)


def source_prefix(ip: str) -> bytes:
    """The network a source is capped by: the /24 of an IPv4 address, the /64 of an IPv6 one.

    An IPv4-mapped IPv6 address (what a dual-stack socket reports) counts as its IPv4
    address; text that is not an address is its own key.
    """
    try:
        if ":" not in ip:
            return socket.inet_pton(socket.AF_INET, ip)[:3]
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except (OSError, ValueError):
        return ip.encode()
    return packed[12:15] if packed[:12] == _MAPPED_PREFIX else packed[:8]


def item_bytes(item: Item) -> int:
    """What one item counts against ``max_bytes``: its target, value and, if mutable, the rest.

    The bound is on item data; Python's own per-object overhead is bounded by ``max_items``.
    """
    if isinstance(item, MutableItem):
        return TARGET_BYTES + len(item.v) + KEY_BYTES + SIG_BYTES + len(item.salt)
    return TARGET_BYTES + len(item.v)


@dataclass(slots=True)
class _Entry:
    item: Item
    expires: float
    source: bytes  # source_prefix of whoever it is charged to
    size: int


class ItemStore:
    def __init__(
        self,
        *,
        max_items: int = 5_000,
        max_bytes: int = 4_000_000,
        max_per_source: int = 64,
        ttl_s: float = ITEM_TTL_S,
    ) -> None:
        if max_items < 1 or max_per_source < 1:
            raise ValueError("an item store holds at least one item, and one per source")
        if max_bytes < LARGEST_ITEM_BYTES:
            raise ValueError(f"max_bytes must hold the largest item ({LARGEST_ITEM_BYTES} bytes)")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.max_per_source = max_per_source
        self.ttl_s = ttl_s
        # target -> entry, least recently used first.
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        # source prefix -> its targets, least recently put first (dict as an ordered set).
        self._by_source: dict[bytes, dict[bytes, None]] = {}
        self.bytes_used = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, target: object) -> bool:
        return target in self._entries

    def count_from(self, ip: str) -> int:
        """How many items are charged to the network of ``ip``."""
        return len(self._by_source.get(source_prefix(ip), ()))

    def get(self, target: bytes, now: float) -> Item | None:
        """The live item stored under ``target``, or None. A get counts as a use (LRU)."""
        entry = self._entries.get(target)
        if entry is None:
            return None
        if entry.expires <= now:
            self._drop(target, entry)
            return None
        self._entries.move_to_end(target)
        return entry.item

    def put(
        self, item: Item, source_ip: str, now: float, *, cas: int | None = None
    ) -> PutRejected | None:
        """Store or refresh ``item`` put by ``source_ip``. A refusal (301, 302) says why."""
        target = item.target
        entry = self._entries.get(target)
        if entry is not None and entry.expires <= now:
            self._drop(target, entry)
            entry = None
        rejected = check_replace(entry.item if entry is not None else None, item, cas)
        if rejected is not None:
            return rejected
        size = item_bytes(item)
        if size > self.max_bytes:  # only an unchecked item can be this big
            return V_TOO_BIG
        expires = now + self.ttl_s
        if entry is not None and entry.item == item:
            # A refresh: anyone may extend the lifetime; the charge stays where it was.
            entry.expires = expires
            self._entries.move_to_end(target)
            self._by_source[entry.source].pop(target)
            self._by_source[entry.source][target] = None
            return None
        source = source_prefix(source_ip)
        if entry is not None:
            self._drop(target, entry)
        self._entries[target] = _Entry(item, expires, source, size)
        self.bytes_used += size
        mine = self._by_source.setdefault(source, {})
        mine[target] = None
        while len(mine) > self.max_per_source:
            oldest = next(iter(mine))
            self._drop(oldest, self._entries[oldest])
        while len(self._entries) > self.max_items or self.bytes_used > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest, self._entries[oldest])
        return None

    def expire(self, now: float) -> int:
        """Drop every item past its lifetime. Returns how many were dropped."""
        dead = [target for target, entry in self._entries.items() if entry.expires <= now]
        for target in dead:
            self._drop(target, self._entries[target])
        return len(dead)

    def _drop(self, target: bytes, entry: _Entry) -> None:
        del self._entries[target]
        self.bytes_used -= entry.size
        mine = self._by_source[entry.source]
        del mine[target]
        if not mine:
            del self._by_source[entry.source]
