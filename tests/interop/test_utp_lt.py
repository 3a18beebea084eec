"""Our uTP (BEP 29) against libtorrent 2.1.1 on loopback, both ways, with TCP switched off.

A libtorrent seed that accepts only uTP (``enable_incoming_tcp=False``) hands us its info
dict over our `magnet.io.utp` driver: the BitTorrent handshake, the BEP 10 extension
handshake and BEP 9 metadata all ride our uTP core. Then a libtorrent client that dials only
uTP fetches the metadata from us. The harness settings switch uTP off by default (session
teardown is slower with it), so these sessions switch it back on.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from magnet.io.utp import UtpEndpoint
from magnet.metadata import MetadataAssembler, MetadataSource
from magnet.peerwire import (
    NEED_DATA,
    ConnectionClosed,
    ExtHandshake,
    HandshakeReceived,
    MetadataData,
    MetadataRequest,
    PeerConnection,
    PeerEvent,
    Role,
    Violation,
)
from tests.interop.conftest import LIBTORRENT_MISSING

lt: Any = pytest.importorskip("libtorrent", reason=LIBTORRENT_MISSING)

from tests.interop.ltswarm import LtNode, TorrentSpec, make_torrent  # noqa: E402

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

PEER_ID = b"-MG0001-utpinterop00"
STEP_S = 15.0  # bound on any single wait
UTP_ONLY: dict[str, Any] = {
    "enable_dht": False,
    "enable_incoming_tcp": False,
    "enable_outgoing_tcp": False,
    "enable_incoming_utp": True,
    "enable_outgoing_utp": True,
}


async def until(
    conn: PeerConnection, reader: asyncio.StreamReader, *wanted: type
) -> list[PeerEvent]:
    """Events up to and including the first of a ``wanted`` type or a terminal one."""
    events: list[PeerEvent] = []
    async with asyncio.timeout(STEP_S):
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA:
                conn.receive_data(await reader.read(65536))
                continue
            events.append(ev)
            if isinstance(ev, (*wanted, Violation, ConnectionClosed)):
                return events


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("utp-lt")


@pytest.fixture(scope="module")
def utp_seed() -> Iterator[LtNode]:
    with LtNode("127.0.0.1", **UTP_ONLY) as node:
        yield node


async def fetch_over_utp(seed: LtNode, spec: TorrentSpec) -> tuple[bytes | None, list[PeerEvent]]:
    endpoint = await UtpEndpoint.create("127.0.0.1", 0)
    try:
        reader, writer = await endpoint.open_connection(*seed.addr, timeout=STEP_S)
        conn = PeerConnection(spec.info_hash, PEER_ID)
        writer.write(conn.send_handshake() + conn.send_ext_handshake())
        opening = await until(conn, reader, ExtHandshake)
        hs = opening[-1]
        assert isinstance(hs, ExtHandshake) and hs.metadata_size is not None, opening
        asm = MetadataAssembler(spec.info_hash, None, hs.metadata_size, 1 << 24)
        writer.write(b"".join(conn.send_metadata_request(i) for i in asm.wanted()))
        while not asm.complete:
            ev = (await until(conn, reader, MetadataData))[-1]
            assert isinstance(ev, MetadataData), ev
            asm.add(ev.piece, ev.data, source="libtorrent-utp")
        writer.close()
        return asm.verify(), opening
    finally:
        endpoint.close()


# "big" (info dict > 1 MiB) takes ~5.5 s: libtorrent paces answers to a burst of ut_metadata
# requests (about one batch a second); the same requests over TCP take as long.
@pytest.mark.parametrize("kind", ["multi", "big"])
def test_metadata_from_a_utp_only_libtorrent_seed(
    utp_seed: LtNode, workdir: Path, kind: str
) -> None:
    spec = make_torrent(workdir, kind)  # type: ignore[arg-type]
    utp_seed.seed(spec)
    info, opening = asyncio.run(fetch_over_utp(utp_seed, spec))
    assert info == spec.info
    assert isinstance(opening[0], HandshakeReceived) and opening[0].info_hash == spec.info_hash


def test_the_seed_really_refuses_tcp(utp_seed: LtNode) -> None:
    """The proof above is uTP's: the same port over TCP is hung up on at once."""

    async def probe() -> bytes:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*utp_seed.addr), STEP_S)
        writer.write(b"\x13BitTorrent protocol" + bytes(28) + PEER_ID)
        try:
            return await asyncio.wait_for(reader.read(100), STEP_S)
        except ConnectionError:
            return b""
        finally:
            writer.close()

    assert asyncio.run(probe()) == b""


def test_utp_only_libtorrent_client_fetches_metadata_from_us(workdir: Path) -> None:
    spec = make_torrent(workdir, "multi")
    source = MetadataSource(spec.info)
    served: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = PeerConnection(None, PEER_ID, our_role=Role.RESPONDER)
        while True:
            try:
                ev = (await until(conn, reader, HandshakeReceived, MetadataRequest))[-1]
            except ConnectionError:
                return  # our endpoint closed at the end of the test
            if isinstance(ev, HandshakeReceived):
                assert ev.info_hash == spec.info_hash
                writer.write(
                    conn.send_handshake() + conn.send_ext_handshake(metadata_size=source.size)
                )
            elif isinstance(ev, MetadataRequest):
                data = source.piece(ev.piece)
                assert data is not None
                served.append(ev.piece)
                writer.write(conn.send_metadata_data(ev.piece, source.size, data))
            else:
                writer.close()
                return

    async def run(client: LtNode) -> bytes:
        endpoint = await UtpEndpoint.create("127.0.0.1", 0, on_connection=handle)
        try:
            atp = lt.parse_magnet_uri(spec.magnet)
            atp.save_path = str(workdir / "client")
            atp.flags = lt.torrent_flags.upload_mode  # metadata only, not paused
            handle_ = client.session.add_torrent(atp)
            handle_.connect_peer(endpoint.local_address)
            deadline = time.monotonic() + STEP_S
            while not handle_.status().has_metadata:
                assert time.monotonic() < deadline, "libtorrent got no metadata over uTP"
                await asyncio.sleep(0.05)
                client.session.pop_alerts()
            # Our endpoint has no TCP listener at all: what libtorrent got came over uTP.
            return bytes(handle_.torrent_file().info_section())
        finally:
            endpoint.close()

    # Plaintext at once: an MSE attempt first would cost a reconnect (we answer plaintext).
    plain = int(lt.enc_policy.disabled)
    with LtNode("127.0.0.2", **UTP_ONLY, out_enc_policy=plain) as client:
        got = asyncio.run(run(client))
    assert got == spec.info and hashlib.sha1(got).digest() == spec.info_hash
    assert sorted(set(served)) == list(range(source.pieces_total))
