"""BEP 33 scrapes on the querying side: how many seeds and peers a swarm has, from the DHT.

``Scrape`` is a get_peers walk that asks each node for its bloom filters (``scrape=1``). The
nodes that store a swarm's announces are the closest ones to its info-hash, so when the walk
is over the filters of the K closest nodes that answered are ORed (an IP two nodes saw
counts once) and the counts estimated from the union (``dht.bloom.ScrapeFilter``). A node
without BEP 33 that sends only ``values`` has them put in a peers filter of our own, as the
BEP suggests. Filters that are not exactly 256 bytes are ignored.
"""

from __future__ import annotations

from typing import Any

from dht.bloom import BLOOM_BYTES, ScrapeFilter
from dht.lookups import GetPeers
from dht.traversal import Candidate
from dht.wire import Addr, Response

__all__ = ["Scrape", "estimate"]


class Scrape(GetPeers):
    """get_peers with ``scrape=1``; ``seeds`` and ``peers`` hold the estimates when done."""

    kind = "scrape"
    __slots__ = ("filters", "peer_filter", "peers", "seed_filter", "seeds")

    def __init__(self, request_id: int, info_hash: bytes) -> None:
        super().__init__(request_id, info_hash)
        # Per answering node: its seeds filter and its peers filter (either may be empty).
        self.filters: dict[Addr, tuple[ScrapeFilter, ScrapeFilter]] = {}
        self.seed_filter = ScrapeFilter()
        self.peer_filter = ScrapeFilter()
        self.seeds = 0.0
        self.peers = 0.0

    def query_args(self) -> dict[bytes, Any]:
        return {b"info_hash": self.target, b"scrape": 1}

    def started(self, now: float) -> None:
        pass  # what the network holds; our own announces are in our answers to others

    def replied(self, cand: Candidate, msg: Response, now: float) -> None:
        r = msg.values
        bfsd, bfpe = r.get(b"BFsd"), r.get(b"BFpe")
        seeds = _filter(bfsd)
        peers = _filter(bfpe)
        if seeds is None and peers is None:
            if not msg.peers:
                return
            # No BEP 33 here: the peers it lists are all we learn (seed or not, unknown).
            peers = ScrapeFilter.of(ip for ip, _ in msg.peers)
        self.filters[cand.addr] = (seeds or ScrapeFilter(), peers or ScrapeFilter())

    def walk_done(self, now: float) -> bool:
        for cand in self.lookup.closest():
            pair = self.filters.get(cand.addr)
            if pair is not None:
                self.seed_filter |= pair[0]
                self.peer_filter |= pair[1]
        self.seeds = estimate(self.seed_filter)
        self.peers = estimate(self.peer_filter)
        return True


def _filter(data: object) -> ScrapeFilter | None:
    if isinstance(data, bytes) and len(data) == BLOOM_BYTES:
        return ScrapeFilter(data)
    return None


def estimate(f: ScrapeFilter) -> float:
    """The BEP's estimate, but 0 for an empty filter (the formula reads 0.5 there)."""
    return 0.0 if f.is_empty() else f.estimate()
