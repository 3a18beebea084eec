"""A private DHT of many ``dht.Node`` instances in one process, for demos and tests.

Nodes bind consecutive ports on one host (loopback by default) and join one another the way
real nodes join the public DHT: the first node is the bootstrap node, each later node
bootstraps from it and a few random earlier ones, and a final round of self-lookups lets
every node meet its neighbours. Nothing is sent anywhere but the given host. ``run`` is what
``magnetar testnet`` runs: a testnet that lasts until a signal or a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

from dht.addresses import format_hostport
from dht.io.daemon import stop_on_signals
from dht.io.node import Node
from dht.protocol import DhtConfig
from dht.wire import Addr

__all__ = ["Testnet", "run"]


class Testnet:
    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        count: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        config: DhtConfig | None = None,
        seed: int | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("a testnet needs at least one node")
        self.count = count
        self.host = host
        self.port = port
        self.config = config
        self.rng = random.Random(seed)
        self.nodes: list[Node] = []

    async def start(self) -> Testnet:
        try:
            for i in range(self.count):
                port = self.port + i if self.port else 0
                node = Node(self.host, port, bootstrap_routers=[], config=self.config, rng=self.rng)
                await node.start()
                self.nodes.append(node)
            await self._interconnect()
        except BaseException:
            self.close()
            raise
        return self

    async def _interconnect(self) -> None:
        first = self.nodes[0]
        batch = 16
        for start in range(1, len(self.nodes), batch):
            joined = self.nodes[:start]
            jobs = []
            for node in self.nodes[start : start + batch]:
                others = self.rng.sample(joined, min(3, len(joined)))
                seeds = dict.fromkeys([first.addr, *(n.addr for n in others)])
                jobs.append(node.bootstrap(list(seeds)))
            await asyncio.gather(*jobs)
        # Everyone looks itself up again now that the whole network exists.
        await asyncio.gather(*(n.find_node(n.node_id) for n in self.nodes))

    async def __aenter__(self) -> Testnet:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def bootstrap_addrs(self, count: int = 3) -> list[Addr]:
        return [n.addr for n in self.nodes[:count]]

    def describe(self) -> dict[str, object]:
        return {
            "bootstrap": [format_hostport(a) for a in self.bootstrap_addrs()],
            "nodes": len(self.nodes),
            "addresses": [format_hostport(n.addr) for n in self.nodes],
        }

    def close(self) -> None:
        for node in self.nodes:
            node.close()


async def run(
    count: int,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    duration: float | None = None,
    on_ready: Callable[[Testnet], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a testnet of ``count`` nodes until ``duration`` seconds have passed (None: no
    limit), ``stop`` is set or SIGINT/SIGTERM arrives. ``on_ready`` is called once every
    node has joined (``Testnet.describe()`` tells where they are)."""
    stop = stop or asyncio.Event()
    with stop_on_signals(stop):
        async with Testnet(count, host=host, port=port) as net:
            if on_ready is not None:
                on_ready(net)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
