"""PeerConnection against a real libtorrent 2.x peer on loopback (BEP 3/9/10).

libtorrent seeds a small multi-file torrent whose info dict spans several 16 KiB pieces;
we connect with plain asyncio sockets, drive `magnet.peerwire.PeerConnection` and fetch the
metadata. In the other direction a libtorrent session holding only the magnet fetches the
metadata from us. Every wait is bounded and only 127.0.0.1 is ever used.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from magnet.metadata import MetadataAssembler, MetadataSource
from magnet.peerwire import (
    NEED_DATA,
    ConnectionClosed,
    ExtHandshake,
    HandshakeReceived,
    Ignored,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    PeerConnection,
    PeerEvent,
    Role,
    Violation,
)

lt: Any = pytest.importorskip("libtorrent")

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

PEER_ID = b"-MG0001-interop00000"
STEP_S = 10.0  # bound on any single wait for libtorrent


def session() -> Any:
    """A libtorrent session that only ever talks to 127.0.0.1."""
    ses = lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "outgoing_interfaces": "127.0.0.1",
            "enable_dht": False,
            "dht_bootstrap_nodes": "",
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_ip_notifier": False,
            # Outgoing connections would otherwise open with an MSE key exchange first,
            # and try uTP first (3 s connect timeout against our TCP-only peer).
            "out_enc_policy": int(lt.enc_policy.disabled),
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
        }
    )
    ip_filter = lt.ip_filter()
    ip_filter.add_rule("0.0.0.0", "255.255.255.255", 1)
    ip_filter.add_rule("127.0.0.0", "127.255.255.255", 0)
    ip_filter.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    ses.set_ip_filter(ip_filter)
    return ses


def close_session(holder: list[Any]) -> None:
    """Drop the last reference to a session in a daemon thread, waiting at most 10 s."""
    holder[0].pause()
    worker = threading.Thread(target=holder.clear, daemon=True)
    worker.start()
    worker.join(10)


def wait_until(ses: Any, done: Any, what: str) -> None:
    deadline = time.monotonic() + STEP_S
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        ses.wait_for_alert(50)
        ses.pop_alerts()


@dataclass
class Seeder:
    port: int
    info: bytes
    info_hash: bytes


def make_torrent(root: Path) -> Any:
    """A v1 torrent of 300 tiny files with long names: its info dict is about 48 KB."""
    payload = root / "payload"
    payload.mkdir()
    for i in range(300):
        (payload / f"file-{i:04d}-{'x' * 120}.txt").write_bytes(b"hello %d\n" % i)
    ct = lt.create_torrent(lt.list_files(str(payload)), flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, str(root))
    return lt.torrent_info(ct.generate())


@pytest.fixture(scope="module")
def seeder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeder]:
    root = tmp_path_factory.mktemp("lt-seed")
    ti = make_torrent(root)
    holder = [session()]
    ses = holder[0]
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = str(root)
    # seed_mode alone: not auto-managed and not paused, so it accepts peers at once.
    atp.flags = lt.torrent_flags.seed_mode
    handle = ses.add_torrent(atp)
    try:
        wait_until(
            ses,
            lambda: ses.listen_port() and handle.status().state == lt.torrent_status.seeding,
            "libtorrent seeding",
        )
        info = bytes(ti.info_section())
        yield Seeder(ses.listen_port(), info, bytes.fromhex(str(ti.info_hashes().v1)))
    finally:
        ses = handle = None  # the holder must own the last reference
        close_session(holder)


class Peer:
    """A PeerConnection on an asyncio stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def until(self, conn: PeerConnection, *wanted: type) -> list[PeerEvent]:
        """Events up to and including the first of a ``wanted`` type or a terminal one."""
        events: list[PeerEvent] = []
        async with asyncio.timeout(STEP_S):
            while True:
                ev = conn.next_event()
                if ev is NEED_DATA:
                    conn.receive_data(await self.reader.read(65536))
                    continue
                events.append(ev)
                if isinstance(ev, (*wanted, Violation, ConnectionClosed)):
                    return events


async def connect(port: int) -> Peer:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), STEP_S)
    return Peer(reader, writer)


def test_fetch_metadata_from_libtorrent(seeder: Seeder) -> None:
    assert len(seeder.info) > 2 * 16384  # several pieces

    async def fetch() -> tuple[bytes | None, list[PeerEvent]]:
        peer = await connect(seeder.port)
        conn = PeerConnection(seeder.info_hash, PEER_ID)
        peer.writer.write(conn.send_handshake() + conn.send_ext_handshake())
        opening = await peer.until(conn, ExtHandshake)
        hs = opening[-1]
        assert isinstance(hs, ExtHandshake) and hs.metadata_size is not None
        asm = MetadataAssembler(seeder.info_hash, None, hs.metadata_size, 1 << 24)
        peer.writer.write(b"".join(conn.send_metadata_request(i) for i in asm.wanted()))
        while not asm.complete:
            ev = (await peer.until(conn, MetadataData, MetadataReject))[-1]
            assert isinstance(ev, MetadataData), ev
            assert ev.total_size == hs.metadata_size
            asm.add(ev.piece, ev.data, source="libtorrent")
        peer.writer.close()
        return asm.verify(), opening

    info, opening = asyncio.run(fetch())
    assert info == seeder.info
    assert hashlib.sha1(info).digest() == seeder.info_hash
    # What libtorrent says first: handshake, then its ext handshake at once.
    first, hs = opening[0], opening[1]
    assert isinstance(first, HandshakeReceived)
    assert first.supports_extensions and first.supports_dht and first.supports_fast
    assert isinstance(hs, ExtHandshake)
    assert hs.m["ut_metadata"] == 2 and hs.metadata_size == len(seeder.info)
    assert hs.client is not None and hs.client.startswith("libtorrent/")
    assert hs.yourip == b"\x7f\0\0\1"


