#!/usr/bin/env python3
"""BEP 44 figures: put and get latencies, and what one stored item costs in memory.

    python scripts/bench_items.py [--nodes 50] [--runs 20] [--sim-nodes 1000] [--items 5000]
        [--cli]

Prints one JSON object with

- ``testnet``: put/get latencies (median and p90, ms) through ``dht.Node`` on a loopback
  testnet of ``--nodes`` nodes in this process (``dht.io.testnet``): immutable put, get from
  another node, mutable put (seq chosen from the network) and mutable get;
- ``cli`` (with ``--cli``): the same as a user sees it, ``magnetar put`` and ``magnetar get``
  processes (start-up included) against a ``magnetar testnet`` process;
- ``sim``: the same lookups on ``--sim-nodes`` simulated nodes (10-100 ms one-way latency,
  virtual seconds), and the real CPU time each took to simulate;
- ``store``: bytes of Python memory per item in the item store (tracemalloc), for small
  immutable, small mutable and 1000-byte mutable items (``--items`` of each).

Everything stays on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from dht.io.testnet import Testnet
from dht.itemlookups import PutItem, start_get, start_put
from dht.items import immutable_item, mutable_item, mutable_target, public_key
from dht.itemstore import ItemStore
from dht.simulation import SimNetwork

SEED = bytes(range(32))


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(p90 * 1000, 2),
    }


async def testnet_figures(nodes: int, runs: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {k: [] for k in ("put_immutable", "get_immutable")}
    times.update({"put_mutable": [], "get_mutable": []})
    stored: list[int] = []
    async with Testnet(nodes, seed=1) as net:
        for i in range(runs):
            writer = net.nodes[i % nodes]
            reader = net.nodes[(i * 7 + 3) % nodes]
            value = b"bench item %d" % i
            t = time.perf_counter()
            result = await writer.put_immutable(value)
            times["put_immutable"].append(time.perf_counter() - t)
            stored.append(result.stored)
            t = time.perf_counter()
            got = await reader.get(result.target)
            times["get_immutable"].append(time.perf_counter() - t)
            assert got is not None and got.value() == value
            salt = b"%d" % i
            t = time.perf_counter()
            result = await writer.put_mutable(SEED, value, salt=salt)
            times["put_mutable"].append(time.perf_counter() - t)
            t = time.perf_counter()
            got = await reader.get(result.target, salt=salt)
            times["get_mutable"].append(time.perf_counter() - t)
            assert got is not None and got.value() == value
    out: dict[str, Any] = {"nodes": nodes, "runs": runs, "stored_median": statistics.median(stored)}
    out.update({k: summary(v) for k, v in times.items()})
    return out


def cli_figures(runs: int) -> dict[str, Any]:
    magnetar = [sys.executable, "-m", "magnet"]
    net = subprocess.Popen(
        [*magnetar, "testnet", "--nodes", "30", "--duration", "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert net.stdout is not None
        boot = json.loads(net.stdout.readline())["bootstrap"][0]
        puts, gets = [], []
        for i in range(runs):
            t = time.perf_counter()
            out = subprocess.run(
                [*magnetar, "put", f"cli item {i}", "-b", boot, "--json"],
                capture_output=True,
                timeout=60,
                check=True,
            )
            puts.append(time.perf_counter() - t)
            target = json.loads(out.stdout)["target"]
            t = time.perf_counter()
            subprocess.run(
                [*magnetar, "get", target, "-b", boot], capture_output=True, timeout=60, check=True
            )
            gets.append(time.perf_counter() - t)
    finally:
        net.terminate()
        net.wait(10)
    return {"runs": runs, "put": summary(puts), "get": summary(gets)}


def sim_figures(count: int, runs: int) -> dict[str, Any]:
    net = SimNetwork(seed=7, latency=(0.01, 0.1))
    nodes = net.grow(count)
    net.run_for(60)
    virtual: dict[str, list[float]] = {"put_immutable": [], "get_immutable": []}
    virtual.update({"put_mutable": [], "get_mutable": []})
    cpu: list[float] = []

    def timed(name: str, node: Any, rid: int, began: float, c0: float) -> None:
        """Run the lookup ``rid`` just started on ``node`` to its end; note its times."""
        net.poll(node)
        net.run_until_done(node, rid)
        virtual[name].append(net.now - began)
        cpu.append(time.process_time() - c0)

    for i in range(runs):
        writer, reader = nodes[(i * 13) % count], nodes[(i * 31 + 5) % count]
        item = immutable_item(b"sim item %d" % i)
        salt = b"%d" % i
        target = mutable_target(public_key(SEED), salt)
        value = immutable_item(b"v").v
        wcore, rcore = writer.core, reader.core
        began, c0 = net.now, time.process_time()
        put = PutItem(wcore.new_request_id(), item.target, item=item)
        timed("put_immutable", writer, start_put(wcore, put, net.now).id, began, c0)
        began, c0 = net.now, time.process_time()
        timed("get_immutable", reader, start_get(rcore, item.target, net.now).id, began, c0)
        began, c0 = net.now, time.process_time()
        put = PutItem(wcore.new_request_id(), target, seed=SEED, value=value, salt=salt)
        timed("put_mutable", writer, start_put(wcore, put, net.now).id, began, c0)
        began, c0 = net.now, time.process_time()
        get = start_get(rcore, target, net.now, salt=salt)
        timed("get_mutable", reader, get.id, began, c0)
    out: dict[str, Any] = {"nodes": count, "runs": runs, "latency_one_way_ms": [10, 100]}
    out.update({k: summary(v) for k, v in virtual.items()})
    out["cpu_per_lookup_ms"] = round(statistics.median(cpu) * 1000, 2)
    return out


def store_figures(count: int) -> dict[str, Any]:
    makers: dict[str, Callable[[int], Any]] = {
        "immutable_20B": lambda i: immutable_item(b"value %012d" % i),
        "mutable_20B": lambda i: mutable_item(SEED, b"value %012d" % i, seq=1, salt=b"%d" % i),
        "mutable_1000B": lambda i: mutable_item(SEED, b"%0995d" % i, seq=1, salt=b"%d" % i),
    }
    out: dict[str, Any] = {"items": count}
    for name, make in makers.items():
        items = [make(i) for i in range(count)]  # made (and signed) outside the measurement
        store = ItemStore(max_items=count, max_bytes=10**9, max_per_source=count)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i, item in enumerate(items):
            store.put(item, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 0.0)
        # The items themselves were allocated before: add what one item object holds.
        index = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        own = sum(sys.getsizeof(getattr(items[0], f)) for f in ("v", "target")) + sys.getsizeof(
            items[0]
        )
        if hasattr(items[0], "k"):
            own += sum(sys.getsizeof(getattr(items[0], f)) for f in ("k", "sig", "salt"))
        out[name] = {
            "store_bytes_per_item": round(index / count),
            "item_object_bytes": own,
            "total_bytes_per_item": round(index / count) + own,
            "counted_against_max_bytes": store.bytes_used // count,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=50, help="loopback testnet size")
    parser.add_argument("--runs", type=int, default=20, help="puts and gets of each kind")
    parser.add_argument("--sim-nodes", type=int, default=1000)
    parser.add_argument("--items", type=int, default=5000, help="items per kind in the store")
    parser.add_argument("--cli", action="store_true", help="also time magnetar put/get")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "testnet": asyncio.run(testnet_figures(args.nodes, args.runs)),
        "sim": sim_figures(args.sim_nodes, args.runs),
        "store": store_figures(args.items),
    }
    if args.cli:
        report["cli"] = cli_figures(min(args.runs, 10))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
