"""The metadata service and its per-connection sessions, in memory."""

from __future__ import annotations

import os

import pytest

from magnet.metadata import METADATA_PIECE
from magnet.mse import CryptoMethod, HandshakeComplete, MseInitiator
from magnet.peerwire import NEED_DATA, ExtHandshake, HandshakeReceived, MetadataData, PeerConnection
from magnet.service import MetadataService, ServeSession
from magnet.torrentfile import parse_info
from tests.magnet.fakepeers import info_hash, make_info


def fetch_all(session: ServeSession, info: bytes, *, encrypt: bool) -> bytes:
    """Be a client: handshake (through MSE if ``encrypt``), then ask for every piece."""
    client = PeerConnection(info_hash(info), os.urandom(20))
    hello = client.send_handshake() + client.send_ext_handshake()
    mse = None
    if encrypt:
        mse = MseInitiator(
            info_hash(info),
            provide=CryptoMethod.RC4,
            initial_payload=hello[:68],
            randbytes=os.urandom,
        )
        out, why = session.receive(mse.data_to_send())
        assert why is None
        mse.receive_data(out)
        step3 = mse.data_to_send()
        out, why = session.receive(step3)
        assert why is None
        mse.receive_data(out)
        event = mse.next_event()
        assert isinstance(event, HandshakeComplete) and event.method == "rc4"
        back, why = session.receive(mse.encrypt(hello[68:]))
        client.receive_data(event.leftover + mse.decrypt(back))
    else:
        back, why = session.receive(hello)
        client.receive_data(back)
    pieces: dict[int, bytes] = {}
    size = 0
    while True:
        ev = client.next_event()
        if ev is NEED_DATA:
            if size and len(pieces) * METADATA_PIECE >= size:
                break
            assert size, "no ext handshake from the server"
            req = b"".join(
                client.send_metadata_request(i) for i in range(-(-size // METADATA_PIECE))
            )
            back, why = session.receive(mse.encrypt(req) if mse else req)
            assert why is None
            client.receive_data(mse.decrypt(back) if mse else back)
            continue
        if isinstance(ev, HandshakeReceived):
            assert ev.info_hash == info_hash(info)
        elif isinstance(ev, ExtHandshake):
            size = ev.metadata_size or 0
        elif isinstance(ev, MetadataData):
            pieces[ev.piece] = ev.data
    return b"".join(pieces[i] for i in sorted(pieces))


@pytest.mark.parametrize(
    ("policy", "encrypt"), [("prefer", False), ("prefer", True), ("require", True), ("off", False)]
)
def test_session_serves_metadata(policy: str, encrypt: bool) -> None:
    info = make_info(3 * METADATA_PIECE)
    service = MetadataService([parse_info(info)], os.urandom(20))
    assert fetch_all(ServeSession(service, policy, os.urandom), info, encrypt=encrypt) == info


def test_require_refuses_plaintext_and_off_refuses_encryption() -> None:
    info = make_info(100)
    service = MetadataService([parse_info(info)], os.urandom(20))
    hello = PeerConnection(info_hash(info), os.urandom(20)).send_handshake()
    _, why = ServeSession(service, "require", os.urandom).receive(hello)
    assert why is not None and "plaintext" in why
    mse = MseInitiator(info_hash(info), initial_payload=hello, randbytes=os.urandom)
    _, why = ServeSession(service, "off", os.urandom).receive(mse.data_to_send())
    assert why is not None and "encrypted" in why


def test_unknown_torrent_is_refused() -> None:
    info = make_info(100)
    service = MetadataService([parse_info(info)], os.urandom(20))
    hello = PeerConnection(os.urandom(20), os.urandom(20)).send_handshake()
    _, why = ServeSession(service, "prefer", os.urandom).receive(hello)
    assert why == "asked for a torrent we do not serve"
    assert service.refused == 1


def test_driver_reexports_the_service_names() -> None:
    import magnet.io.serve
    import magnet.service

    for name in ("SERVE_ENCRYPTION", "MetadataService", "ServeSession", "Served"):
        assert getattr(magnet.io.serve, name) is getattr(magnet.service, name)


def test_too_many_requests_close_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    import magnet.service

    monkeypatch.setattr(magnet.service, "MAX_REQUESTS_PER_CONNECTION", 3)
    info = make_info(100)
    service = MetadataService([parse_info(info)], os.urandom(20))
    session = ServeSession(service, "prefer", os.urandom)
    client = PeerConnection(info_hash(info), os.urandom(20))
    back, why = session.receive(client.send_handshake() + client.send_ext_handshake())
    client.receive_data(back)
    while client.next_event() is not NEED_DATA:
        pass
    for n in range(1, 5):
        _, why = session.receive(client.send_metadata_request(0))
        assert (why is None) == (n <= 3)
    assert why == "too many metadata requests"
