"""dht.io.client: the read-only client's ping and peer search, against a loopback testnet."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Iterator, Sequence
from typing import Any, TypeVar

import pytest

import dht.io.client
import dht.lookups
from dht.io.client import (
    BootstrapError,
    DhtQueryError,
    HostNotFoundError,
    client_node,
    find_peers,
    ping,
)
from dht.io.node import Node, PeerStream
from dht.io.testnet import Testnet
from dht.wire import Addr

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@pytest.fixture
def silent_port() -> Iterator[Addr]:
    """A loopback UDP port that is bound (no ICMP "unreachable") but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield "127.0.0.1", int(sock.getsockname()[1])


def test_client_node_is_read_only_and_keeps_its_routers_and_timeout() -> None:
    async def main() -> None:
        async with client_node([("127.0.0.1", 9)], timeout=1.5) as node:
            assert node.routers == (("127.0.0.1", 9),)
            assert node.core.config.read_only and node.core.config.query_timeout_s == 1.5
        async with client_node(()) as node:
            assert node.routers == () and node.core.config.read_only
            assert node.core.config.alpha == dht.io.client.CLIENT_ALPHA

    run(main())


def test_ping_returns_the_nodes_id_and_a_round_trip_time() -> None:
    async def main() -> None:
        async with Testnet(3) as net:
            target = net.nodes[1]
            answer = await ping(target.addr, timeout=2.0)
            assert answer.response.id == target.node_id
            assert answer.addr == target.addr
            assert answer.response.version is not None
            assert 0 < answer.rtt < 2.0

    run(main())


def test_ping_over_ipv6_loopback() -> None:
    async def main() -> None:
        async with Testnet(2, host="::1") as net:
            answer = await ping(net.nodes[0].addr, timeout=2.0)
            assert answer.response.id == net.nodes[0].node_id

    run(main())


def test_ping_of_a_silent_node_fails_after_the_timeout(silent_port: Addr) -> None:
    with pytest.raises(DhtQueryError) as caught:
        run(ping(silent_port, timeout=0.3))
    assert caught.value.addr == silent_port


def test_ping_of_a_name_that_does_not_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    # Name resolution stubbed: tests send nothing beyond loopback, DNS queries included.
    async def nothing(routers: object, **kwargs: object) -> list[Addr]:
        return []

    monkeypatch.setattr(dht.io.client, "resolve_routers", nothing)
    with pytest.raises(HostNotFoundError, match=r"cannot resolve node\.example"):
        run(ping(("node.example", 6881)))


def test_find_peers_yields_an_announced_peer_and_summarises_the_lookup() -> None:
    async def main() -> None:
        info_hash = os.urandom(20)
        async with Testnet(10, seed=3) as net:
            assert await net.nodes[4].announce(info_hash, 5555) >= 1
            search = find_peers(info_hash, bootstrap=net.bootstrap_addrs(), timeout=10.0)
            assert search.result is None
            found = [peer async for peer in search]
            assert ("127.0.0.1", 5555) in found
            assert search.result is not None and search.result.replied >= 1

    run(main())


def test_find_peers_without_a_bootstrap_answer_raises(silent_port: Addr) -> None:
    async def main() -> None:
        async for _ in find_peers(os.urandom(20), bootstrap=[silent_port], timeout=0.5):
            raise AssertionError("no peer can come from nobody")

    with pytest.raises(BootstrapError):
        run(main())


@pytest.mark.slow
def test_find_peers_ends_at_its_timeout_while_the_lookup_still_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Soft timeouts follow the round trip (a quarter second on loopback), which would end
    # this lookup of dead nodes before the search's timeout: keep them at a second here.
    monkeypatch.setattr(dht.lookups, "SOFT_TIMEOUT_MIN_S", 1.0)

    async def main() -> None:
        async with Testnet(8, seed=4) as net:
            make_node = dht.io.client.client_node

            def network_dies_after_bootstrap(*args: Any, **kwargs: Any) -> Node:
                node = make_node(*args, **kwargs)
                start_lookup = node.get_peers

                def get_peers(info_hash: bytes, *, seeds: Sequence[Addr] = ()) -> PeerStream:
                    net.close()  # every query of the lookup now waits out its 4 s timeout
                    return start_lookup(info_hash, seeds=seeds)

                node.get_peers = get_peers  # type: ignore[method-assign]
                return node

            monkeypatch.setattr(dht.io.client, "client_node", network_dies_after_bootstrap)
            search = find_peers(os.urandom(20), bootstrap=net.bootstrap_addrs(), timeout=1.0)
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert [peer async for peer in search] == []
            assert search.result is None  # cut short, not finished
            assert loop.time() - started < 3.0  # well before the queries' own timeout

    run(main())
