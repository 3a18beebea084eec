"""What the crawl engine tells its driver: slotted, frozen records of what to store and do.

Events are facts in the past tense, as in ``dht.events``. Times are the engine's clock
(``now`` as fed to it: ``loop.time()`` in production, virtual in the simulator); a driver
that stores wall-clock times converts them. The engine decides nothing about storage: it
says what it learned (BEP 51 samples, BEP 5 get_peers/announce_peer sightings, a node's
numbers), and the driver writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from dht.wire import Addr

__all__ = [
    "CrawlEvent",
    "CrawlStalled",
    "HashObserved",
    "NodeAnswered",
    "PeersLookedUp",
    "SamplesReceived",
]


@dataclass(frozen=True, slots=True)
class SamplesReceived:
    """A node answered sample_infohashes (BEP 51) with these info-hashes.

    The driver records them and tells the engine how many were new to the crawl
    (``CrawlEngine.sampled_yield``): that decides when the node is worth asking again.
    """

    addr: Addr
    node_id: bytes
    hashes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class HashObserved:
    """Passive observation: a node sent one of our nodes get_peers or announce_peer (BEP 5)."""

    info_hash: bytes
    method: str  # "get_peers" or "announce_peer"
    addr: Addr  # the querying node
    peer: Addr | None  # announce_peer: the announced peer


@dataclass(frozen=True, slots=True)
class NodeAnswered:
    """A node's numbers after an answer (cumulative: the latest snapshot wins)."""

    addr: Addr
    node_id: bytes | None
    first_seen: float  # engine clock
    last_seen: float  # engine clock: its last answer
    bep51: bool | None  # None: not known yet
    num: int | None
    interval: int | None
    samples: int
    new_hashes: int
    queries: int
    replies: int


@dataclass(frozen=True, slots=True)
class PeersLookedUp:
    """A get_peers lookup started with ``CrawlEngine.find_peers`` finished (all families)."""

    lookup: int
    info_hash: bytes
    peers: tuple[Addr, ...]
    queried: int
    replied: int
    seeds_estimate: float | None = None  # BEP 33, when the lookup was a scrape
    peers_estimate: float | None = None


@dataclass(frozen=True, slots=True)
class CrawlStalled:
    """No DHT node answered within the start-up time: the crawl cannot run. One line why."""

    reason: str


CrawlEvent = SamplesReceived | HashObserved | NodeAnswered | PeersLookedUp | CrawlStalled
