"""scripts/bench_items.py measures what it says, on small sizes: every put stores, every get
finds the item it asserts, and the store's figures follow the items' sizes."""

from __future__ import annotations

import asyncio

from scripts import bench_items as bench


def test_store_figures_grow_with_the_item() -> None:
    figures = bench.store_figures(200)
    small, big = figures["mutable_20B"], figures["mutable_1000B"]
    assert figures["immutable_20B"]["counted_against_max_bytes"] == 20 + 21
    # values of 21 and 999 bytes bencoded (same keys, signatures and salts)
    assert big["counted_against_max_bytes"] - small["counted_against_max_bytes"] == 978
    assert big["total_bytes_per_item"] > small["total_bytes_per_item"] + 900


def test_latency_figures_come_from_lookups_that_worked() -> None:
    net = asyncio.run(asyncio.wait_for(bench.testnet_figures(12, 2), 30))
    assert net["stored_median"] == 8 and net["get_mutable"]["median_ms"] > 0
    sim = bench.sim_figures(60, 2)
    # virtual time: at least a round trip of 2 x 10 ms per lookup
    assert sim["get_immutable"]["median_ms"] >= 20 and sim["cpu_per_lookup_ms"] > 0
