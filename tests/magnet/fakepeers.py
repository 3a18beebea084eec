"""Peers for resolver tests, honest and not, built on the sans-IO peer wire.

Each behaviour answers the bytes a resolver sends with the bytes a peer of that kind would
send back. They run in memory (``tests/magnet/test_resolver.py``) or behind a real TCP
server (``serve_behaviour``) for the asyncio tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import bencode2

from magnet.metadata import METADATA_PIECE, MetadataSource
from magnet.peerwire import (
    NEED_DATA,
    ConnectionClosed,
    HandshakeReceived,
    MetadataRequest,
    PeerConnection,
    Role,
    Violation,
)


def make_info(size_hint: int, name: str = "file.bin") -> bytes:
    """A valid single-file info dict of roughly ``size_hint`` bytes."""
    pieces = max(1, size_hint // 20)
    return bencode2.bencode(
        {
            b"length": pieces * 16384,
            b"name": name.encode(),
            b"piece length": 16384,
            b"pieces": os.urandom(20 * pieces),
        }
    )


def info_hash(info: bytes) -> bytes:
    return hashlib.sha1(info).digest()


class Behaviour:
    """A peer serving ``info`` honestly; subclasses change one thing."""

    def __init__(self, info: bytes) -> None:
        self.info = info
        self.source = MetadataSource(info)
        self.conn = PeerConnection(None, os.urandom(20), our_role=Role.RESPONDER)
        self.closed = False
        self.requests = 0

    def advertised_size(self) -> int:
        return len(self.info)

    def piece(self, index: int) -> bytes | None:
        return self.source.piece(index)

    def on_request(self, ev: MetadataRequest) -> bytes:
        self.requests += 1
        data = self.piece(ev.piece)
        if data is None:
            return self.conn.send_metadata_reject(ev.piece)
        return self.conn.send_metadata_data(ev.piece, self.advertised_size(), data)

    def feed(self, data: bytes) -> bytes:
        out = b""
        self.conn.receive_data(data)
        while (ev := self.conn.next_event()) is not NEED_DATA:
            if isinstance(ev, HandshakeReceived):
                out += self.conn.send_handshake()
                out += self.conn.send_ext_handshake(metadata_size=self.advertised_size())
            elif isinstance(ev, MetadataRequest):
                out += self.on_request(ev)
            elif isinstance(ev, Violation | ConnectionClosed):
                self.closed = True
                break
        return out


class Honest(Behaviour):
    pass


class Liar(Behaviour):
    """Right size, wrong bytes."""

    def piece(self, index: int) -> bytes | None:
        data = self.source.piece(index)
        return None if data is None else bytes(len(data))


class Rejecter(Behaviour):
    def on_request(self, ev: MetadataRequest) -> bytes:
        self.requests += 1
        return self.conn.send_metadata_reject(ev.piece)


class Staller(Behaviour):
    def on_request(self, ev: MetadataRequest) -> bytes:
        self.requests += 1
        return b""


class AbsurdSize(Behaviour):
    def advertised_size(self) -> int:
        return 1 << 40


class OtherSize(Behaviour):
    """Claims a different size and serves a consistent but wrong dict of that size."""

    def __init__(self, info: bytes) -> None:
        super().__init__(make_info(len(info) + 5 * METADATA_PIECE))


class EncryptedOnly(Behaviour):
    """Accepts only MSE/PE connections, RC4 only (like libtorrent with in_enc_policy forced
    and allowed_enc_level rc4): a plaintext handshake gets the connection closed."""

    def __init__(self, info: bytes) -> None:
        super().__init__(info)
        from magnet.mse import CryptoMethod, MseResponder

        self.mse = MseResponder([info_hash(info)], allow=CryptoMethod.RC4, randbytes=os.urandom)
        self.sniffed = b""

    def feed(self, data: bytes) -> bytes:
        from magnet.mse import HandshakeComplete, MseFailed, sniff_handshake

        if self.closed:
            return b""
        if not self.mse.complete:
            self.sniffed += data
            if sniff_handshake(self.sniffed) == "plaintext":
                self.closed = True
                return b""
            self.mse.receive_data(data)
            out = self.mse.data_to_send()
            event = self.mse.next_event()
            if isinstance(event, MseFailed):
                self.closed = True
                return out
            if isinstance(event, HandshakeComplete):
                reply = super().feed(event.initial_payload + event.leftover)
                return out + self.mse.encrypt(reply)
            return out
        return self.mse.encrypt(super().feed(self.mse.decrypt(data)))


async def serve_behaviour(
    make: type[Behaviour], info: bytes
) -> tuple[asyncio.Server, tuple[str, int], list[Behaviour]]:
    """A TCP server on 127.0.0.1 speaking as ``make`` peers (one per connection)."""
    made: list[Behaviour] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = make(info)
        made.append(peer)
        try:
            while not peer.closed:
                data = await reader.read(65536)
                if not data:
                    break
                out = peer.feed(data)
                if out:
                    writer.write(out)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, ("127.0.0.1", port), made
