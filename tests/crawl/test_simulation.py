"""The crawl engine on the simulator: thousands of nodes on a virtual clock, no sockets, no sleeps.

The network's nodes are production ``DhtProtocol`` cores holding injected peer-store entries,
which they sample for BEP 51 ``sample_infohashes`` as any magnetar node does; the crawl is
the production ``CrawlEngine``. Sightings go to a real ``CrawlStore`` (SQLite in tmp_path).
"""

from __future__ import annotations

import itertools
import random
import sqlite3
from pathlib import Path

import pytest

from crawl.health import Counters, HealthMeter
from crawl.io.store import CrawlStore
from crawl.scheduler import SchedulerConfig
from crawl.simulation import MemorySink, SimCrawler, populate
from dht.events import QueryAnswered
from dht.protocol import DhtConfig
from dht.simulation import SimNetwork
from dht.wire import Addr, Query, decode

INTERVAL_S = 30  # the BEP 51 interval the network's nodes ask crawlers to respect
FAST = SchedulerConfig(
    qps=500,
    bandwidth=50e6,
    max_in_flight=64,
    min_revisit_s=0.0,
    idle_revisit_s=600.0,
    find_interval_s=120.0,
)


def network(count: int, hashes: int, copies: int, seed: int) -> tuple[SimNetwork, set[bytes]]:
    # A fixed latency: a query's arrival times are its send times plus a constant, so the
    # gaps measured at the receivers are the gaps the crawl left between its queries.
    sim = SimNetwork(seed=seed, latency=(0.04, 0.04))
    config = DhtConfig(maintenance_s=10.0, sample_interval_s=INTERVAL_S, max_peer_hashes=1000)
    nodes = populate(sim, count, config=config)
    rng = random.Random(seed)
    stored = {rng.randbytes(20) for _ in range(hashes)}
    for h in stored:
        for node in rng.sample(nodes, copies):
            node.core.storage.add(h, ("10.200.0.1", 1), sim.now)
    return sim, stored


def log_sample_queries(sim: SimNetwork, ours: set[Addr]) -> dict[Addr, list[float]]:
    """Per node: the virtual times sample_infohashes queries from the crawl reached it."""
    arrivals: dict[Addr, list[float]] = {}

    def watch(data: bytes, src: Addr, dst: Addr) -> bool:
        if src in ours and b"sample_infohashes" in data:
            msg = decode(data)
            if isinstance(msg, Query) and msg.method == b"sample_infohashes":
                arrivals.setdefault(dst, []).append(sim.now)
        return True

    sim.filter = watch
    return arrivals


@pytest.mark.slow
def test_a_3000_node_network_is_crawled_to_95_percent_within_the_intervals(
    tmp_path: Path,
) -> None:
    sim, stored = network(3000, 45_000, 2, seed=11)  # ~30 info-hashes a node: 20 per answer
    db = tmp_path / "crawl.sqlite"
    with CrawlStore(db) as store:
        seeds = list(sim.nodes)[:3]
        crawl = SimCrawler(sim, seeds, ids=2, schedule=FAST, sink=store, seed=12)
        ours = {n.addr for n in crawl.nodes}
        arrivals = log_sample_queries(sim, ours)
        meter = HealthMeter(sim.now, Counters.of(crawl.engine.stats, **_zero()))
        assert crawl.run_for(1800, until=lambda: store.new_hashes >= 0.96 * len(stored))
        seconds = sim.now
        health = meter.summary(
            sim.now,
            Counters.of(crawl.engine.stats, **{**_zero(), "unique": store.new_hashes}),
        )
    conn = sqlite3.connect(db)
    found = [r[0] for r in conn.execute("SELECT info_hash FROM info_hashes")]
    conn.close()
    # The database holds each info-hash once, only info-hashes the network holds.
    assert len(found) == len(set(found)) == crawl.new_hashes
    assert set(found) <= stored
    assert len(found) >= 0.95 * len(stored)
    # Nodes hold more than one answer shows: they were asked again, never before INTERVAL_S.
    revisited = 0
    for addr, times in arrivals.items():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(g >= INTERVAL_S for g in gaps), (addr, min(gaps))
        assert len(times) <= seconds / INTERVAL_S + 1
        assert sim.nodes[addr].core.stats.queries_in.get("sample_infohashes", 0) == len(times)
        revisited += len(times) > 1
    assert revisited >= 1000
    sent = crawl.engine.stats.queries["sample_infohashes"]
    assert sent - FAST.max_in_flight <= sum(map(len, arrivals.values())) <= sent
    # Every node met answered and supports BEP 51; the crawl met nearly all of them.
    assert health["bep51"] == 1.0 and health["answering"] == 1.0
    rows = crawl.node_rows.values()
    assert len(rows) >= 0.95 * 3000 and all(r.bep51 for r in rows)
    # Our nodes answer queries too: the network put them in its tables.
    own_ids = {e.core.node_id for e in crawl.engine.endpoints}
    holders = sum(any(e.id in own_ids for e in n.core.routing) for n in sim.nodes.values())
    assert holders >= 20


