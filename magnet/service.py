"""Serving torrents' metadata to peers (BEP 9 over BEP 10), sans IO.

``MetadataService`` knows the torrents served, under every key a peer may ask by (the v1
info-hash, and the truncated v2 hash of hybrid or v2 torrents, BEP 52), and answers one
peer connection's events: accept or refuse the handshake, send pieces or rejects, cap how
much a peer may ask. ``ServeSession`` is one incoming connection: it tells a plaintext
handshake from an encrypted one (MSE/PE) by the first bytes, applies the encryption policy,
and runs the bytes through an ``EncryptedStream`` when asked for. The asyncio server that
feeds it lives in ``magnet.io.serve``. Metadata only, and for a v2 or hybrid .torrent that
holds ``piece layers`` the BEP 52 hash requests that fetch them (proofs from
``magnet.merkle.MerkleTree``; such a peer is told we have every piece, as hash requests
are only sent to peers that have pieces, and is never unchoked): no piece data is served.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from magnet.hashmsgs import Hashes
from magnet.layers import layer_files
from magnet.merkle import MerkleError, MerkleTree, piece_count, split_hashes
from magnet.metadata import MetadataSource
from magnet.peerwire import (
    NEED_DATA,
    UT_METADATA,
    ConnectionClosed,
    HandshakeReceived,
    HashRequest,
    MetadataRequest,
    PeerConnection,
    Role,
    Violation,
)
from magnet.torrentfile import TorrentMeta

if TYPE_CHECKING:
    from magnet.encrypted_stream import EncryptedStream

__all__ = [
    "MAX_PIECES_PER_READ",
    "MAX_HASH_BYTES_PER_READ",
    "MAX_HASH_REQUESTS_PER_CONNECTION",
    "MAX_REQUESTS_PER_CONNECTION",
    "REQUEST_QUEUE",
    "SERVE_ENCRYPTION",
    "MetadataService",
    "PeerState",
    "ServeSession",
    "Served",
]

# Incoming connections: "prefer" takes both (encryption when the peer starts with it),
# "require" refuses plaintext handshakes (RC4 only), "off" refuses encrypted ones.
SERVE_ENCRYPTION = ("prefer", "require", "off")

MAX_REQUESTS_PER_CONNECTION = 4096  # a 32 MiB info dict is 2048 pieces; twice that is abuse
REQUEST_QUEUE = 64  # the reqq we advertise (BEP 10): requests a peer may have outstanding
# Pieces sent in answer to one read: a burst beyond what we advertised gets rejects (a few
# bytes each), so one read of requests can never make more than ~1 MiB of reply.
MAX_PIECES_PER_READ = REQUEST_QUEUE
# Hash requests (BEP 52), bounded like metadata requests: a piece layer comes in chunks of
# 512 hashes, so a torrent of 2**20 pieces takes 2048 requests; twice that is abuse. One
# read's answers stay within ~1 MiB too (a request may ask for 8192 hashes, 256 KiB).
MAX_HASH_REQUESTS_PER_CONNECTION = 4096
MAX_HASH_BYTES_PER_READ = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Served:
    """One torrent as the service offers it, under each key a peer may use."""

    meta: TorrentMeta
    source: MetadataSource
    keys: tuple[bytes, ...]  # 20-byte handshake/DHT keys: v1 hash, truncated v2 hash
    # BEP 52: a tree per file with a piece layer, by pieces root (empty: none to answer)
    trees: dict[bytes, MerkleTree]
    pieces: int  # pieces of the torrent, for the bitfield of a peer that asks for hashes


def _trees(meta: TorrentMeta) -> dict[bytes, MerkleTree]:
    """Trees from a .torrent's piece layers, for every file that needs one: all or none.

    A layer that is missing or does not hash to its file's pieces root leaves the torrent
    with no hashes to answer (a client would only drop us for a bad proof).
    """
    files = layer_files(meta)
    layers = meta.piece_layers or {}
    trees: dict[bytes, MerkleTree] = {}
    for f in files:
        try:
            tree = MerkleTree.from_piece_layer(
                split_hashes(layers.get(f.root, b"")), meta.piece_length, f.length
            )
        except MerkleError:
            return {}
        if tree.root != f.root:
            return {}
        trees[f.root] = tree
    return trees


def _piece_total(meta: TorrentMeta) -> int:
    """Pieces of a v2 or hybrid torrent: each file starts on a piece boundary (BEP 52)."""
    return sum(piece_count(f.length, meta.piece_length) for f in meta.files)


@dataclass(slots=True)
class PeerState:
    """What the service remembers about one connection."""

    requests: int = 0  # metadata requests answered so far
    hash_requests: int = 0  # BEP 52 hash requests answered so far
    messages: int = 0  # whole messages (and handshakes) received: the driver's idle clock
    handshaken: bool = False  # the peer's BitTorrent handshake arrived and was accepted


class MetadataService:
    """The torrents served and the answers to a peer's peer-wire events."""

    def __init__(self, torrents: Sequence[TorrentMeta], peer_id: bytes) -> None:
        self.peer_id = peer_id
        self.by_key: dict[bytes, Served] = {}
        self.served: list[Served] = []
        for meta in torrents:
            keys = tuple(
                k
                for k in (meta.info_hash_v1, meta.info_hash_v2[:20] if meta.info_hash_v2 else None)
                if k is not None
            )
            trees = _trees(meta)
            item = Served(
                meta, MetadataSource(meta.info), keys, trees, _piece_total(meta) if trees else 0
            )
            self.served.append(item)
            for k in keys:
                self.by_key[k] = item
        self.refused = 0  # handshakes for torrents we do not serve

    def new_connection(self) -> PeerConnection:
        return PeerConnection(None, self.peer_id, our_role=Role.RESPONDER)

    def handle(
        self, conn: PeerConnection, data: bytes, state: PeerState
    ) -> tuple[bytes, str | None]:
        """Feed bytes from a peer. Returns (bytes to send, reason to close or None).

        The reply is gathered in a list and joined once: answering a burst of requests
        costs time linear in its size.
        """
        conn.receive_data(data)
        out: list[bytes] = []
        pieces = 0
        hash_bytes = 0
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                return b"".join(out), None
            state.messages += 1
            if isinstance(event, HandshakeReceived):
                item = self.by_key.get(event.info_hash)
                if item is None:
                    self.refused += 1
                    return b"".join(out), "asked for a torrent we do not serve"
                state.handshaken = True
                out.append(self._handshake(conn, event, item))
                if event.supports_extensions:
                    out.append(
                        conn.send_ext_handshake(metadata_size=item.source.size, reqq=REQUEST_QUEUE)
                    )
                if conn.v2 and _speaks_v2(event, item):
                    # Only to v2 peers: a v1 client has no hashes to ask and would only
                    # wait for an unchoke that never comes.
                    out.append(conn.send_have_all(item.pieces))
            elif isinstance(event, MetadataRequest):
                state.requests += 1
                if state.requests > MAX_REQUESTS_PER_CONNECTION:
                    return b"".join(out), "too many metadata requests"
                if UT_METADATA not in conn.remote_extensions:
                    # BEP 9 answers go to the id the peer gave ut_metadata in its extension
                    # handshake; a peer that never sent one cannot be answered.
                    return b"".join(out), "metadata request before the peer advertised ut_metadata"
                info_hash = conn.info_hash
                item = self.by_key.get(info_hash) if info_hash else None
                piece = item.source.piece(event.piece) if item else None
                if item is None or piece is None or pieces >= MAX_PIECES_PER_READ:
                    out.append(conn.send_metadata_reject(event.piece))
                else:
                    pieces += 1
                    out.append(conn.send_metadata_data(event.piece, item.source.size, piece))
            elif isinstance(event, HashRequest):
                state.hash_requests += 1
                if state.hash_requests > MAX_HASH_REQUESTS_PER_CONNECTION:
                    return b"".join(out), "too many hash requests"
                reply = self._hashes(conn, event, hash_bytes)
                hash_bytes += len(reply)
                out.append(reply)
            elif isinstance(event, Violation):
                return b"".join(out), f"protocol violation: {event.reason}"
            elif isinstance(event, ConnectionClosed):
                return b"".join(out), "closed"

    def _handshake(self, conn: PeerConnection, event: HandshakeReceived, item: Served) -> bytes:
        """Our handshake; with hashes to answer, the BEP 52 bit, and to a v2 peer that
        dialled a hybrid by its v1 hash, the truncated v2 hash (the upgrade libtorrent
        makes, after which it sends that peer hash requests)."""
        if not item.trees:
            return conn.send_handshake()
        conn.v2 = True
        conn.fast = True
        v2 = item.meta.info_hash_v2
        if event.supports_v2 and v2 is not None and event.info_hash != v2[:20]:
            return conn.send_handshake(v2[:20])
        return conn.send_handshake()

    def _hashes(self, conn: PeerConnection, request: HashRequest, sent: int) -> bytes:
        """The `hashes` answering ``request``, or a `hash reject` (no such file, a range
        the tree cannot answer, or this read's answers are big enough already)."""
        info_hash = conn.info_hash
        item = self.by_key.get(info_hash) if info_hash else None
        tree = item.trees.get(request.pieces_root) if item else None
        if tree is not None:
            try:
                hashes = tree.hashes(request.hash_range)
            except MerkleError:
                pass
            else:
                if sent + len(hashes) * 32 <= MAX_HASH_BYTES_PER_READ:
                    fields = (request.base_layer, request.index, request.length)
                    msg = Hashes(request.pieces_root, *fields, request.proof_layers, tuple(hashes))
                    return conn.send_hashes(msg)
        return conn.send_hash_reject(request.reject())


