"""Attacks on ``magnetar serve``, each against the defence that stops it.

A real ``serve_torrents`` on loopback (its DHT node joined to nothing), attacked over TCP
from 127.0.0.x: bursts of requests, slow handshakes, connection hoarding from one address,
peers that never read, and messages out of order. After each attack an honest client must
still get the metadata.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest

import magnet.io.serve as serve_mod
from dht.io.node import Node
from magnet.metadata import METADATA_PIECE
from magnet.peerwire import NEED_DATA, MetadataData, MetadataReject, PeerConnection
from magnet.service import MAX_PIECES_PER_READ, MetadataService, PeerState
from magnet.torrentfile import parse_info
from tests.magnet.fakepeers import info_hash, make_info
from tests.magnet.metadata_client import fetch_metadata

pytestmark = pytest.mark.timeout(60)

INFO = make_info(40 * METADATA_PIECE)  # 640 KiB of metadata: 40 pieces


@asynccontextmanager
async def served(info: bytes = INFO) -> AsyncIterator[int]:
    """A serve on 127.0.0.1 for ``info``; yields its TCP port."""
    async with Node("127.0.0.1", 0, bootstrap_routers=[]) as node:
        stop = asyncio.Event()
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        job = asyncio.create_task(
            serve_mod.serve_torrents(
                [parse_info(info)], node=node, host="127.0.0.1", stop=stop, ready=ready
            )
        )
        try:
            yield await asyncio.wait_for(ready, 10)
        finally:
            stop.set()
            await asyncio.wait_for(job, 10)


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 50))


async def honest_fetch(port: int, info: bytes = INFO, source: str = "127.0.0.1") -> bytes:
    """An honest client: handshake, extension handshake, every piece; the info dict back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        return await fetch_metadata(reader, writer, info_hash(info))
    finally:
        writer.close()


async def trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunks: list[bytes], gap: float
) -> bool:
    """Send ``chunks`` one per ``gap`` seconds; True once the server has hung up on us."""
    for chunk in chunks:
        try:
            writer.write(chunk)
            if await asyncio.wait_for(reader.read(65536), gap) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def test_a_burst_of_requests_gets_bounded_replies_built_in_one_join() -> None:
    """Thousands of requests in one read: at most MAX_PIECES_PER_READ pieces, rejects for
    the rest (the reply was once built by repeated bytes +=, quadratic in the burst)."""
    service = MetadataService([parse_info(INFO)], os.urandom(20))
    server = service.new_connection()
    client = PeerConnection(info_hash(INFO), os.urandom(20))
    state = PeerState()
    back, why = service.handle(server, client.send_handshake() + client.send_ext_handshake(), state)
    assert why is None
    client.receive_data(back)
    while client.next_event() is not NEED_DATA:
        pass
    burst = b"".join(client.send_metadata_request(i % 40) for i in range(3000))
    back, why = service.handle(server, burst, state)
    assert why is None
    client.receive_data(back)
    data = rejects = 0
    while (ev := client.next_event()) is not NEED_DATA:
        data += isinstance(ev, MetadataData)
        rejects += isinstance(ev, MetadataReject)
    assert data == MAX_PIECES_PER_READ and rejects == 3000 - MAX_PIECES_PER_READ
    assert len(back) < MAX_PIECES_PER_READ * (METADATA_PIECE + 64) + 3000 * 64


def test_metadata_request_before_the_extension_handshake_closes_cleanly() -> None:
    """A peer that asks for metadata without advertising ut_metadata cannot be answered:
    its connection is closed with a reason (once a LocalProtocolError in the callback)."""
    service = MetadataService([parse_info(INFO)], os.urandom(20))
    server = service.new_connection()
    client = PeerConnection(info_hash(INFO), os.urandom(20))
    state = PeerState()
    _, why = service.handle(server, client.send_handshake(), state)
    assert why is None
    # A hand-made ut_metadata request to our id 2, with no extension handshake of its own.
    payload = b"d8:msg_typei0e5:piecei0ee"
    request = (len(payload) + 2).to_bytes(4, "big") + bytes([20, 2]) + payload
    _, why = service.handle(server, request, state)
    assert why is not None and "ut_metadata" in why


