"""``serve_torrents`` over uTP: the TCP port's number on UDP, the DHT node's socket shared
when it has that port, and the TCP defences (per-IP cap, handshake deadline) on uTP too."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import magnet.io.serve as serve_mod
from dht.io.node import Node
from magnet.io.utp import UtpEndpoint
from magnet.metadata import METADATA_PIECE
from magnet.peerwire import NEED_DATA, PeerConnection
from magnet.torrentfile import parse_info
from magnet.utp import State
from tests.magnet.fakepeers import info_hash, make_info
from tests.magnet.metadata_client import fetch_metadata

pytestmark = pytest.mark.timeout(60)

INFO = make_info(6 * METADATA_PIECE)
ROOT = Path(__file__).resolve().parents[2]


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 50))


@asynccontextmanager
async def served(*, share: bool) -> AsyncIterator[tuple[Node, int]]:
    """A serve on 127.0.0.1; with ``share`` on its DHT node's port. Yields (node, port)."""
    async with Node("127.0.0.1", 0, bootstrap_routers=[]) as node:
        stop = asyncio.Event()
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        job = asyncio.create_task(
            serve_mod.serve_torrents(
                [parse_info(INFO)],
                node=node,
                host="127.0.0.1",
                port=node.addr[1] if share else 0,
                stop=stop,
                ready=ready,
            )
        )
        try:
            yield node, await asyncio.wait_for(ready, 10)
        finally:
            stop.set()
            await asyncio.wait_for(job, 10)


async def utp_fetch(port: int, source: str = "127.0.0.1") -> bytes:
    """An honest client over uTP: handshakes, every piece; the info dict back."""
    endpoint = await UtpEndpoint.create(source, 0)
    try:
        reader, writer = await endpoint.open_connection("127.0.0.1", port, timeout=5)
        info = await fetch_metadata(reader, writer, info_hash(INFO))
        writer.close()
        return info
    finally:
        endpoint.close()


async def hung_up(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(65536), within) == b""
    except (ConnectionError, TimeoutError) as exc:
        return not isinstance(exc, TimeoutError)


def test_utp_shares_the_dht_nodes_socket_and_both_keep_working() -> None:
    async def main() -> None:
        async with served(share=True) as (node, port):
            assert port == node.addr[1]
            assert node.foreign_datagrams is not None
            assert await utp_fetch(port) == INFO
            # Garbage that is neither KRPC nor uTP costs nothing, and the DHT still answers.
            loop = asyncio.get_running_loop()
            udp, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
            )
            for junk in (b"", b"\x00", b"\x41" + bytes(30), os.urandom(200)):
                udp.sendto(junk, ("127.0.0.1", port))
            udp.close()
            async with Node("127.0.0.1", 0, bootstrap_routers=[]) as other:
                answer = await asyncio.wait_for(other.ping(("127.0.0.1", port)), 5)
                assert answer.response.id == node.node_id
            assert await utp_fetch(port) == INFO
        assert node.foreign_datagrams is None  # unhooked when serving stopped

    run(main())


def test_utp_gets_its_own_socket_on_the_tcp_port_number() -> None:
    async def main() -> None:
        async with served(share=False) as (node, port):
            assert port != node.addr[1] and node.foreign_datagrams is None
            assert await utp_fetch(port) == INFO
            assert await utp_fetch(port, source="127.0.0.2") == INFO

    run(main())


def test_the_per_ip_cap_counts_tcp_and_utp_together() -> None:
    async def main() -> None:
        async with served(share=True) as (_, port):
            hoard = [
                await asyncio.open_connection("127.0.0.1", port)
                for _ in range(serve_mod.MAX_CONNECTIONS_PER_IP)
            ]
            endpoint = await UtpEndpoint.create("127.0.0.1", 0)
            try:
                # Refused with a reset, in the uTP handshake or right after it.
                reader, _ = await endpoint.open_connection("127.0.0.1", port, timeout=5)
                assert await hung_up(reader, 5), "a uTP connection over the per-IP cap was kept"
            except ConnectionResetError:
                pass
            finally:
                endpoint.close()
            assert await utp_fetch(port, source="127.0.0.2") == INFO  # another address is fine
            for _, w in hoard:
                w.close()

    run(main())


def test_a_silent_utp_peer_is_cut_off_at_the_handshake_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serve_mod, "HANDSHAKE_TIMEOUT_S", 0.5)

    async def main() -> None:
        async with served(share=True) as (_, port):
            endpoint = await UtpEndpoint.create("127.0.0.1", 0)
            try:
                reader, _ = await endpoint.open_connection("127.0.0.1", port, timeout=5)
                assert await hung_up(reader, 5), "a silent uTP peer kept its connection"
            finally:
                endpoint.close()

    run(main())


@pytest.mark.slow  # the serve process waits out its bootstrap first (~5 s)
def test_serve_names_the_udp_port_that_utp_could_not_bind(tmp_path: Path) -> None:
    path = tmp_path / "t.torrent"
    path.write_bytes(b"d4:info" + make_info(20_000, name="t.bin") + b"e")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = str(taken.getsockname()[1])
        out = subprocess.run(
            [
                sys.executable, "-m", "magnet", "serve", str(path), "--host", "127.0.0.1",
                "--port", port, "--dht-port", "0", "-b", "127.0.0.1:9",
            ],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"cannot bind 127.0.0.1:{port} (UDP for uTP, --port" in out.stderr


def test_a_utp_peer_that_never_reads_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TCP back-pressure over uTP: our replies fill the peer's window, then our send
    buffer, then the write backlog past its cap, and the connection is reset."""
    monkeypatch.setattr(serve_mod, "WRITE_BUFFER_HIGH", 64 * 1024)
    monkeypatch.setattr(serve_mod, "WRITE_BUFFER_MAX", 256 * 1024)

    async def main() -> None:
        async with served(share=True) as (_, port):
            endpoint = await UtpEndpoint.create("127.0.0.1", 0)
            try:
                reader, writer = await endpoint.open_connection("127.0.0.1", port, timeout=5)
                conn = PeerConnection(info_hash(INFO), os.urandom(20))
                writer.write(conn.send_handshake() + conn.send_ext_handshake())
                got = b""
                while len(got) < 68 + 4:  # the handshakes, so we know its ut_metadata id
                    got += await asyncio.wait_for(reader.read(4096), 5)
                conn.receive_data(got)
                while conn.next_event() is not NEED_DATA:
                    pass
                utp = writer.transport.conn  # type: ignore[attr-defined]
                burst = b"".join(conn.send_metadata_request(i) for i in range(6)) * 7
                for _ in range(1000):  # from now on nothing is read
                    if utp.state is State.RESET:
                        break
                    writer.write(burst)
                    await asyncio.sleep(0.01)
                assert utp.state is State.RESET, "a uTP peer that never reads was kept"
            finally:
                endpoint.close()
            assert await utp_fetch(port) == INFO  # and an honest one is still served

    run(main())
