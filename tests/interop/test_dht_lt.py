"""Our DHT node and libtorrent's, on loopback: each finds the other's peers.

libtorrent calls are blocking (they pump its alert queue), so while our asyncio node must
keep answering they run in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, TypeVar

import pytest

from dht.io.node import Node

if TYPE_CHECKING:
    from tests.interop.ltswarm import LtSwarm

pytestmark = pytest.mark.interop
T = TypeVar("T")
OUR_IP = "127.0.0.1"  # the libtorrent swarm lives on 127.0.0.2 and up


@pytest.fixture
def fresh_swarm() -> Iterator[LtSwarm]:
    """A swarm of its own, for tests that put our (short-lived) node into libtorrent's
    tables: once closed it would be a dead entry costing every later lookup a timeout."""
    from tests.interop.ltswarm import LtSwarm

    with LtSwarm(6, first_ip="127.0.1.2") as swarm:
        yield swarm


def run(coro: Awaitable[T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def test_our_node_joins_and_libtorrent_adds_it(fresh_swarm: LtSwarm) -> None:
    lt_swarm = fresh_swarm

    async def main() -> None:
        async with Node(OUR_IP, 0, bootstrap_routers=lt_swarm.bootstrap_addrs()) as node:
            size = await node.bootstrap()
            assert size >= len(lt_swarm) - 1  # we met (nearly) the whole swarm
            lt_ids = {n.node_id() for n in lt_swarm}
            assert {e.id for e in node.core.routing} <= lt_ids

            def knowers() -> int:
                return sum(1 for n in lt_swarm if any(a == node.addr for _, a in n.routing_table()))

            # libtorrent inserts a querier that is not read-only into its table at once.
            for _ in range(50):
                if await asyncio.to_thread(knowers) >= 3:
                    break
                await asyncio.sleep(0.1)
            assert await asyncio.to_thread(knowers) >= 3

    run(main())


def test_libtorrent_announce_is_found_by_magnetar_peers(lt_swarm: LtSwarm) -> None:
    info_hash = os.urandom(20)
    announcer = lt_swarm[3]
    announcer.announce(info_hash, 5555)
    lt_swarm.wait_announced(info_hash, 2, timeout=10.0)
    boot = lt_swarm.bootstrap_addrs()[0]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "magnet",
            "peers",
            info_hash.hex(),
            "-b",
            f"{boot[0]}:{boot[1]}",
            "--json",
            "--timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    peers = {(r["ip"], r["port"]) for r in map(json.loads, out.stdout.splitlines())}
    assert (announcer.ip, 5555) in peers


def test_our_announce_is_found_by_libtorrent(lt_swarm: LtSwarm) -> None:
    async def main() -> None:
        info_hash = os.urandom(20)
        async with Node(OUR_IP, 0, bootstrap_routers=lt_swarm.bootstrap_addrs()) as node:
            await node.bootstrap()
            stored = await node.announce(info_hash, 7777)
            assert stored >= 3
            seeker = lt_swarm[6]
            peers = await asyncio.to_thread(seeker.get_peers, info_hash, 10.0)
            assert (OUR_IP, 7777) in peers

    run(main())


def test_libtorrent_answers_our_queries_and_we_answer_its(fresh_swarm: LtSwarm) -> None:
    lt_swarm = fresh_swarm

    async def main() -> None:
        async with Node(OUR_IP, 0, bootstrap_routers=[]) as node:
            lt = lt_swarm[2]
            answer = await node.ping(lt.addr)
            assert answer.response.id == lt.node_id()
            assert answer.response.version is not None and answer.response.version[:2] == b"LT"
            # libtorrent pings a node it is told about; we answer, so it joins its table.
            lt.add_dht_node(node.addr)

            def knows_us() -> bool:
                return any(a == node.addr for _, a in lt.routing_table())

            for _ in range(50):
                if await asyncio.to_thread(knows_us):
                    break
                await asyncio.sleep(0.1)
            assert await asyncio.to_thread(knows_us)
            assert (
                node.core.stats.queries_in.get("ping", 0)
                + node.core.stats.queries_in.get("find_node", 0)
                + node.core.stats.queries_in.get("get_peers", 0)
                >= 1
            )

    run(main())
