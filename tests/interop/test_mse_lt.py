"""MSE interop with libtorrent on loopback: our initiator against its listener, its
outgoing connections against our responder, with RC4 forced and with plaintext chosen.

Everything is bounded by DEADLINE_S; sessions listen on 127.0.0.1 only, TCP only, with
DHT, LSD, UPnP and NAT-PMP off. Skipped when the libtorrent bindings are missing.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from magnet.mse import (
    BT_PROTOCOL_HEADER,
    CryptoMethod,
    HandshakeComplete,
    MseInitiator,
    MseResponder,
)

lt: Any = pytest.importorskip("libtorrent")

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

DEADLINE_S = 10.0
HANDSHAKE_LEN = 68
PEER_ID = b"-MG0001-" + b"interop-test"


def bt_handshake(info_hash: bytes) -> bytes:
    # BEP 3 handshake; reserved bit 0x10 of byte 5 = BEP 10 extension protocol.
    return BT_PROTOCOL_HEADER + bytes([0, 0, 0, 0, 0, 0x10, 0, 0]) + info_hash + PEER_ID


@contextmanager
def lt_session(*, level: int, prefer_rc4: bool = False) -> Iterator[Any]:
    forced = int(lt.enc_policy.forced)
    session = lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            # TCP only: libtorrent would first try uTP and wait out its 3 s connect timeout.
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "out_enc_policy": forced,
            "in_enc_policy": forced,
            "allowed_enc_level": level,
            "prefer_rc4": prefer_rc4,
            "alert_mask": 0,
        }
    )
    try:
        yield session
    finally:
        session.pause()
        del session


def seed_small_torrent(session: Any, tmp_path: Path) -> bytes:
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(40_000))
    maker = lt.create_torrent(lt.list_files(str(data)), 16384, lt.create_torrent.v1_only)
    lt.set_piece_hashes(maker, str(tmp_path))
    info = lt.torrent_info(lt.bencode(maker.generate()))
    params = lt.add_torrent_params()
    params.ti = info
    params.save_path = str(tmp_path)
    params.flags = lt.torrent_flags.seed_mode
    session.add_torrent(params)
    return bytes(info.info_hashes().v1.to_bytes())


def wait_listen_port(session: Any) -> int:
    deadline = time.monotonic() + DEADLINE_S
    while (port := int(session.listen_port())) == 0:
        assert time.monotonic() < deadline, "libtorrent never started listening"
        time.sleep(0.05)
    return port


async def read_some(reader: asyncio.StreamReader, deadline: float) -> bytes:
    data = await asyncio.wait_for(reader.read(65536), max(0.01, deadline - time.monotonic()))
    assert data, "libtorrent closed the connection"
    return data


async def initiate(port: int, info_hash: bytes, provide: CryptoMethod) -> tuple[str, bytes]:
    """Run our initiator against libtorrent; return the method and its reply handshake."""
    deadline = time.monotonic() + DEADLINE_S
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        mse = MseInitiator(
            info_hash,
            provide=provide,
            initial_payload=bt_handshake(info_hash),
            randbytes=os.urandom,
        )
        writer.write(mse.data_to_send())
        while (event := mse.next_event()) is None:
            mse.receive_data(await read_some(reader, deadline))
            writer.write(mse.data_to_send())
        assert isinstance(event, HandshakeComplete), event
        stream = event.leftover
        while len(stream) < HANDSHAKE_LEN:
            stream += mse.decrypt(await read_some(reader, deadline))
        return event.method, stream[:HANDSHAKE_LEN]
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("level", "provide", "method"),
    [
        ("rc4", CryptoMethod.RC4, "rc4"),
        ("rc4", CryptoMethod.RC4 | CryptoMethod.PLAINTEXT, "rc4"),
        # Offered both, libtorrent picks plaintext unless prefer_rc4 is set. The IA is
        # RC4 either way, so this checks the switch to the clear mid-stream.
        ("both", CryptoMethod.RC4 | CryptoMethod.PLAINTEXT, "plaintext"),
    ],
    ids=["rc4-only", "offer-both-lt-rc4-only", "offer-both-lt-picks-plaintext"],
)
def test_our_initiator_against_forced_libtorrent(
    tmp_path: Path, level: str, provide: CryptoMethod, method: str
) -> None:
    with lt_session(level=int(getattr(lt.enc_level, level))) as session:
        info_hash = seed_small_torrent(session, tmp_path)
        port = wait_listen_port(session)
        got_method, reply = asyncio.run(initiate(port, info_hash, provide))
    assert got_method == method
    assert reply[:20] == BT_PROTOCOL_HEADER
    assert reply[28:48] == info_hash


async def respond_to_libtorrent(
    session: Any, tmp_path: Path, prefer: CryptoMethod
) -> tuple[HandshakeComplete, bytes, bytes]:
    """Let libtorrent connect to our responder; return the completion event, the
    info-hash we asked for, and the first decrypted bytes after our own handshake."""
    info_hash = os.urandom(20)
    decoys = [os.urandom(20) for _ in range(3)]
    done: asyncio.Future[tuple[HandshakeComplete, bytes]] = (
        asyncio.get_running_loop().create_future()
    )

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        deadline = time.monotonic() + DEADLINE_S
        try:
            mse = MseResponder([*decoys, info_hash], prefer=prefer, randbytes=os.urandom)
            while (event := mse.next_event()) is None:
                mse.receive_data(await read_some(reader, deadline))
                writer.write(mse.data_to_send())
            assert isinstance(event, HandshakeComplete), event
            writer.write(mse.encrypt(bt_handshake(event.info_hash)))
            # libtorrent follows our handshake with a BEP 10 extension handshake.
            after = event.leftover
            while len(after) < 6:
                after += mse.decrypt(await read_some(reader, deadline))
            if not done.done():
                done.set_result((event, after))
        except BaseException as exc:
            if not done.done():
                done.set_exception(exc)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        params = lt.parse_magnet_uri("magnet:?xt=urn:btih:" + info_hash.hex())
        params.save_path = str(tmp_path)
        params.flags = 0  # neither paused nor auto-managed: connect right away
        handle = session.add_torrent(params)
        handle.connect_peer(("127.0.0.1", port))
        event, after = await asyncio.wait_for(done, DEADLINE_S)
    finally:
        server.close()
    return event, info_hash, after


@pytest.mark.parametrize(
    ("level", "prefer", "method"),
    [
        ("rc4", CryptoMethod.RC4, "rc4"),
        ("both", CryptoMethod.PLAINTEXT, "plaintext"),
        ("both", CryptoMethod.RC4, "rc4"),
    ],
    ids=["rc4-only", "lt-offers-both-we-pick-plaintext", "lt-offers-both-we-pick-rc4"],
)
def test_forced_libtorrent_against_our_responder(
    tmp_path: Path, level: str, prefer: CryptoMethod, method: str
) -> None:
    with lt_session(level=int(getattr(lt.enc_level, level))) as session:
        event, info_hash, after = asyncio.run(respond_to_libtorrent(session, tmp_path, prefer))
    assert event.method == method
    assert event.info_hash == info_hash
    # libtorrent always sends its BitTorrent handshake as the IA.
    assert len(event.initial_payload) == HANDSHAKE_LEN
    assert event.initial_payload[:20] == BT_PROTOCOL_HEADER
    assert event.initial_payload[28:48] == info_hash
    # The stream after the handshake still decodes: a length-prefixed message whose
    # id is BEP 10's "extended" (20).
    length = int.from_bytes(after[:4], "big")
    assert 2 <= length < 1 << 20
    assert after[4] == 20
