"""magnet.resolve over real loopback sockets: a testnet DHT, and peers good and bad."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from dht.io.testnet import Testnet
from magnet.io.bulk import resolve_many
from magnet.io.resolve import ResolveError, resolve
from magnet.metadata import METADATA_PIECE
from tests.magnet.fakepeers import (
    AbsurdSize,
    Behaviour,
    Honest,
    Liar,
    Rejecter,
    Staller,
    info_hash,
    make_info,
    serve_behaviour,
)

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def test_resolve_through_the_dht() -> None:
    async def main() -> None:
        info = make_info(3 * METADATA_PIECE)
        server, peer, _ = await serve_behaviour(Honest, info)
        try:
            async with Testnet(15) as net:
                assert await net.nodes[7].announce(info_hash(info), peer[1]) > 0
                link = f"magnet:?xt=urn:btih:{info_hash(info).hex()}&tr=udp://t.example:1"
                result = await resolve(link, bootstrap=net.bootstrap_addrs(1), timeout=20)
                assert result.info == info
                assert result.peer == peer and result.source == "dht"
                assert result.meta.info_hash_v1 == info_hash(info)
                torrent = result.torrent(creation_date=1)
                assert info in torrent and b"t.example" in torrent
                assert [p for p, _ in result.trace][-1] == "metadata verified"
        finally:
            server.close()

    run(main())


def test_x_pe_peers_are_used_without_the_dht() -> None:
    async def main() -> None:
        info = make_info(100)
        server, peer, _ = await serve_behaviour(Honest, info)
        try:
            link = f"magnet:?xt=urn:btih:{info_hash(info).hex()}&x.pe={peer[0]}:{peer[1]}"
            result = await resolve(link, use_dht=False, timeout=10)
            assert result.info == info and result.source == "x.pe"
        finally:
            server.close()

    run(main())


@pytest.mark.parametrize("bad", [Liar, Rejecter, Staller, AbsurdSize])
def test_misbehaving_peers_do_not_stop_an_honest_one(bad: type[Behaviour]) -> None:
    async def main() -> None:
        info = make_info(2 * METADATA_PIECE)
        bad_server, bad_peer, bad_made = await serve_behaviour(bad, info)
        good_server, good_peer, _ = await serve_behaviour(Honest, info)
        try:
            pe = f"&x.pe={bad_peer[0]}:{bad_peer[1]}&x.pe={good_peer[0]}:{good_peer[1]}"
            link = f"magnet:?xt=urn:btih:{info_hash(info).hex()}{pe}"
            result = await resolve(link, use_dht=False, timeout=15)
            assert result.info == info and result.peer == good_peer
            assert bad_made  # it was tried
        finally:
            bad_server.close()
            good_server.close()

    run(main())


@pytest.mark.slow
def test_failures_say_why_in_one_line() -> None:
    async def main() -> None:
        info = make_info(100)
        h = info_hash(info).hex()
        rej_server, rej_peer, _ = await serve_behaviour(Rejecter, info)
        try:
            async with Testnet(8) as net:
                boot = net.bootstrap_addrs(1)
                with pytest.raises(ResolveError) as e1:
                    await resolve(f"magnet:?xt=urn:btih:{h}", bootstrap=boot, timeout=1.5)
                assert e1.value.kind == "no-peers"
                assert (
                    "DHT nodes answered" in e1.value.reason
                    and "none knows peers" in e1.value.reason
                )
                link = f"magnet:?xt=urn:btih:{h}&x.pe={rej_peer[0]}:{rej_peer[1]}&x.pe=127.0.0.1:1"
                with pytest.raises(ResolveError) as e2:
                    await resolve(link, bootstrap=boot, timeout=1.5)
                assert e2.value.kind == "no-metadata"
                assert "rejected" in e2.value.reason and "\n" not in e2.value.reason
            with pytest.raises(ResolveError) as e3:
                await resolve(f"magnet:?xt=urn:btih:{h}", bootstrap=[("127.0.0.1", 9)], timeout=1.0)
            assert e3.value.kind == "no-dht" and "no DHT node answered" in e3.value.reason
            with pytest.raises(ResolveError) as e4:
                await resolve("magnet:?xt=urn:btih:nothex", timeout=1.0)
            assert e4.value.kind == "bad-link"
        finally:
            rej_server.close()

    run(main())


@pytest.mark.slow
def test_bulk_resolution_over_one_node() -> None:
    async def main() -> None:
        from dht.io.node import Node
        from dht.protocol import DhtConfig

        infos = [make_info(100 + i, name=f"f{i}") for i in range(6)]
        servers = []
        try:
            async with Testnet(12) as net:
                for i, info in enumerate(infos[:5]):
                    server, peer, _ = await serve_behaviour(Honest, info)
                    servers.append(server)
                    await net.nodes[i + 1].announce(info_hash(info), peer[1])
                links = [f"magnet:?xt=urn:btih:{info_hash(i).hex()}" for i in infos]
                node = Node(
                    "127.0.0.1",
                    0,
                    bootstrap_routers=net.bootstrap_addrs(2),
                    config=DhtConfig(read_only=True),
                )
                async with node:
                    await node.bootstrap()
                    results = [
                        r async for r in resolve_many(links, node=node, concurrency=3, timeout=3)
                    ]
                ok = {link for link, r in results if not isinstance(r, ResolveError)}
                assert len(results) == 6
                assert ok == set(links[:5])
        finally:
            for s in servers:
                s.close()

    run(main())


def test_v2_only_magnet_uses_the_truncated_hash() -> None:
    async def main() -> None:
        import hashlib

        import bencode2

        info = bencode2.bencode(
            {
                b"file tree": {b"a.txt": {b"": {b"length": 5, b"pieces root": os.urandom(32)}}},
                b"meta version": 2,
                b"name": b"v2test",
                b"piece length": 16384,
            }
        )
        v2 = hashlib.sha256(info).digest()

        class V2Honest(Honest):
            pass

        server, peer, _ = await serve_behaviour(V2Honest, info)
        try:
            link = f"magnet:?xt=urn:btmh:1220{v2.hex()}&x.pe={peer[0]}:{peer[1]}"
            result = await resolve(link, use_dht=False, timeout=10)
            assert result.info == info and result.meta.info_hash_v2 == v2
        finally:
            server.close()

    run(main())


@pytest.mark.skipif(not hasattr(__import__("socket"), "TCP_QUICKACK"), reason="Linux only")
def test_peer_connections_acknowledge_at_once() -> None:
    # Delayed ACKs stalled metadata pieces from Nagle-sending seeds by 40 ms each.
    import socket

    from magnet.io.resolve import _PeerProtocol

    class _Recorder:
        def connected(self, proto: object) -> None:
            pass

        def received(self, addr: object, data: bytes) -> None:
            pass

    async def main() -> tuple[int, int]:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_connection(
            lambda: _PeerProtocol(_Recorder(), ("127.0.0.1", port)),  # type: ignore[arg-type]
            "127.0.0.1",
            port,
        )
        sock = transport.get_extra_info("socket")
        after_connect = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
        proto.data_received(b"x")
        after_read = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK)
        transport.close()
        server.close()
        await server.wait_closed()
        return after_connect, after_read

    assert run(main()) == (1, 1)
