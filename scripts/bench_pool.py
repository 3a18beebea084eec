#!/usr/bin/env python3
"""Bootstrap-router figures: memory per pooled node, and a router to flood.

    python scripts/bench_pool.py rss --nodes 100000
        RSS of a process before and after its router core holds N verified nodes, and the
        bytes per node; plus how long answering find_node from that pool takes.

    python scripts/bench_pool.py serve HOST PORT --fill 100000
        A `magnetar node --bootstrap-mode` equivalent whose pool is pre-filled with N random
        (global, never contacted) nodes, for scripts/bench_node.py to flood:

    python scripts/bench_node.py --target ours --ours-cmd \\
        'python scripts/bench_pool.py serve {host} {port} --fill 100000'
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from dht.io.resources import rss_bytes
from dht.protocol import DhtConfig, DhtProtocol


def fill(core: DhtProtocol, count: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    assert core.pool is not None
    for i in range(count):
        # Addresses in 1.0.0.0/8 .. 126/8: global unicast, never contacted by the bench.
        ip = f"{1 + (i >> 16) % 126}.{(i >> 8) & 255}.{i & 255}.{rng.randrange(1, 255)}"
        core.pool.add(rng.randbytes(20), (ip, 6881), 0.0)


def measure_rss(count: int) -> dict[str, float]:
    gc.collect()
    before = rss_bytes()
    core = DhtProtocol(
        None, rng=random.Random(0), now=0.0, config=DhtConfig(bootstrap_mode=True, pool_size=count)
    )
    fill(core, count)
    gc.collect()
    after = rss_bytes()
    assert core.pool is not None
    targets = [random.Random(i).randbytes(20) for i in range(10_000)]
    started = time.perf_counter()
    for t in targets:
        core.pool.closest_compact(t, 8)
    per_lookup = (time.perf_counter() - started) / len(targets)
    return {
        "nodes": len(core.pool),
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(after / 2**20, 1),
        "bytes_per_node": round((after - before) / max(1, len(core.pool)), 1),
        "closest_us": round(per_lookup * 1e6, 2),
    }


async def serve(host: str, port: int, count: int) -> None:
    from dht.io.node import Node

    config = DhtConfig(bootstrap_mode=True, pool_size=max(count, 8), rate_per_ip=0.0)
    node = Node(host, port, bootstrap_routers=[], config=config)
    await node.start()
    fill(node.core, count)
    print(f"router on {host}:{port} with {count} pooled nodes", file=sys.stderr, flush=True)
    await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rss", help="memory per pooled node")
    r.add_argument("--nodes", type=int, default=100_000)
    s = sub.add_parser("serve", help="a pre-filled router to flood")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("--fill", type=int, default=100_000)
    args = p.parse_args()
    if args.cmd == "rss":
        print(json.dumps(measure_rss(args.nodes)))
    else:
        from dht.io.node import run

        run(serve(args.host, args.port, args.fill))


if __name__ == "__main__":
    main()
