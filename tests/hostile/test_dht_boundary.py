"""One exception boundary per datagram in the node driver.

The attack: a datagram that trips a bug in the core (simulated by a core that raises on one
payload). The defence: that datagram is dropped and counted, the error is logged, and the
node keeps answering everyone else; the exception never reaches the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest

from dht.io.node import Node

POISON = b"poison"


def test_a_datagram_that_breaks_the_core_costs_only_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        loop_errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: loop_errors.append(ctx))
        async with (
            Node("127.0.0.1", 0, bootstrap_routers=[]) as target,
            Node("127.0.0.1", 0, bootstrap_routers=[]) as client,
        ):
            core = target.core
            real = core.receive_datagram

            def fragile(data: bytes, addr: tuple[str, int], now: float) -> None:
                if data == POISON:
                    raise RuntimeError("a bug the datagram found")
                real(data, addr, now)

            core.receive_datagram = fragile  # type: ignore[method-assign]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for _ in range(3):
                    s.sendto(POISON, target.addr)
            await asyncio.sleep(0.1)
            answer = await asyncio.wait_for(client.ping(target.addr), 5)
            assert answer.response.id == target.node_id
            assert core.stats.dropped.get("internal error") == 3
            assert loop_errors == []

    with caplog.at_level(logging.ERROR):
        asyncio.run(asyncio.wait_for(main(), 30))
    logged = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert 1 <= len(logged) <= 2  # the 1st and 2nd, not the 3rd: no log flood