def test_one_address_cannot_hold_every_connection() -> None:
    async def main() -> None:
        async with served() as port:
            hoard = []
            for _ in range(3 * serve_mod.MAX_CONNECTIONS_PER_IP):
                hoard.append(await asyncio.open_connection("127.0.0.1", port))
            await asyncio.sleep(0.2)
            alive = 0
            for reader, _ in hoard:
                try:
                    alive += await asyncio.wait_for(reader.read(1), 0.05) != b""
                except TimeoutError:
                    alive += 1  # still open, waiting for us
                except ConnectionResetError:
                    pass
            assert alive == serve_mod.MAX_CONNECTIONS_PER_IP
            # Another address is still served while the first holds its share.
            assert await honest_fetch(port, source="127.0.0.2") == INFO
            for _, writer in hoard:
                writer.close()

    run(main)


def test_slow_handshake_is_cut_off_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A byte at a time used to restart the idle timer forever (slowloris)."""
    monkeypatch.setattr(serve_mod, "HANDSHAKE_TIMEOUT_S", 0.5)

    async def main() -> None:
        async with served() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            hello = PeerConnection(info_hash(INFO), os.urandom(20)).send_handshake()
            loop = asyncio.get_running_loop()
            start = loop.time()
            closed = await trickle(reader, writer, [bytes([b]) for b in hello], 0.1)
            assert closed, "a trickled handshake kept its connection"
            assert loop.time() - start < len(hello) * 0.1  # cut before the trickle ended
            writer.close()
            assert await honest_fetch(port) == INFO

    run(main)


def test_idle_clock_counts_messages_not_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the handshake, bytes that never complete a message do not keep a peer."""
    monkeypatch.setattr(serve_mod, "IDLE_TIMEOUT_S", 0.5)

    async def main() -> None:
        async with served() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            conn = PeerConnection(info_hash(INFO), os.urandom(20))
            writer.write(conn.send_handshake())
            await asyncio.wait_for(reader.readexactly(68), 5)
            writer.write((1 << 16).to_bytes(4, "big"))  # a length prefix of a 64 KiB message
            closed = await trickle(reader, writer, [b"x"] * 40, 0.05)  # 2 s of trickle
            assert closed, "a trickle of bytes kept an idle connection"
            writer.close()

    run(main)


def test_a_peer_that_never_reads_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests answered into a socket nobody reads: reading stops at the high-water mark,
    and the connection is aborted once the backlog passes the cap (it once kept tens of MiB
    per peer in our write buffers)."""
    monkeypatch.setattr(serve_mod, "WRITE_BUFFER_HIGH", 64 * 1024)
    monkeypatch.setattr(serve_mod, "WRITE_BUFFER_MAX", 256 * 1024)

    async def main() -> None:
        async with served() as port:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_connect(sock, ("127.0.0.1", port))
            conn = PeerConnection(info_hash(INFO), os.urandom(20))
            await loop.sock_sendall(sock, conn.send_handshake() + conn.send_ext_handshake())
            # Take the handshakes (small) so the peer wire knows our ut_metadata id.
            got = b""
            while len(got) < 68 + 4:
                got += await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
            conn.receive_data(got)
            while conn.next_event() is not NEED_DATA:
                pass
            assert "ut_metadata" in conn.remote_extensions
            dropped = False
            for _ in range(200):
                try:
                    await loop.sock_sendall(
                        sock, b"".join(conn.send_metadata_request(i) for i in range(40))
                    )
                except (ConnectionResetError, BrokenPipeError):
                    dropped = True
                    break
                await asyncio.sleep(0.01)
            assert dropped, "a peer that never reads was kept"
            sock.close()
            assert await honest_fetch(port) == INFO

    run(main)