def _speaks_v2(event: HandshakeReceived, item: Served) -> bool:
    """A peer on the v2 protocol: it set the BEP 52 bit (libtorrent does on a hybrid), or
    it asked by the truncated v2 hash (libtorrent sets no bit for a v2-only torrent)."""
    v2 = item.meta.info_hash_v2
    return event.supports_v2 or (v2 is not None and event.info_hash == v2[:20])


class ServeSession:
    """One incoming connection, sans IO: plaintext or MSE/PE, then the metadata service."""

    def __init__(
        self, service: MetadataService, encryption: str, randbytes: Callable[[int], bytes]
    ) -> None:
        self.service = service
        self.encryption = encryption
        self.randbytes = randbytes
        self.conn = service.new_connection()
        self.state = PeerState()
        self._head = b""  # first bytes, until we know which kind of handshake this is
        self._stream: EncryptedStream | None = None
        self._kind: str | None = None

    def receive(self, data: bytes) -> tuple[bytes, str | None]:
        """Bytes from the peer -> (bytes to send, reason to close or None)."""
        if self._kind is None:
            # MSE stays unimported (and its crypto library unloaded) until a peer uses it.
            from magnet.mse import sniff_handshake

            self._head += data
            kind = sniff_handshake(self._head)
            if kind is None:
                return b"", None
            if kind == "plaintext" and self.encryption == "require":
                return b"", "plaintext handshake refused (encryption required)"
            if kind == "encrypted" and self.encryption == "off":
                return b"", "encrypted handshake refused (encryption off)"
            self._kind = kind
            data, self._head = self._head, b""
            if kind == "encrypted":
                from magnet.encrypted_stream import EncryptedStream
                from magnet.mse import CryptoMethod, MseResponder

                allow = CryptoMethod.RC4
                if self.encryption != "require":
                    allow |= CryptoMethod.PLAINTEXT
                self._stream = EncryptedStream(
                    MseResponder(list(self.service.by_key), allow=allow, randbytes=self.randbytes)
                )
        stream = self._stream
        if stream is None:
            return self.service.handle(self.conn, data, self.state)
        plain = stream.receive_data(data)
        if stream.failure is not None:
            return stream.data_to_send(), f"encryption handshake failed: {stream.failure}"
        why = None
        if plain:  # (b"" would mean end of stream to the peer wire)
            reply, why = self.service.handle(self.conn, plain, self.state)
            stream.send(reply)
        return stream.data_to_send(), why
