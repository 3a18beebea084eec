"""A crawl bootstrapped only from loopback or LAN addresses is a crawl of a lab network.

The DHT cores already took their address policy from the bootstrap addresses (as
``dht.io.node`` does), but the crawl's scheduler judged learned nodes by the bind address
alone: bound to the wildcard and bootstrapped from a loopback testnet, it refused every node
it heard of and silently crawled one node. Everything here stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from crawl.io.crawler import CrawlConfig, Crawler
from crawl.io.store import CrawlStore
from crawl.scheduler import SchedulerConfig
from dht.io.testnet import Testnet
from dht.wire import Addr

FAST = SchedulerConfig(qps=2000, bandwidth=50e6, max_in_flight=64, min_revisit_s=0.0)
LAN: Addr = ("192.168.7.9", 6881)
LOOP: Addr = ("127.0.0.9", 6881)
PUBLIC: Addr = ("8.8.8.8", 6881)


@pytest.mark.parametrize(
    ("bootstrap", "allow_private", "expect"),
    [
        ([("127.0.0.1", 6881)], False, {PUBLIC, LAN, LOOP}),
        ([("10.1.2.3", 6881)], False, {PUBLIC, LAN}),
        ([("router.example.org", 6881)], False, {PUBLIC}),
        (None, False, {PUBLIC}),
        (None, True, {PUBLIC, LAN, LOOP}),
    ],
    ids=["loopback", "lan", "named", "public", "opt-in"],
)
def test_the_crawl_policy_follows_the_bootstrap_addresses(
    tmp_path: Path, bootstrap: list[Addr] | None, allow_private: bool, expect: set[Addr]
) -> None:
    config = CrawlConfig(host="0.0.0.0", bootstrap=bootstrap, allow_private=allow_private)
    with CrawlStore(tmp_path / "c.sqlite") as store:
        policy = Crawler(config, store).policy
    assert {a for a in (PUBLIC, LAN, LOOP) if policy.acceptable(a)} == expect


@pytest.mark.slow
def test_a_wildcard_crawl_of_a_loopback_testnet_meets_the_whole_testnet(tmp_path: Path) -> None:
    async def main() -> Crawler:
        async with Testnet(12, seed=3) as net:
            config = CrawlConfig(
                host="0.0.0.0", port=0, bootstrap=net.bootstrap_addrs(1), schedule=FAST, seed=1
            )
            with CrawlStore(tmp_path / "c.sqlite") as store:
                crawler = Crawler(config, store)
                await crawler.run(duration=3.0)
        return crawler

    crawler = asyncio.run(asyncio.wait_for(main(), 30))
    assert crawler.stats.refused == 0
    assert crawler.stats.nodes_met >= 10  # was 1: the bootstrap node alone
