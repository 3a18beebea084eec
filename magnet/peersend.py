"""What we send on the peer wire (BEP 3/5/6/9/10/52): the ``send_*`` half of a connection.

``PeerSending`` is the part of ``magnet.peerwire.PeerConnection`` that builds the bytes we
write: our handshake and extension handshake, BEP 9 metadata requests, data and rejects,
BEP 52 hash messages, have-all/bitfield, PORT and keep-alives. Each checks that the
connection allows it (our handshake first, nothing after the end, ut_metadata only once the
peer advertised it) and raises ``LocalProtocolError`` otherwise: a bug in the caller.
"""

from __future__ import annotations

import bencode2

from magnet.hashmsgs import (
    Hashes,
    HashMessageError,
    HashReject,
    HashRequest,
    encode_hash_reject,
    encode_hash_request,
    encode_hashes,
)
from magnet.metadata import piece_length
from magnet.peerevents import ConnectionClosed, LocalProtocolError, Violation
from magnet.wiremessages import (
    HEADER,
    LENGTH,
    MSG_PORT,
    PORT,
    PROTOCOL,
    RESERVED,
    RESERVED_FAST,
    RESERVED_V2,
    UT_DATA,
    UT_METADATA,
    UT_REJECT,
    UT_REQUEST,
    ext_handshake_message,
    extended,
    have_all_message,
)

__all__ = ["PeerSending"]