def _zero() -> dict[str, int]:
    return {"unique": 0, "passive": 0, "metadata_ok": 0, "metadata_failed": 0}


def test_get_peers_and_announces_to_our_node_are_recorded(tmp_path: Path) -> None:
    sim, _ = network(50, 0, 0, seed=5)
    asked, announced = b"\xaa" * 20, b"\xbb" * 20
    db = tmp_path / "crawl.sqlite"
    with CrawlStore(db) as store:
        crawl = SimCrawler(sim, list(sim.nodes)[:2], schedule=FAST, sink=store, seed=6)
        client = sim.add_node()
        target = crawl.nodes[0].addr

        def ask(method: bytes, args: dict[bytes, object]) -> QueryAnswered:
            rid = client.core.query(target, method, args, sim.now)
            sim.poll(client)
            crawl.run_for(1.0)
            (answer,) = [
                e for e in client.events if isinstance(e, QueryAnswered) and e.request_id == rid
            ]
            return answer

        ask(b"get_peers", {b"info_hash": asked})
        token = ask(b"get_peers", {b"info_hash": announced}).response.token
        ask(b"announce_peer", {b"info_hash": announced, b"port": 4321, b"token": token})
        # A query from our own address (a metadata lookup of ours) is not a sighting.
        crawl.find_peers(b"\xcc" * 20)
        crawl.run_for(5.0)
        store.flush()
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT info_hash, how, node_ip, node_port, peer_ip, peer_port FROM info_hashes"
    ).fetchall()
    peers = conn.execute("SELECT info_hash, peer_ip, peer_port FROM announces").fetchall()
    conn.close()
    ip, port = client.addr
    assert sorted(rows) == [
        (asked, "get_peers", ip, port, None, None),
        (announced, "get_peers", ip, port, None, None),  # first seen through its get_peers
    ]
    assert peers == [(announced, ip, 4321)]
    assert crawl.engine.passive == 3
    assert crawl.lookups  # our own lookup finished, unrecorded


def test_a_crawl_that_nobody_answers_stalls_after_the_startup_time() -> None:
    sim, _ = network(10, 0, 0, seed=3)
    crawl = SimCrawler(sim, [("10.99.0.1", 6881)], schedule=FAST, startup_timeout_s=20.0)
    crawl.run_for(19.0)
    assert crawl.stalled is None
    assert crawl.run_for(2.0, until=lambda: crawl.stalled is not None)
    assert crawl.stalled is not None and crawl.stalled.startswith("no DHT node answered")
    # It kept asking the seed while it waited (after each timeout), and nobody else.
    assert crawl.engine.stats.sent >= 3 and crawl.engine.stats.nodes_met == 1


@pytest.mark.slow
@pytest.mark.parametrize("ids", [1, 3])
def test_the_crawl_is_reproducible_from_its_seeds(ids: int) -> None:
    def once() -> tuple[float, int, dict[bytes, int]]:
        sim, stored = network(300, 3000, 1, seed=8)
        sink = MemorySink()
        crawl = SimCrawler(sim, list(sim.nodes)[:2], ids=ids, schedule=FAST, sink=sink, seed=9)
        assert crawl.run_for(600, until=lambda: crawl.new_hashes >= 0.9 * len(stored))
        return sim.now, crawl.engine.stats.sent, sink.seen

    assert once() == once()