def test_libtorrent_ext_handshake_does_not_wait_for_ours(seeder: Seeder) -> None:
    async def run() -> list[PeerEvent]:
        peer = await connect(seeder.port)
        conn = PeerConnection(seeder.info_hash, PEER_ID)
        peer.writer.write(conn.send_handshake())  # and nothing else
        events = await peer.until(conn, ExtHandshake)
        peer.writer.close()
        return events

    events = asyncio.run(run())
    assert [type(e) for e in events] == [HandshakeReceived, ExtHandshake]


def test_libtorrent_rejects_out_of_range_piece_with_msg_type_2(seeder: Seeder) -> None:
    async def run() -> list[PeerEvent]:
        peer = await connect(seeder.port)
        conn = PeerConnection(seeder.info_hash, PEER_ID)
        peer.writer.write(conn.send_handshake() + conn.send_ext_handshake())
        await peer.until(conn, ExtHandshake)
        peer.writer.write(conn.send_metadata_request(999) + conn.send_metadata_request(0))
        events = await peer.until(conn, MetadataReject)
        events += await peer.until(conn, MetadataData)
        peer.writer.close()
        return events

    events = [e for e in asyncio.run(run()) if not isinstance(e, Ignored)]
    assert events[0] == MetadataReject(999)
    assert isinstance(events[1], MetadataData) and events[1].piece == 0


def test_libtorrent_drops_a_request_sent_before_our_ext_handshake(seeder: Seeder) -> None:
    # libtorrent only routes ut_metadata to its plugin once our ext handshake named it;
    # otherwise the message is unknown and it disconnects ("invalid message").
    async def run() -> list[PeerEvent]:
        peer = await connect(seeder.port)
        conn = PeerConnection(seeder.info_hash, PEER_ID)
        peer.writer.write(conn.send_handshake())
        await peer.until(conn, ExtHandshake)
        peer.writer.write(conn.send_metadata_request(0))
        events = await peer.until(conn, MetadataData)
        peer.writer.close()
        return events

    assert asyncio.run(run())[-1] == ConnectionClosed()


def test_libtorrent_fetches_metadata_from_us(tmp_path: Path) -> None:
    ti = make_torrent(tmp_path)
    info = bytes(ti.info_section())
    info_hash = bytes.fromhex(str(ti.info_hashes().v1))
    source = MetadataSource(info)
    served: list[int] = []
    seen: list[PeerEvent] = []
    handlers: list[tuple[asyncio.Task[None], asyncio.StreamWriter]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append((task, writer))
        peer = Peer(reader, writer)
        conn = PeerConnection(None, PEER_ID, our_role=Role.RESPONDER)
        while True:
            ev = (await peer.until(conn, HandshakeReceived, MetadataRequest))[-1]
            seen.append(ev)
            if isinstance(ev, HandshakeReceived):
                assert ev.info_hash == info_hash  # a real server would look it up here
                writer.write(
                    conn.send_handshake() + conn.send_ext_handshake(metadata_size=source.size)
                )
            elif isinstance(ev, MetadataRequest):
                data = source.piece(ev.piece)
                served.append(ev.piece)
                if data is None:
                    writer.write(conn.send_metadata_reject(ev.piece))
                else:
                    writer.write(conn.send_metadata_data(ev.piece, source.size, data))
            else:
                writer.close()
                return

    async def run() -> bytes:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        holder = [session()]
        ses = holder[0]
        try:
            atp = lt.parse_magnet_uri(f"magnet:?xt=urn:btih:{info_hash.hex()}")
            atp.save_path = str(tmp_path / "client")
            atp.flags = lt.torrent_flags.upload_mode  # metadata only
            handle_ = ses.add_torrent(atp)
            handle_.connect_peer(("127.0.0.1", port))
            deadline = time.monotonic() + STEP_S
            while not handle_.status().has_metadata:
                assert time.monotonic() < deadline, "libtorrent got no metadata from us"
                await asyncio.sleep(0.05)
                ses.pop_alerts()
            got = bytes(handle_.torrent_file().info_section())
            handle_ = None
            # Hang up: our own close ends each handler with ConnectionClosed.
            for _, writer in handlers:
                writer.close()
            await asyncio.wait([task for task, _ in handlers], timeout=STEP_S)
        finally:
            ses = None  # the holder must own the last reference
            close_session(holder)
            server.close()
        return got

    assert asyncio.run(run()) == info
    assert sorted(set(served)) == list(range(source.pieces_total))
    assert isinstance(seen[0], HandshakeReceived) and seen[0].supports_extensions
