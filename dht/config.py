"""The DHT core's settings and counters: ``DhtConfig`` (every knob, production defaults) and
``Stats`` (what happened, only ever incremented), plus our BEP 20 style client ``VERSION``.

Each unit of the core (answers, lookups, maintenance, the dispatcher) reads its knobs here, so
one object configures them all; drivers build one and hand it to ``DhtProtocol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dht.addresses import AddressPolicy
from dht.version import KRPC_VERSION

__all__ = ["VERSION", "DhtConfig", "Stats"]


# BEP 20 style client id: two letters and two version bytes (dht.version derives them).
VERSION = KRPC_VERSION


@dataclass(slots=True)
class DhtConfig:
    k: int = 8
    alpha: int = 3
    query_timeout_s: float = 4.0  # a query is failed after this long
    soft_timeout_s: float = 1.0  # a lookup stops waiting for a query after this long
    max_pending: int = 4096  # outstanding queries, all kinds together
    lookup_timeout_s: float = 60.0
    lookup_max_queries: int = 400
    maintenance_s: float = 1.0  # how often to ping, refresh and expire
    refresh_s: float = 15 * 60.0  # refresh a bucket unchanged for this long (BEP 5)
    pings_per_tick: int = 8  # liveness and candidate pings per maintenance tick
    max_peer_hashes: int = 20_000
    max_peers_per_hash: int = 500
    max_total_peers: int = 200_000  # peers stored over all info-hashes
    peer_ttl_s: float = 45 * 60.0
    max_items: int = 5_000  # BEP 44 items stored for others
    max_item_bytes: int = 4_000_000  # their data in all (values, keys, signatures)
    max_items_per_source: int = 64  # charged to one /24 (IPv6 /64)
    item_ttl_s: float = 2 * 3600.0  # BEP 44: two hours unless put again
    item_republish_s: float = 3600.0  # our own items are put again this often (BEP 44: hourly)
    max_own_items: int = 256  # items this node republishes for its user
    max_kept_items: int = 256  # others' items this node was asked to keep alive (dht.keeper)
    max_values: int = 50  # peers per get_peers answer: keeps answers well under 1024 bytes
    # No answer is larger than max(answer_floor, answer_ratio * its query) bytes: a spoofed
    # query must not buy much more traffic toward its victim (lists are trimmed to fit).
    # The floor still holds a full BEP 51 answer (20 samples, 8 nodes): crawlers need it.
    answer_floor: int = 768
    answer_ratio: float = 4.0
    sample_count: int = 20  # BEP 51 samples per answer (libtorrent's cap)
    sample_interval_s: int = 6 * 3600  # BEP 51 interval we ask crawlers to respect
    bootstrap_backoff_s: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 30.0, 60.0)
    read_only: bool = False  # BEP 43: answer nothing, say ro=1
    secure_id: bool = False  # BEP 42: take a conforming node id once our external IP is known
    enforce_node_id: bool = False  # BEP 42: keep nodes with non-conforming ids out of the table
    bep42_exempt_local: bool = True  # local addresses are exempt from BEP 42 (tests turn it off)
    # Who we send to (nodes learned from others): None accepts every address (simulator);
    # dht.Node derives it from the bound address and the bootstrap routers.
    address_policy: AddressPolicy | None = None
    rate_per_ip: float = 0.0  # queries/s one source IP may send us (0: no limit)
    rate_burst: float = 100.0
    max_sources: int = 100_000  # source IPs tracked by the limiter
    max_query_rate: float = 0.0  # queries/s we answer in all (0: no limit)
    max_out_rate: float = 0.0  # queries/s we send in all (0: no limit)
    bootstrap_mode: bool = False  # a router: answer find_node from a big pool, store no peers
    pool_size: int = 100_000  # verified nodes a router keeps
    pool_verifying: int = 256  # verification pings a router keeps in flight at most
    pool_reverify_s: float = 15 * 60.0
    observe: bool = False  # emit InfoHashSeen for incoming get_peers/announce_peer
    version: bytes = VERSION


@dataclass(slots=True)
class Stats:
    """Counters for status lines and metrics. Only ever incremented."""

    received: int = 0
    sent: int = 0
    queries_in: dict[str, int] = field(default_factory=dict)
    queries_out: dict[str, int] = field(default_factory=dict)
    responses_in: int = 0
    errors_in: int = 0
    errors_out: int = 0
    timeouts: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
