"""A torrent published by ``magnet.io.serve`` on a testnet of our nodes, fetched by libtorrent."""

from __future__ import annotations

import asyncio
from typing import Any

from dht.io.node import Node
from dht.io.testnet import Testnet
from magnet.io.serve import serve_torrents
from magnet.torrentfile import parse_torrent
from tests.interop.ltswarm import LtNode, TorrentSpec


async def lt_resolves_from_serve(
    spec: TorrentSpec, client_ip: str, *, nodes: int = 10, **lt_settings: Any
) -> bytes:
    """Serve ``spec`` over a testnet of ``nodes`` magnetar nodes, have a libtorrent client
    on ``client_ip`` (whose only way in is the testnet) resolve its bare magnet, and return
    the info dict libtorrent got."""
    meta = parse_torrent(spec.torrent)
    async with (
        Testnet(nodes) as net,
        Node("127.0.0.1", 0, bootstrap_routers=net.bootstrap_addrs(3)) as node,
    ):
        await node.bootstrap()
        stop = asyncio.Event()
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(
            serve_torrents([meta], node=node, host="127.0.0.1", stop=stop, ready=ready)
        )
        await ready
        while not any(spec.info_hash in n.core.storage for n in net.nodes):
            await asyncio.sleep(0.02)  # until the first announce has landed
        dht_nodes = [n.addr for n in net.nodes[:4]]

        def lt_resolve() -> bytes:
            with LtNode(client_ip, dht_nodes=dht_nodes, **lt_settings) as client:
                return client.resolve_magnet(spec.magnet, timeout=30.0).info

        try:
            return await asyncio.to_thread(lt_resolve)
        finally:
            stop.set()
            await server
