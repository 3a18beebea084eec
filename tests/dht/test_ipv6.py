"""BEP 32: the IPv6 DHT on ::1, dual-stack nodes, nodes6 and want."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from dht.io.node import Node
from dht.protocol import DhtProtocol
from dht.wire import Query, Response, decode, encode_query

T = TypeVar("T")


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) here")


def run(coro: Awaitable[T], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def test_ipv6_network_on_loopback() -> None:
    async def main() -> None:
        first = await Node("::1", 0, bootstrap_routers=[]).start()
        nodes = [first]
        try:
            for _ in range(7):
                n = await Node("::1", 0, bootstrap_routers=[first.addr]).start()
                await n.bootstrap()
                nodes.append(n)
            assert nodes[3].addr[0] == "::1"
            answer = await nodes[2].ping(nodes[5].addr)
            assert answer.response.id == nodes[5].node_id
            h = os.urandom(20)
            assert await nodes[1].announce(h, 6000) >= 1
            peers = [p async for p in nodes[6].get_peers(h)]
            assert ("::1", 6000) in peers
        finally:
            for n in nodes:
                n.close()

    run(main())


def test_dual_stack_node_serves_both_families() -> None:
    async def main() -> None:
        async with Node("::", 0, bootstrap_routers=[]) as hub:
            families = {a[0] for a in hub.addrs}
            assert families == {"::", "0.0.0.0"}
            port = hub.addrs[0][1]
            assert all(a[1] == port for a in hub.addrs)
            v4 = await Node("127.0.0.1", 0, bootstrap_routers=[("127.0.0.1", port)]).start()
            v6 = await Node("::1", 0, bootstrap_routers=[("::1", port)]).start()
            try:
                await v4.bootstrap()
                await v6.bootstrap()
                assert (await v4.ping(("127.0.0.1", port))).response.id == hub.node_id
                assert (await v6.ping(("::1", port))).response.id == hub.node_id
                h = os.urandom(20)
                assert await v4.announce(h, 4444) == 1
                assert await v6.announce(h, 6666) == 1
                # the hub's get_peers runs in both DHTs and sees both announces
                found = {p async for p in hub.get_peers(h, seeds=[v4.addr, v6.addr])}
                assert ("127.0.0.1", 4444) in found and ("::1", 6666) in found
            finally:
                v4.close()
                v6.close()

    run(main())


def test_want_n4_n6_answers_both_kinds_of_nodes() -> None:
    rng = random.Random(1)
    v4 = DhtProtocol(None, rng=rng, now=0.0, family=4)
    v6 = DhtProtocol(v4.node_id, rng=rng, now=0.0, family=6)
    v4.sibling, v6.sibling = v6, v4
    v4.routing.node_seen(rng.randbytes(20), ("198.51.100.1", 1), 0.0)
    v6.routing.node_seen(rng.randbytes(20), ("2001:db8::1", 2), 0.0)

    def ask(core: DhtProtocol, addr: tuple[str, int], want: list[bytes] | None) -> Response:
        args: dict[bytes, object] = {b"id": b"q" * 20, b"target": b"t" * 20}
        if want is not None:
            args[b"want"] = want
        core.receive_datagram(encode_query(b"aa", b"find_node", args, read_only=True), addr, 1.0)
        msgs = [decode(d) for d, _ in core.datagrams_to_send(1.0)]
        (resp,) = [m for m in msgs if not isinstance(m, Query)]
        assert isinstance(resp, Response)
        return resp

    plain4 = ask(v4, ("198.51.100.9", 9), None)
    assert len(plain4.nodes) == 1 and plain4.nodes6 == ()
    plain6 = ask(v6, ("2001:db8::9", 9), None)
    assert plain6.nodes == () and len(plain6.nodes6) == 1
    both = ask(v4, ("198.51.100.9", 9), [b"n4", b"n6"])
    assert len(both.nodes) == 1 and both.nodes6[0].addr == ("2001:db8::1", 2)
    only6 = ask(v4, ("198.51.100.9", 9), [b"n6", b"zz"])
    assert only6.nodes == () and len(only6.nodes6) == 1
