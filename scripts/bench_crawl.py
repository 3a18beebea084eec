#!/usr/bin/env python3
"""Crawl a loopback testnet and measure discovery: unique info-hashes per second and per
1,000 queries sent.

A ``dht.io.testnet.Testnet`` of ``--nodes`` magnetar nodes holds ``--hashes`` random info-hashes,
each stored by ``--copies`` random nodes (written straight into their peer stores); the nodes
answer BEP 51 ``sample_infohashes`` with ``--interval`` and 20 samples. A ``Crawler`` with
``--qps`` and ``--ids`` walks it until ``--target`` coverage or ``--seconds``. The testnet and
the crawler share one process and one event loop (uvloop when installed), so the figures
include the cost of answering every query too.

Example::

    python scripts/bench_crawl.py --nodes 200 --hashes 20000 --interval 1 --qps 2000

Everything stays on 127.0.0.1; the database goes to a temporary directory, removed at exit.

``--sim`` runs the same crawl engine on the simulator instead (``crawl.simulation``): a
network of ``--nodes`` production cores on a virtual clock, 40 ms apart, in memory; it
reports virtual seconds to coverage and the real time the run took::

    python scripts/bench_crawl.py --sim --nodes 5000 --hashes 100000 --interval 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crawl.io.crawler import CrawlConfig, Crawler
from crawl.io.store import CrawlStore
from crawl.scheduler import SchedulerConfig
from dht.io.node import run
from dht.io.testnet import Testnet
from dht.protocol import DhtConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--nodes", type=int, default=200, help="testnet nodes")
    p.add_argument("--hashes", type=int, default=20_000, help="info-hashes stored")
    p.add_argument("--copies", type=int, default=2, help="nodes storing each info-hash")
    p.add_argument("--interval", type=int, default=1, help="BEP 51 interval the nodes send")
    p.add_argument("--qps", type=float, default=2000.0, help="crawler queries per second")
    p.add_argument("--in-flight", type=int, default=64, help="crawler queries in flight")
    p.add_argument("--ids", type=int, default=1, help="crawler node ids")
    p.add_argument("--seconds", type=float, default=60.0, help="give up after")
    p.add_argument("--target", type=float, default=0.95, help="stop at this coverage")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="one JSON record on stdout")
    p.add_argument("--sim", action="store_true", help="on the simulator (virtual clock)")
    return p.parse_args(argv)


async def bench(args: argparse.Namespace) -> dict[str, object]:
    config = DhtConfig(sample_interval_s=args.interval, max_peer_hashes=max(20_000, args.hashes))
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    async with Testnet(args.nodes, config=config, seed=args.seed) as net:
        started_net = time.monotonic() - t0
        now = asyncio.get_running_loop().time()
        hashes = {rng.randbytes(20) for _ in range(args.hashes)}
        for h in hashes:
            for node in rng.sample(net.nodes, min(args.copies, len(net.nodes))):
                node.core.storage.add(h, ("127.0.0.1", 1), now)
        with tempfile.TemporaryDirectory() as tmp:
            store = CrawlStore(os.path.join(tmp, "bench.sqlite"))
            schedule = _schedule(args)
            crawler = Crawler(
                CrawlConfig(
                    host="127.0.0.1",
                    port=0,
                    ids=args.ids,
                    bootstrap=net.bootstrap_addrs(3),
                    schedule=schedule,
                    stats_interval_s=float(os.environ.get("BENCH_STATS_S", "3600")),
                    seed=args.seed,
                ),
                store,
                on_health=lambda h: print(json.dumps(h), file=sys.stderr),
            )
            marks: dict[str, dict[str, float]] = {}
            stop = asyncio.Event()
            cpu0 = time.process_time()
            start = time.monotonic()

            async def watch() -> None:
                while True:
                    await asyncio.sleep(0.05)
                    found = store.new_hashes
                    sent = crawler.stats.sent
                    for share in (0.5, 0.9, args.target):
                        key = f"{share:.0%}"
                        if key not in marks and found >= share * len(hashes):
                            marks[key] = {
                                "seconds": round(time.monotonic() - start, 2),
                                "queries": sent,
                                "unique": found,
                            }
                    if found >= args.target * len(hashes):
                        stop.set()
                        return

            watcher = asyncio.create_task(watch())
            try:
                report = await crawler.run(duration=args.seconds, stop=stop)
            finally:
                watcher.cancel()
                store.close()
            elapsed = time.monotonic() - start
            cpu = time.process_time() - cpu0
    c = report.counters
    return {
        "nodes": args.nodes,
        "hashes": args.hashes,
        "copies": args.copies,
        "interval_s": args.interval,
        "qps_limit": args.qps,
        "ids": args.ids,
        "testnet_start_s": round(started_net, 2),
        "seconds": round(elapsed, 2),
        "queries": c.sent,
        "replies": c.replies,
        "samples": c.samples,
        "unique": c.unique,
        "coverage": round(c.unique / len(hashes), 4),
        "unique_per_s": round(c.unique / elapsed, 1),
        "unique_per_1000_queries": round(1000 * c.unique / max(c.sent, 1), 1),
        "queries_per_s": round(c.sent / elapsed, 1),
        "cpu_s": round(cpu, 2),
        "marks": marks,
    }


def bench_sim(args: argparse.Namespace) -> dict[str, object]:
    from crawl.simulation import MemorySink, SimCrawler, populate
    from dht.simulation import SimNetwork

    t0 = time.monotonic()
    sim = SimNetwork(seed=args.seed, latency=(0.04, 0.04))
    config = DhtConfig(
        maintenance_s=10.0,
        sample_interval_s=args.interval,
        max_peer_hashes=max(20_000, args.hashes),
    )
    nodes = populate(sim, args.nodes, config=config)
    rng = random.Random(args.seed)
    hashes = {rng.randbytes(20) for _ in range(args.hashes)}
    for h in hashes:
        for node in rng.sample(nodes, min(args.copies, len(nodes))):
            node.core.storage.add(h, ("10.200.0.1", 1), sim.now)
    started_net = time.monotonic() - t0
    sink = MemorySink()
    crawler = SimCrawler(
        sim,
        [n.addr for n in nodes[:3]],
        ids=args.ids,
        schedule=_schedule(args),
        sink=sink,
        seed=args.seed,
    )
    marks: dict[str, dict[str, float]] = {}
    start = time.monotonic()

    def done() -> bool:
        found, sent = crawler.new_hashes, crawler.engine.stats.sent
        for share in (0.5, 0.9, args.target):
            key = f"{share:.0%}"
            if key not in marks and found >= share * len(hashes):
                marks[key] = {"seconds": round(sim.now, 2), "queries": sent, "unique": found}
        return bool(found >= args.target * len(hashes))

    crawler.run_until(args.seconds, until=done)
    elapsed = time.monotonic() - start
    st = crawler.engine.stats
    return {
        "nodes": args.nodes,
        "hashes": args.hashes,
        "copies": args.copies,
        "interval_s": args.interval,
        "qps_limit": args.qps,
        "ids": args.ids,
        "testnet_start_s": round(started_net, 2),
        "seconds": round(sim.now, 2),
        "real_seconds": round(elapsed, 2),
        "queries": st.sent,
        "replies": st.replies,
        "samples": st.samples,
        "unique": crawler.new_hashes,
        "coverage": round(crawler.new_hashes / len(hashes), 4),
        "unique_per_s": round(crawler.new_hashes / max(sim.now, 1e-9), 1),
        "unique_per_1000_queries": round(1000 * crawler.new_hashes / max(st.sent, 1), 1),
        "queries_per_s": round(st.sent / max(sim.now, 1e-9), 1),
        "cpu_s": round(elapsed, 2),
        "marks": marks,
    }


def _schedule(args: argparse.Namespace) -> SchedulerConfig:
    return SchedulerConfig(
        qps=args.qps,
        bandwidth=1e9,
        max_in_flight=args.in_flight,
        min_revisit_s=0.0,
        idle_revisit_s=5.0,
        find_interval_s=5.0,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = bench_sim(args) if args.sim else run(bench(args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"testnet {result['nodes']} nodes, {result['hashes']} info-hashes x{result['copies']}, "
        f"interval {result['interval_s']} s; crawler qps limit {result['qps_limit']:g}, "
        f"{result['ids']} id(s)"
    )
    clock = f"virtual s, {result['real_seconds']} s real" if args.sim else "s"
    print(
        f"found {result['unique']} ({float(result['coverage']):.1%}) in {result['seconds']} "
        f"{clock} with {result['queries']} queries ({result['queries_per_s']} q/s, "
        f"cpu {result['cpu_s']} s)"
    )
    print(
        f"  {result['unique_per_s']} unique info-hashes/s, "
        f"{result['unique_per_1000_queries']} per 1,000 queries"
    )
    marks = result["marks"]
    assert isinstance(marks, dict)
    for key, m in marks.items():
        print(
            f"  {key}: {m['seconds']} s, {m['queries']} queries "
            f"({1000 * m['unique'] / max(m['queries'], 1):.0f} unique per 1,000 queries)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
