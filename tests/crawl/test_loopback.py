"""The crawler on a private loopback DHT: coverage, BEP 51 intervals, passive sightings, metadata.

Every packet stays on 127.0.0.1. Testnet nodes hold injected peer-store entries (written
straight into ``core.storage``) and answer ``sample_infohashes`` from them, as any magnetar
node does.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import bencode2

from crawl.io.crawler import CrawlConfig, Crawler
from crawl.io.store import CrawlStore
from crawl.scheduler import SchedulerConfig
from dht.io.node import Node
from dht.io.testnet import Testnet
from dht.protocol import DhtConfig
from dht.wire import Addr, Query, unpack_nodes
from magnet.io.serve import serve_torrents
from magnet.torrentfile import TorrentMeta, parse_info

T = TypeVar("T")
FAST = SchedulerConfig(
    qps=2000,
    bandwidth=50e6,
    max_in_flight=64,
    min_revisit_s=0.0,
    idle_revisit_s=2.0,
    find_interval_s=2.0,
)


def run(coro: Awaitable[T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def inject(net: Testnet, count: int, copies: int, seed: int) -> set[bytes]:
    """``count`` random info-hashes, each stored by ``copies`` random nodes."""
    rng = random.Random(seed)
    now = asyncio.get_running_loop().time()
    hashes = {rng.randbytes(20) for _ in range(count)}
    for h in hashes:
        for node in rng.sample(net.nodes, copies):
            node.core.storage.add(h, ("127.0.0.1", 1), now)
    return hashes


def log_sample_queries(net: Testnet) -> dict[int, list[float]]:
    """Per testnet node (by port): when each sample_infohashes arrived (loop time)."""
    seen: dict[int, list[float]] = {}
    for node in net.nodes:
        core = node.core
        times = seen.setdefault(node.addr[1], [])
        original = core._on_query

        def wrapped(
            q: Query,
            addr: Addr,
            now: float,
            original: Callable[[Query, Addr, float], None] = original,
            times: list[float] = times,
        ) -> None:
            if q.method == b"sample_infohashes":
                times.append(now)
            original(q, addr, now)

        core._on_query = wrapped  # type: ignore[method-assign]
    return seen


def db_hashes(path: Path) -> list[bytes]:
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute("SELECT info_hash FROM info_hashes")]
    finally:
        db.close()


async def crawl_until(
    crawler: Crawler, done: Callable[[], bool], limit: float
) -> tuple[float, Any]:
    stop = asyncio.Event()

    async def watch() -> None:
        while not done():
            await asyncio.sleep(0.1)
        stop.set()

    watcher = asyncio.create_task(watch())
    try:
        report = await crawler.run(duration=limit, stop=stop)
    finally:
        watcher.cancel()
    return report.seconds, report


def test_our_nodes_answer_sample_infohashes() -> None:
    async def main() -> None:
        config = DhtConfig(sample_interval_s=7, sample_count=20)
        async with Testnet(4, config=config, seed=1) as net:
            now = asyncio.get_running_loop().time()
            rng = random.Random(5)
            stored = {rng.randbytes(20) for _ in range(100)}
            for h in stored:
                net.nodes[1].core.storage.add(h, ("127.0.0.1", 1), now)
            async with Node("127.0.0.1", 0, bootstrap_routers=[]) as client:
                target = {b"target": b"\x55" * 20}
                first = await client.query(net.nodes[1].addr, b"sample_infohashes", target)
                second = await client.query(net.nodes[1].addr, b"sample_infohashes", target)
                empty = await client.query(net.nodes[2].addr, b"sample_infohashes", target)
            r = first.values
            assert r[b"interval"] == 7 and r[b"num"] == 100
            samples = [r[b"samples"][i : i + 20] for i in range(0, len(r[b"samples"]), 20)]
            assert len(samples) == 20 and len(set(samples)) == 20 and set(samples) <= stored
            assert second.values[b"samples"] != r[b"samples"]  # a fresh random subset
            assert unpack_nodes(r[b"nodes"])  # BEP 51: nodes closest to the target too
            # An empty store still says "samples": how indexers tell BEP 51 support.
            assert empty.values[b"samples"] == b"" and empty.values[b"num"] == 0
            assert len(bencode2.bencode({b"r": r})) < 1024

    run(main(), 30)


def test_crawl_finds_95_percent_and_never_asks_before_the_interval(tmp_path: Path) -> None:
    db = tmp_path / "crawl.sqlite"

    async def main() -> None:
        config = DhtConfig(sample_interval_s=1, max_peer_hashes=50_000)
        async with Testnet(120, config=config, seed=2) as net:
            hashes = inject(net, 5000, 2, seed=3)
            arrivals = log_sample_queries(net)
            healths: list[dict[str, object]] = []
            with CrawlStore(db) as store:
                crawler = Crawler(
                    CrawlConfig(
                        host="127.0.0.1",
                        port=0,
                        ids=2,
                        bootstrap=net.bootstrap_addrs(2),
                        schedule=FAST,
                        stats_interval_s=2.0,
                        query_timeout_s=2.0,
                        seed=4,
                    ),
                    store,
                    on_health=healths.append,
                )
                seconds, report = await crawl_until(
                    crawler, lambda: store.new_hashes >= 0.96 * len(hashes), 40.0
                )
                own_ids = {n.node_id for n in crawler.nodes}
            found = db_hashes(db)
            assert len(found) == len(set(found)) == report.counters.unique
            assert set(found) <= hashes
            assert len(found) >= 0.95 * len(hashes), (len(found), seconds)
            assert seconds < 40.0
            # BEP 51: no node was asked for samples again before its interval (1 s).
            for port, times in arrivals.items():
                gaps = [b - a for a, b in itertools.pairwise(times)]
                assert all(g >= 1.0 for g in gaps), (port, min(gaps))
                node = next(n for n in net.nodes if n.addr[1] == port)
                assert node.core.stats.queries_in.get("sample_infohashes", 0) == len(times)
                assert len(times) <= seconds / 1.0 + 1
            assert crawler.scheduler is not None
            sent = crawler.scheduler.stats.queries["sample_infohashes"]
            assert sent - FAST.max_in_flight <= sum(map(len, arrivals.values())) <= sent
            # Our nodes answer queries: the testnet put them in its tables.
            holders = sum(any(e.id in own_ids for e in n.core.routing) for n in net.nodes)
            assert holders >= 5
            assert healths and healths[-1]["bep51"] == 1.0 and healths[-1]["answering"] == 1.0
            db_conn = sqlite3.connect(db)
            nodes_rows = db_conn.execute("SELECT count(*), sum(bep51) FROM nodes").fetchone()
            db_conn.close()
            assert nodes_rows[0] >= 100 and nodes_rows[0] == nodes_rows[1]

    run(main(), 55)


def test_get_peers_and_announces_to_our_node_are_recorded(tmp_path: Path) -> None:
    db = tmp_path / "crawl.sqlite"
    asked, announced = b"\xaa" * 20, b"\xbb" * 20

    async def main() -> None:
        async with Testnet(3, seed=5) as net:
            with CrawlStore(db) as store:
                crawler = Crawler(
                    CrawlConfig(
                        host="127.0.0.1",
                        port=0,
                        bootstrap=net.bootstrap_addrs(1),
                        schedule=FAST,
                        seed=6,
                    ),
                    store,
                )
                task = asyncio.create_task(crawler.run(duration=10.0))
                while not crawler.nodes or crawler.scheduler is None:
                    await asyncio.sleep(0.05)
                target = crawler.nodes[0].addr
                async with Node("127.0.0.1", 0, bootstrap_routers=[]) as client:
                    r = await client.query(target, b"get_peers", {b"info_hash": asked})
                    token = r.values[b"token"]
                    await client.query(
                        target,
                        b"get_peers",
                        {b"info_hash": announced},
                    )
                    await client.query(
                        target,
                        b"announce_peer",
                        {b"info_hash": announced, b"port": 4321, b"token": token},
                    )
                    client_addr = client.addr
                    await asyncio.sleep(1.5)  # one flush period
                    rows = (
                        sqlite3.connect(db)
                        .execute(
                            "SELECT info_hash, how, node_ip, node_port, peer_ip, peer_port"
                            " FROM info_hashes ORDER BY info_hash"
                        )
                        .fetchall()
                    )
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        assert (asked, "get_peers", "127.0.0.1", client_addr[1], None, None) in rows
        # First sighting of ``announced`` was its get_peers; the announce adds the peer.
        assert any(r[0] == announced for r in rows)
        peers = sqlite3.connect(db).execute("SELECT peer_ip, peer_port FROM announces").fetchall()
        assert peers == [("127.0.0.1", 4321)]

    run(main(), 30)


def multi_file_info(name: str) -> bytes:
    return bencode2.bencode(
        {
            b"files": [
                {b"length": 5000, b"path": [b"docs", b"a.txt"]},
                {b"length": 20000, b"path": [b"b.bin"]},
            ],
            b"name": name.encode(),
            b"piece length": 16384,
            b"pieces": os.urandom(40),
        }
    )


def single_file_info(name: str, length: int) -> bytes:
    pieces = (length + 16383) // 16384
    return bencode2.bencode(
        {
            b"length": length,
            b"name": name.encode(),
            b"piece length": 16384,
            b"pieces": os.urandom(20 * pieces),
        }
    )


def test_metadata_of_served_torrents_is_resolved(tmp_path: Path) -> None:
    db = tmp_path / "crawl.sqlite"
    metas: list[TorrentMeta] = [
        parse_info(multi_file_info("album")),
        parse_info(single_file_info("movie.mkv", 70_000)),
        parse_info(single_file_info("notes.txt", 123)),
    ]

    async def main() -> None:
        config = DhtConfig(sample_interval_s=1)
        async with Testnet(16, config=config, seed=7) as net:
            fakes = inject(net, 20, 1, seed=8)  # no peer ever answers for these
            stop = asyncio.Event()
            servers = []
            for i, meta in enumerate(metas):
                ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                servers.append(
                    asyncio.create_task(
                        serve_torrents(
                            [meta],
                            node=net.nodes[3 + i],
                            host="127.0.0.1",
                            stop=stop,
                            ready=ready,
                            use_trackers=False,
                        )
                    )
                )
                await ready
            served = {m.info_hash_v1 for m in metas}
            while not all(any(h in n.core.storage for n in net.nodes) for h in served):
                await asyncio.sleep(0.05)
            try:
                with CrawlStore(db) as store:
                    crawler = Crawler(
                        CrawlConfig(
                            host="127.0.0.1",
                            port=0,
                            bootstrap=net.bootstrap_addrs(2),
                            schedule=FAST,
                            metadata=True,
                            metadata_concurrency=32,
                            metadata_timeout_s=3.0,
                            seed=9,
                        ),
                        store,
                    )
                    await crawl_until(crawler, lambda: crawler.metadata_ok >= 3, 30.0)
            finally:
                stop.set()
                for s in servers:
                    s.cancel()
                await asyncio.gather(*servers, return_exceptions=True)
            conn = sqlite3.connect(db)
            rows = {
                r[0]: r[1:]
                for r in conn.execute(
                    "SELECT info_hash, name, total_size, file_count FROM metadata"
                )
            }
            files = conn.execute(
                "SELECT path, length FROM files WHERE info_hash = ? ORDER BY idx",
                (metas[0].info_hash_v1,),
            ).fetchall()
            found = {r[0] for r in conn.execute("SELECT info_hash FROM info_hashes")}
            conn.close()
            assert set(rows) == served
            for m in metas:
                assert rows[m.info_hash_v1] == (m.name, m.total_size, len(m.files))
            assert files == [("album/docs/a.txt", 5000), ("album/b.bin", 20000)]
            assert found <= fakes | served

    run(main(), 55)
