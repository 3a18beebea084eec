"""dht.Node over real UDP sockets on loopback."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from dht.io.node import DhtQueryError, Node
from dht.protocol import DhtConfig

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def start_network(count: int) -> list[Node]:
    first = await Node("127.0.0.1", 0, bootstrap_routers=[]).start()
    nodes = [first]
    for _ in range(count - 1):
        node = await Node("127.0.0.1", 0, bootstrap_routers=[first.addr]).start()
        await node.bootstrap()
        nodes.append(node)
    return nodes


def test_ping_find_node_announce_and_get_peers() -> None:
    async def main() -> None:
        nodes = await start_network(12)
        try:
            answer = await nodes[1].ping(nodes[2].addr)
            assert answer.response.id == nodes[2].node_id
            target = nodes[7].node_id
            found = await nodes[3].find_node(target)
            assert found and found[0].id == target
            info_hash = os.urandom(20)
            assert await nodes[4].announce(info_hash, 5555) >= 1
            peers = [p async for p in nodes[9].get_peers(info_hash)]
            assert ("127.0.0.1", 5555) in peers
        finally:
            for n in nodes:
                n.close()

    run(main())


def test_ping_to_nobody_times_out() -> None:
    async def main() -> None:
        cfg = DhtConfig(query_timeout_s=0.3)
        async with Node("127.0.0.1", 0, bootstrap_routers=[], config=cfg) as node:
            silent = await Node(
                "127.0.0.1", 0, bootstrap_routers=[], config=DhtConfig(read_only=True)
            ).start()
            try:
                with pytest.raises(DhtQueryError, match="timeout"):
                    await node.ping(silent.addr)
            finally:
                silent.close()

    run(main())


def test_node_survives_garbage_and_keeps_answering() -> None:
    async def main() -> None:
        async with (
            Node("127.0.0.1", 0, bootstrap_routers=[]) as node,
            Node("127.0.0.1", 0, bootstrap_routers=[]) as client,
        ):
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
            )
            try:
                for junk in (
                    b"",
                    b"\x00" * 100,
                    b"d1:ad2:id3:abce1:q4:ping1:t1:x1:y1:qe",
                    os.urandom(500),
                ):
                    transport.sendto(junk, node.addr)
                await asyncio.sleep(0.05)
            finally:
                transport.close()
            answer = await client.ping(node.addr)
            assert answer.response.id == node.node_id
            assert node.core.stats.dropped.get("garbage", 0) >= 2

    run(main())


def test_get_peers_on_an_empty_dht_ends_with_a_summary() -> None:
    async def main() -> None:
        nodes = await start_network(3)
        try:
            stream = nodes[1].get_peers(os.urandom(20))
            assert [p async for p in stream] == []
            assert stream.result is not None and stream.result.replied >= 1
        finally:
            for n in nodes:
                n.close()

    run(main())


def _rmem_max() -> int:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


@pytest.mark.skipif(_rmem_max() < 1 << 20, reason="the kernel caps receive buffers low here")
def test_sockets_get_room_for_a_burst_of_answers() -> None:
    import socket

    from dht.io.node import RECEIVE_BUFFER_BYTES

    async def main() -> tuple[int, int]:
        sizes = []
        for buffer in (RECEIVE_BUFFER_BYTES, None):
            async with Node("127.0.0.1", 0, bootstrap_routers=[], receive_buffer=buffer) as node:
                transport = node._endpoints[4].transport
                assert transport is not None
                sock = transport.get_extra_info("socket")
                sizes.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        return sizes[0], sizes[1]

    wide, default = run(main())
    # Linux reports twice what was granted; granted is min(asked, rmem_max).
    assert wide >= min(RECEIVE_BUFFER_BYTES, _rmem_max()) > default


def test_queries_out_are_capped_by_what_the_socket_can_hold() -> None:
    async def main() -> tuple[int, int]:
        async with (
            Node("127.0.0.1", 0, bootstrap_routers=[], receive_buffer=65536) as small,
            Node("127.0.0.1", 0, bootstrap_routers=[], receive_buffer=1 << 30) as wide,
        ):
            return small.core.config.max_pending, wide.core.config.max_pending

    small, wide = run(main())
    assert small < DhtConfig().max_pending  # 128 KiB reported by Linux: 64 answers
    assert small >= 64
    assert wide <= DhtConfig().max_pending  # never raised above what was configured


def _receive_buffer_drops() -> int | None:
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        return None


@pytest.mark.skipif(_receive_buffer_drops() is None, reason="no UDP counters to read")
def test_a_burst_of_lookups_from_a_small_buffer_loses_no_answers() -> None:
    # A stock kernel's receive buffer (~208 KiB): 200 lookups at once would have far more
    # answers in flight than it holds; the cap on queries out makes them queue instead.
    from dht.io.testnet import Testnet

    async def main() -> int:
        async with (
            Testnet(24, seed=5) as net,
            Node(
                "127.0.0.1",
                0,
                bootstrap_routers=net.bootstrap_addrs(3),
                config=DhtConfig(read_only=True),
                receive_buffer=212992,
            ) as node,
        ):
            await node.bootstrap()
            before = _receive_buffer_drops()
            assert before is not None
            results = await asyncio.gather(*(node.find_node(os.urandom(20)) for _ in range(200)))
            after = _receive_buffer_drops()
            assert after is not None
            assert all(results)
            return after - before

    assert run(main(), timeout=60) == 0
