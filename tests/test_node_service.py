"""magnetar node as a service: state across restarts, clean shutdown, floods."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from dht.io.daemon import NodeService, serve_node
from dht.io.node import Node
from dht.io.state import load_state
from dht.io.testnet import Testnet
from dht.protocol import DhtConfig

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def run_service(service: NodeService, until: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(serve_node(service, stop))
    await asyncio.sleep(until)
    stop.set()
    await asyncio.wait_for(task, 5)


@pytest.mark.slow
def test_restart_keeps_the_id_and_rejoins_without_routers(tmp_path: Path) -> None:
    state = tmp_path / "node.state"

    async def main() -> None:
        async with Testnet(20) as net:
            first = NodeService(
                host="127.0.0.1", port=0, routers=net.bootstrap_addrs(2), state_path=str(state)
            )
            await run_service(first, 1.5)
            saved = load_state(state)
            assert len(saved.nodes) >= 8
            # Restart with a router that does not exist: only the saved table can help.
            second = NodeService(
                host="127.0.0.1", port=0, routers=[("127.0.0.1", 9)], state_path=str(state)
            )
            await run_service(second, 1.5)
            again = load_state(state)
            assert again.node_id == saved.node_id
            assert len(again.nodes) >= 8

    run(main())


@pytest.mark.slow
@pytest.mark.parametrize("cut", [0, 1, 7, 40, 41, 100, -1])
def test_a_damaged_state_file_is_set_aside_and_the_node_starts(tmp_path: Path, cut: int) -> None:
    state = tmp_path / "node.state"

    async def main() -> None:
        async with Testnet(6) as net:
            service = NodeService(
                host="127.0.0.1", port=0, routers=net.bootstrap_addrs(1), state_path=str(state)
            )
            await run_service(service, 0.5)
            good = state.read_bytes()
            size = len(good)
            offset = random.Random(cut).randrange(size) if cut == -1 else min(cut, size - 1)
            state.write_bytes(good[:offset])
            await run_service(service, 0.5)
            aside = list(tmp_path.glob("node.state.bad-*"))
            assert aside and aside[0].read_bytes() == good[:offset]
            assert load_state(state).node_id != load_state_id(good)

    def load_state_id(blob: bytes) -> bytes:
        from dht.io.state import decode_state

        return decode_state(blob).node_id

    run(main())


def test_sigterm_stops_within_seconds_and_saves(tmp_path: Path) -> None:
    state = tmp_path / "s.state"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "magnet",
            "node",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "-b",
            "127.0.0.1:9",
            "--state",
            str(state),
            "--stats-interval",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first stats line: it is up
        record = json.loads(line)
        assert {"nodes", "good", "queries_in", "dropped", "rss", "peers"} <= set(record)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)
        assert time.monotonic() - started < 3
        assert proc.returncode == 0
        load_state(state)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@pytest.mark.slow
def test_flood_from_many_sources_stays_bounded_and_a_client_is_answered() -> None:
    from scripts.krpc_load import LoadConfig, run_load_in_process

    async def main() -> None:
        config = DhtConfig(
            max_peer_hashes=500, max_total_peers=2000, rate_per_ip=50.0, rate_burst=50
        )
        async with Node("127.0.0.1", 0, bootstrap_routers=[], config=config) as node:
            loop = asyncio.get_running_loop()
            flood = loop.run_in_executor(
                None,
                lambda: run_load_in_process(
                    LoadConfig(
                        target=node.addr, seconds=3.0, sources=2000, window=128, read_only=False
                    )
                ),
            )
            async with Node(
                "127.0.0.1", 0, bootstrap_routers=[], config=DhtConfig(read_only=True)
            ) as client:
                answered = 0
                for _ in range(20):
                    await asyncio.sleep(0.1)
                    answer = await client.ping(node.addr)
                    answered += answer.response.id == node.node_id
            result = await flood
            assert answered == 20
            assert result.answered > 1000
            status = node.status()
            assert status["info_hashes"] <= 500 and status["peers"] <= 2000
            assert status["pending"] <= config.max_pending

    run(main(), 60)


def test_testnet_run_reports_ready_then_lasts_until_stopped() -> None:
    from dht.io.testnet import run as run_testnet

    async def main() -> None:
        stop = asyncio.Event()
        seen: list[dict[str, object]] = []

        def ready(net: Testnet) -> None:
            seen.append(net.describe())
            # Every node is up and joined when we hear of it.
            assert all(len(node.core.routing) >= 1 for node in net.nodes)
            asyncio.get_running_loop().call_later(0.2, stop.set)

        await run_testnet(4, on_ready=ready, stop=stop)
        assert len(seen) == 1 and seen[0]["nodes"] == 4

    run(main())


def test_testnet_run_ends_after_its_duration() -> None:
    from dht.io.testnet import run as run_testnet

    async def main() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await run_testnet(2, duration=0.3)
        assert loop.time() - started >= 0.3

    run(main())
