"""BEP 44 get/put and BEP 33 scrape calls of ``dht.Node``, kept apart from its socket work.

``ItemCalls`` is a mixin: each call starts a traversal on every core (one per DHT family)
and waits for them through the node's ``_run_lookups``; the protocol work lives in
``dht.itemlookups`` and ``dht.scrapes``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # At run time each call imports what it needs: a node that never gets or puts an item
    # (every resolve) does not pay the item modules' import time.
    from dht.events import LookupDone
    from dht.itemlookups import PutItem, PutResult
    from dht.items import Item
    from dht.protocol import DhtProtocol

__all__ = ["ItemCalls"]


class ItemCalls:
    """What ``dht.Node`` provides to these calls (it overrides all three)."""

    @property
    def cores(self) -> list[DhtProtocol]:
        raise NotImplementedError

    def _now(self) -> float:
        raise NotImplementedError

    async def _run_lookups(self, rids: list[int]) -> list[LookupDone]:
        raise NotImplementedError

    async def get(
        self, target: bytes, *, salt: bytes | None = None, seq: int | None = None
    ) -> Item | None:
        """BEP 44 get: the item stored under ``target`` with the highest seq the closest
        nodes hold, checked (hash or signature), or None. A mutable item's ``salt`` is needed
        to check its signature; ``seq`` asks only for an item newer than that."""
        from dht.itemlookups import best_item, start_get

        now = self._now()
        gets = [start_get(c, target, now, salt=salt or b"", min_seq=seq) for c in self.cores]
        await self._run_lookups([t.id for t in gets])
        return best_item([t.best for t in gets])

    async def keep(self, target: bytes, *, salt: bytes = b"") -> Item | None:
        """BEP 44: keep someone else's item alive. It is got (``salt`` checks a mutable
        item's signature), then put again hourly while this node runs, exactly as got (no
        private key needed), following the newest seq the network holds. None when it was
        not found: nothing is kept then (a caller may retry later)."""
        from dht.items import MAX_SALT_BYTES

        if len(target) != 20:
            raise ValueError(f"target is {len(target)} bytes, not 20")
        if len(salt) > MAX_SALT_BYTES:
            raise ValueError(f"salt is {len(salt)} bytes, BEP 44 allows {MAX_SALT_BYTES}")
        item = await self.get(target, salt=salt)
        if item is not None:
            now = self._now()
            for core in self.cores:
                core.republisher.keep(item, now)
        return item

    async def put_immutable(self, value: object) -> PutResult:
        """BEP 44: store ``value`` (bytes, int, list or dict; at most 1000 bytes bencoded)
        under SHA-1 of its bencoding; it is put again hourly while this node runs."""
        from dht.itemlookups import PutItem
        from dht.items import immutable_item

        item = immutable_item(value)
        return await self._put(lambda core: PutItem(core.new_request_id(), item.target, item=item))

    async def put_mutable(
        self,
        private_key: bytes,
        value: object,
        salt: bytes = b"",
        seq: int | None = None,
        cas: int | None = None,
    ) -> PutResult:
        """BEP 44: store ``value`` signed by the ed25519 key with this 32-byte seed, under
        SHA-1(public key + salt). ``seq`` None: one more than the highest the network holds;
        ``cas``: only replace the item if its seq is this one (error 301 otherwise)."""
        from dht.itemlookups import PutItem
        from dht.items import (
            MAX_SALT_BYTES,
            MAX_SEQ,
            MAX_V_BYTES,
            encode_value,
            mutable_target,
            public_key,
        )

        v = encode_value(value)  # misuse is a ValueError now, not after the walk
        if len(v) > MAX_V_BYTES:
            raise ValueError(f"value is {len(v)} bytes bencoded, BEP 44 allows {MAX_V_BYTES}")
        if len(salt) > MAX_SALT_BYTES:
            raise ValueError(f"salt is {len(salt)} bytes, BEP 44 allows {MAX_SALT_BYTES}")
        for name, number in (("seq", seq), ("cas", cas)):
            if number is not None and not 0 <= number <= MAX_SEQ:
                raise ValueError(f"{name} {number} is outside 0..2**63-1")
        target = mutable_target(public_key(private_key), salt)
        return await self._put(
            lambda core: PutItem(
                core.new_request_id(),
                target,
                seed=private_key,
                value=v,
                salt=salt,
                seq=seq,
                cas=cas,
            )
        )

    async def _put(self, make: Callable[[DhtProtocol], PutItem]) -> PutResult:
        from dht.itemlookups import PutResult, start_put

        now = self._now()
        puts = [start_put(c, make(c), now) for c in self.cores]
        await self._run_lookups([t.id for t in puts])
        for core, t in zip(self.cores, puts, strict=True):
            core.republisher.add(t.final_item(), self._now())
        return PutResult.of(puts)

    async def scrape(self, info_hash: bytes) -> tuple[float, float]:
        """BEP 33: estimated (seeds, peers) of a swarm, from the bloom filters of the nodes
        closest to ``info_hash`` (both DHT families' filters united)."""
        from dht.bloom import ScrapeFilter
        from dht.scrapes import Scrape, estimate

        now = self._now()
        scrapes = [Scrape(c.new_request_id(), info_hash) for c in self.cores]
        for core, t in zip(self.cores, scrapes, strict=True):
            core.lookups.start(t, now)
        await self._run_lookups([t.id for t in scrapes])
        seeds = ScrapeFilter.union_of(t.seed_filter for t in scrapes)
        peers = ScrapeFilter.union_of(t.peer_filter for t in scrapes)
        return estimate(seeds), estimate(peers)
