"""The crawler end to end on a private loopback DHT: sockets, SQLite, metadata from real peers.

Coverage, BEP 51 intervals and passive sightings are tested on the simulator
(``test_simulation.py``); here the asyncio driver, the store and metadata resolution (BEP 9,
which needs peers on TCP) run for real. Every packet stays on 127.0.0.1. Testnet nodes hold
injected peer-store entries (written straight into ``core.storage``) and answer
``sample_infohashes`` from them, as any magnetar node does.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import bencode2

from crawl.io.crawler import CrawlConfig, Crawler
from crawl.io.store import CrawlStore
from crawl.scheduler import SchedulerConfig
from dht.io.node import Node
from dht.io.testnet import Testnet
from dht.protocol import DhtConfig
from dht.wire import unpack_nodes
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


def db_hashes(path: Path) -> list[bytes]:
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute("SELECT info_hash FROM info_hashes")]
    finally:
        db.close()


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


def test_crawl_end_to_end_stores_samples_nodes_and_resolved_metadata(tmp_path: Path) -> None:
    db = tmp_path / "crawl.sqlite"
    metas: list[TorrentMeta] = [
        parse_info(multi_file_info("album")),
        parse_info(single_file_info("movie.mkv", 70_000)),
        parse_info(single_file_info("notes.txt", 123)),
    ]

    async def main() -> None:
        # Callbacks that fail (a late flush into a closed store) surface here, not in a log.
        errors: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: errors.append(ctx))
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
                    done = asyncio.Event()
                    crawler = Crawler(
                        CrawlConfig(
                            host="127.0.0.1",
                            port=0,
                            ids=2,
                            bootstrap=net.bootstrap_addrs(2),
                            schedule=FAST,
                            metadata=True,
                            metadata_concurrency=32,
                            metadata_timeout_s=3.0,
                            seed=9,
                        ),
                        store,
                        # Checked on every housekeeping tick: stop once all three resolved.
                        on_progress=lambda p: done.set() if p["metadata"] == 3 else None,
                    )
                    report = await crawler.run(duration=30.0, stop=done)
                    assert done.is_set(), report.health
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
            found = [r[0] for r in conn.execute("SELECT info_hash FROM info_hashes")]
            nodes = conn.execute("SELECT count(*), sum(bep51) FROM nodes").fetchone()
            failures = conn.execute("SELECT count(*) FROM metadata_failures").fetchone()[0]
            conn.close()
            assert set(rows) == served
            for m in metas:
                assert rows[m.info_hash_v1] == (m.name, m.total_size, len(m.files))
            assert files == [("album/docs/a.txt", 5000), ("album/b.bin", 20000)]
            # The database holds each info-hash once, and only ones the testnet holds.
            assert len(found) == len(set(found)) == report.counters.unique
            assert set(found) <= fakes | served and served <= set(found)
            # The fakes have no peers: each resolution that ended failed, and was recorded.
            assert report.counters.metadata_failed == failures
            # Every node that answered was written down, with its BEP 51 support.
            assert nodes[0] >= 10 and nodes[0] == nodes[1]
            assert report.health["answering"] == 1.0 and report.health["bep51"] == 1.0
        await asyncio.sleep(0.1)  # anything the crawler left scheduled has run by now
        assert errors == []

    run(main(), 55)


def test_crawl_with_scrape_records_seed_and_peer_estimates(tmp_path: Path) -> None:
    db = tmp_path / "crawl.sqlite"

    async def main() -> None:
        async with Testnet(10, config=DhtConfig(sample_interval_s=1), seed=3) as net:
            now = asyncio.get_running_loop().time()
            swarms = {os.urandom(20): (seeds, 12 - seeds) for seeds in (0, 3, 7)}
            for h, (seeds, peers) in swarms.items():
                for node in net.nodes:  # every node holds the swarm: all are close enough
                    for i in range(seeds + peers):
                        node.core.storage.add(h, (f"10.1.{i}.7", 6881), now, seed=i < seeds)
            with CrawlStore(db) as store:
                done = asyncio.Event()
                config = CrawlConfig(
                    host="127.0.0.1",
                    port=0,
                    bootstrap=net.bootstrap_addrs(2),
                    schedule=FAST,
                    scrape=True,
                    scrape_timeout_s=5.0,
                    seed=4,
                )
                crawler = Crawler(
                    config,
                    store,
                    on_progress=lambda p: done.set() if crawler.scraped == len(swarms) else None,
                )
                report = await crawler.run(duration=30.0, stop=done)
                assert done.is_set(), report.health
            conn = sqlite3.connect(db)
            rows = {
                r[0]: r[1:] for r in conn.execute("SELECT info_hash, seeds, peers FROM scrapes")
            }
            conn.close()
            assert set(rows) == set(swarms)
            for h, (seeds, peers) in swarms.items():
                assert abs(rows[h][0] - seeds) < 1 and abs(rows[h][1] - peers) < 1.5

    run(main(), 45)