class PeerSending:
    """The sending half of ``PeerConnection`` (its state lives there)."""

    # Its slots are the state only sending changes; PeerConnection holds the rest.
    __slots__ = ("_ext_handshake_sent", "_handshake_sent", "_info_hash")

    peer_id: bytes
    v2: bool
    fast: bool
    metadata_size: int | None
    client_version: str
    _info_hash: bytes | None
    _extensions: dict[str, int]
    _terminal: Violation | ConnectionClosed | None
    _handshake_sent: bool
    _ext_handshake_sent: bool
    _remote_reserved: bytes | None
    _remote_extensions: dict[str, int]

    # --- sending ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._terminal is not None:
            raise LocalProtocolError("connection is closed")

    def _check_messages_allowed(self) -> None:
        """Messages may follow our handshake, even before the peer's arrives (pipelining)."""
        self._check_open()
        if not self._handshake_sent:
            raise LocalProtocolError("send the handshake first")

    def send_handshake(self, info_hash: bytes | None = None) -> bytes:
        """Our 68-byte BEP 3 handshake, with the BEP 10 and DHT bits set (and the BEP 6 and
        BEP 52 bits when `fast` and `v2` say so).

        A responder created without an info-hash echoes the one the peer asked for, so it
        must first have seen `HandshakeReceived` (and decided to serve that torrent).
        ``info_hash`` lets a responder answer with another key of the same torrent (a
        hybrid's truncated v2 hash to a v2 peer that dialled its v1 hash, as libtorrent
        does); the connection then goes by it.

        Raises:
            LocalProtocolError: sent twice, after the end, or info-hash still unknown.
        """
        self._check_open()
        if self._handshake_sent:
            raise LocalProtocolError("handshake already sent")
        if info_hash is not None:
            if len(info_hash) != 20:
                raise LocalProtocolError("info_hash must be 20 bytes")
            self._info_hash = info_hash
        if self._info_hash is None:
            raise LocalProtocolError("info_hash unknown: wait for HandshakeReceived")
        self._handshake_sent = True
        reserved = bytearray(RESERVED)
        reserved[7] |= (RESERVED_V2 if self.v2 else 0) | (RESERVED_FAST if self.fast else 0)
        return PROTOCOL + bytes(reserved) + self._info_hash + self.peer_id

    def send_ext_handshake(
        self,
        *,
        metadata_size: int | None = None,
        yourip: bytes | None = None,
        listen_port: int | None = None,
        reqq: int | None = None,
    ) -> bytes:
        """Our BEP 10 handshake: ``m`` = `extensions`, ``v`` = `client_version`.

        Args:
            metadata_size: overrides the constructor's value (a multi-torrent server learns
                it only after the handshake); None keeps it, and no value omits the key.
            yourip: the peer's address as we see it (4 or 16 bytes).
            listen_port: our TCP listen port (``p``), useful on connections we opened.
            reqq: how many outstanding requests we accept.

        Raises:
            LocalProtocolError: our handshake not sent yet, the peer's handshake lacks the
                BEP 10 bit, or the connection is over.
        """
        self._check_messages_allowed()
        if self._remote_reserved is not None and not self._remote_reserved[5] & 0x10:
            raise LocalProtocolError("peer does not support the extension protocol")
        size = self.metadata_size if metadata_size is None else metadata_size
        message = ext_handshake_message(
            self._extensions, self.client_version, size, yourip, listen_port, reqq
        )
        self._ext_handshake_sent = True
        return message

    def send_metadata_request(self, piece: int) -> bytes:
        """BEP 9 request for piece ``piece``.

        Raises:
            LocalProtocolError: the peer has not advertised ut_metadata, or the connection
                is over.
        """
        return self._ut_metadata({b"msg_type": UT_REQUEST, b"piece": piece})

    def send_metadata_data(self, piece: int, total_size: int, data: bytes) -> bytes:
        """BEP 9 data message: the header dict, then the piece's raw bytes.

        Raises:
            LocalProtocolError: ``data`` is not exactly piece ``piece`` of a ``total_size``
                dict, the peer has not advertised ut_metadata, or the connection is over.
        """
        if len(data) != piece_length(total_size, piece):
            raise LocalProtocolError(f"piece {piece} of a {total_size}-byte dict: wrong length")
        header = {b"msg_type": UT_DATA, b"piece": piece, b"total_size": total_size}
        return self._ut_metadata(header, data)

    def send_metadata_reject(self, piece: int) -> bytes:
        """BEP 9 reject (msg_type 2) for piece ``piece``."""
        return self._ut_metadata({b"msg_type": UT_REJECT, b"piece": piece})

    def send_dht_port(self, port: int) -> bytes:
        """BEP 5 PORT message advertising our DHT node's UDP port."""
        self._check_messages_allowed()
        return HEADER.pack(3, MSG_PORT) + PORT.pack(port)

    def send_hash_request(self, msg: HashRequest) -> bytes:
        """BEP 52 `hash request` (21).

        Raises:
            LocalProtocolError: before our handshake, after the end, or a length below two
                (BEP 52: a request names at least two hashes).
        """
        self._check_messages_allowed()
        try:
            return encode_hash_request(msg)
        except HashMessageError as exc:
            raise LocalProtocolError(str(exc)) from None

    def send_hashes(self, msg: Hashes) -> bytes:
        """BEP 52 `hashes` (22), the answer to a request with the same fields."""
        self._check_messages_allowed()
        return encode_hashes(msg)

    def send_hash_reject(self, msg: HashReject) -> bytes:
        """BEP 52 `hash reject` (23), refusing a request with the same fields."""
        self._check_messages_allowed()
        return encode_hash_reject(msg)

    def send_have_all(self, pieces: int) -> bytes:
        """That we have all ``pieces`` pieces: BEP 6 have-all when both sides set the fast
        bit, else a BEP 3 bitfield of ``pieces`` ones (spare bits zero)."""
        self._check_messages_allowed()
        reserved = self._remote_reserved
        fast = self.fast and reserved is not None and bool(reserved[7] & RESERVED_FAST)
        return have_all_message(pieces, fast=fast)

    def send_keepalive(self) -> bytes:
        """A keep-alive (zero-length message)."""
        self._check_messages_allowed()
        return LENGTH.pack(0)

    def _ut_metadata(self, header: dict[bytes, int], data: bytes = b"") -> bytes:
        self._check_messages_allowed()
        ext_id = self._remote_extensions.get(UT_METADATA)
        if ext_id is None:
            raise LocalProtocolError("peer has not advertised ut_metadata")
        return extended(ext_id, bencode2.bencode(header) + data)
