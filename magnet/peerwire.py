"""Sans-IO peer wire connection: handshake, message framing and metadata exchange.

Owns the byte stream of one TCP connection to a BitTorrent peer: the BEP 3 handshake and
length-prefixed messages, the BEP 10 extension handshake, the BEP 9 ut_metadata messages
and the BEP 52 hash messages (21-23, their bytes in `magnet.hashmsgs`). Everything else a
peer may send (BEP 3 choke..cancel, BEP 5 port, BEP 6 fast extension, BEP 11 ut_pex,
unknown ids) is framed, skipped and reported. Shaped like h11: `receive_data` feeds bytes,
`next_event` pulls events, the `send_*` methods return bytes to write. No sockets, no
clock, no timers: a stalled peer is the caller's business.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from typing import Final, Literal

import bencode2

from dht.version import CLIENT_NAME
from magnet.bencode_spans import value_end
from magnet.hashmsgs import (
    HASH_REJECT,
    HASH_REQUEST,
    HASHES,
    MAX_LENGTH,
    Hashes,
    HashMessageError,
    HashReject,
    HashRequest,
    encode_hash_reject,
    encode_hash_request,
    encode_hashes,
    parse_hash_message,
)
from magnet.merkle import HASH_SIZE, MAX_TREE_HEIGHT
from magnet.metadata import piece_length
from magnet.peerevents import (
    NEED_DATA,
    ConnectionClosed,
    DhtPort,
    ExtHandshake,
    HandshakeReceived,
    Ignored,
    LocalProtocolError,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    NeedData,
    PeerEvent,
    Violation,
)
from magnet.receivebuffer import ReceiveBuffer

__all__ = [
    "CLIENT_VERSION",
    "MAX_MESSAGE_BYTES",
    "MAX_METADATA_BYTES",
    "NEED_DATA",
    "ConnectionClosed",
    "ConnectionState",
    "DhtPort",
    "ExtHandshake",
    "HandshakeReceived",
    "HashReject",
    "HashRequest",
    "Hashes",
    "Ignored",
    "LocalProtocolError",
    "MetadataData",
    "MetadataReject",
    "MetadataRequest",
    "NeedData",
    "PeerConnection",
    "PeerEvent",
    "Role",
    "Violation",
]

# Theory of operation
# -------------------
# The stream has two phases. First each side sends a 68-byte handshake:
#
#     \x13 "BitTorrent protocol" | 8 reserved bytes | 20-byte info_hash | 20-byte peer_id
#
# then nothing but messages: a 4-byte big-endian length, then that many bytes, the first of
# which is the message id (length 0 is a keep-alive). Parsing is pull-driven: bytes pile up
# in a `ReceiveBuffer` (magnet.receivebuffer) and `next_event` cuts off one whole handshake
# or message at a time.
# A message is only looked at once all of it is there, so any chunking of the same stream
# yields the same events; its length is checked against `max_message` as soon as the
# 4-byte prefix is in, so a hostile 4 GB prefix costs nothing.
#
# Our half and their half move independently. `send_handshake` may come before or after
# theirs arrives: an initiator sends first; a responder that serves several torrents waits
# for `HandshakeReceived` to learn which info-hash is asked for, then answers (or drops the
# socket to refuse). Extension messages are addressed by the *receiver's* ids (BEP 10):
# we send ut_metadata with the id the peer put in its `m`, and recognise incoming ones by
# the id we put in ours.
#
# BEP 10 addresses our extension handshake to peers whose reserved bits advertise the
# extension protocol, which we learn from their handshake: `ext_handshake_due` says when
# that moment has come. An initiator sends its handshake alone and the extension handshake
# once theirs has arrived. Sending both in one write saves nothing on an outgoing
# connection (no request may go before the peer's extension handshake anyway) and aria2
# 1.36 bans a peer whose handshake arrives with more than 68 bytes behind it ("More than
# BtHandshakeMessage::MESSAGE_LENGTH bytes are buffered"). `send_ext_handshake` still
# allows pipelining for callers that know the peer, as a responder does.
#
# Like h11, trouble ends the connection for good. A peer that breaks the protocol produces
# one `Violation(reason)`; a clean EOF produces `ConnectionClosed`. Either is terminal: the
# state becomes CLOSED, `next_event` keeps returning that same event, later input is
# dropped, and every `send_*` raises `LocalProtocolError`. Calling a `send_*` out of order
# (a request before the peer said it speaks ut_metadata, a second handshake) also raises
# `LocalProtocolError`, which is a bug in the caller, not the peer.

PROTOCOL: Final = b"\x13BitTorrent protocol"
HANDSHAKE_BYTES: Final = 68
# BEP 10 extension protocol: reserved[5] & 0x10; BEP 5 DHT: reserved[7] & 0x01.
RESERVED: Final = bytes([0, 0, 0, 0, 0, 0x10, 0, 0x01])
# Set in reserved[7] on request: BEP 6 fast extension, BEP 52 v2 (hash messages; on a
# hybrid, libtorrent answers a v1 handshake carrying it with the truncated v2 info-hash).
RESERVED_FAST: Final = 0x04
RESERVED_V2: Final = 0x10

#: Largest message (after the 4-byte prefix) accepted by default: libtorrent's 1 MiB
#: (bt_peer_connection.cpp) plus room for headers.
MAX_MESSAGE_BYTES: Final = 1024 * 1024 + 1024
#: Largest info dict a peer may announce by default: libtorrent's max_metadata_size.
MAX_METADATA_BYTES: Final = 30 * 1024 * 1024
CLIENT_VERSION: Final = CLIENT_NAME

MSG_PORT: Final = 9
MSG_BITFIELD: Final = 5
MSG_HAVE_ALL: Final = 0x0E
MSG_EXTENDED: Final = 20
EXT_HANDSHAKE: Final = 0
UT_METADATA: Final = "ut_metadata"
# ut_metadata msg_type values (BEP 9). BEP 9's reject example encodes 1; 2 is right.
UT_REQUEST: Final = 0
UT_DATA: Final = 1
UT_REJECT: Final = 2

# Messages we frame and skip, by id: BEP 3, BEP 6 (fast extension), BEP 52 (hashes).
_SKIPPED_KINDS: Final = {
    0: "choke",
    1: "unchoke",
    2: "interested",
    3: "not-interested",
    4: "have",
    5: "bitfield",
    6: "request",
    7: "piece",
    8: "cancel",
    0x0D: "suggest-piece",
    0x0E: "have-all",
    0x0F: "have-none",
    0x10: "reject-request",
    0x11: "allowed-fast",
}

# The front door for BEP 52 messages, checked once the id byte is in (before the body is
# buffered): a request or reject is exactly its fields; a `hashes` at most the largest
# range with a proof up the tallest tree. 4 + 4*4 + 32 field bytes, plus the id byte.
_HASH_FIELDS_BYTES: Final = 1 + HASH_SIZE + 16
_MAX_HASH_BODY: Final = {
    HASH_REQUEST: _HASH_FIELDS_BYTES,
    HASH_REJECT: _HASH_FIELDS_BYTES,
    HASHES: _HASH_FIELDS_BYTES + HASH_SIZE * (MAX_LENGTH + MAX_TREE_HEIGHT),
}

_LENGTH = struct.Struct(">I")
_HEADER = struct.Struct(">IB")
_EXT_HEADER = struct.Struct(">IBB")
_PORT = struct.Struct(">H")
_ID = struct.Struct(">IB")


class Role(enum.Enum):
    """Which end of the TCP connection we are."""

    INITIATOR = "initiator"
    RESPONDER = "responder"


class ConnectionState(enum.Enum):
    """Where the incoming stream is: before their handshake, in messages, or over."""

    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSED = "closed"


# Bencoded values nest; an ut_metadata header needs depth 1, so 32 is generous and bounds
# the work a hostile peer can make us do.
_MAX_BENCODE_DEPTH: Final = 32
# libtorrent's own handshake is ~300 bytes; BEP 10 sets no limit, 64 KiB leaves room for
# clients that send long version strings or many extensions.
MAX_EXT_HANDSHAKE_BYTES: Final = 64 * 1024


class PeerConnection:
    """One peer wire connection, sans IO (see the essay at the top of this module).

    Args:
        info_hash: the 20-byte info-hash this connection is about. Required for an
            initiator. A responder may pass None to learn it from the peer's handshake
            (a server for several torrents); otherwise the peer's must match.
        peer_id: our 20-byte peer id.
        our_role: which end of the TCP connection we are.
        max_message: longest message accepted (bytes after the length prefix).
        max_metadata_size: largest ``metadata_size``/``total_size`` a peer may announce.
        extensions: BEP 10 names and the ids *we* receive them on (1..255).
        metadata_size: size of the info dict we serve, advertised in our ext handshake.
        client_version: the ``v`` of our ext handshake.
        v2: set the BEP 52 bit in our handshake (we speak hash messages).
        fast: set the BEP 6 bit in our handshake (we may send have-all).
        alt_info_hash: a second 20-byte info-hash the peer's handshake may carry: the
            truncated v2 hash of a hybrid dialled by its v1 hash, which libtorrent answers
            with when both sides set the v2 bit. The connection then goes by it.
    """

    __slots__ = (
        "_alt_info_hash",
        "_buffer",
        "_eof",
        "_ext_handshake_sent",
        "_extensions",
        "_handshake_sent",
        "_info_hash",
        "_local_names",
        "_local_ut_metadata",
        "_remote_extensions",
        "_remote_metadata_size",
        "_remote_peer_id",
        "_remote_reserved",
        "_state",
        "_terminal",
        "client_version",
        "fast",
        "max_message",
        "max_metadata_size",
        "metadata_size",
        "our_role",
        "peer_id",
        "v2",
    )

    def __init__(
        self,
        info_hash: bytes | None,
        peer_id: bytes,
        *,
        our_role: Role = Role.INITIATOR,
        max_message: int = MAX_MESSAGE_BYTES,
        max_metadata_size: int = MAX_METADATA_BYTES,
        extensions: Mapping[str, int] | None = None,
        metadata_size: int | None = None,
        client_version: str = CLIENT_VERSION,
        v2: bool = False,
        fast: bool = False,
        alt_info_hash: bytes | None = None,
    ) -> None:
        if info_hash is not None and len(info_hash) != 20:
            raise ValueError("info_hash must be 20 bytes")
        if info_hash is None and our_role is Role.INITIATOR:
            raise ValueError("an initiator must know the info_hash it asks for")
        if len(peer_id) != 20:
            raise ValueError("peer_id must be 20 bytes")
        if alt_info_hash is not None and len(alt_info_hash) != 20:
            raise ValueError("alt_info_hash must be 20 bytes")
        ext = dict({UT_METADATA: 2} if extensions is None else extensions)
        if any(not 1 <= i <= 255 for i in ext.values()) or len(set(ext.values())) != len(ext):
            raise ValueError("extension ids must be distinct and in 1..255")
        self.peer_id = peer_id
        self.our_role = our_role
        self.max_message = max_message
        self.max_metadata_size = max_metadata_size
        self._extensions = ext
        self.metadata_size = metadata_size
        self.client_version = client_version
        self.v2 = v2
        self.fast = fast
        self._alt_info_hash = alt_info_hash
        self._info_hash = info_hash
        self._local_names = {i: name for name, i in ext.items()}
        self._local_ut_metadata = ext.get(UT_METADATA)
        self._buffer = ReceiveBuffer()
        self._eof = False
        self._state = ConnectionState.HANDSHAKE
        self._terminal: Violation | ConnectionClosed | None = None
        self._handshake_sent = False
        self._ext_handshake_sent = False
        self._remote_peer_id: bytes | None = None
        self._remote_reserved: bytes | None = None
        self._remote_extensions: dict[str, int] = {}
        self._remote_metadata_size: int | None = None

    # --- what we know -----------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """HANDSHAKE until theirs is parsed, OPEN, then CLOSED after a terminal event."""
        return self._state

    @property
    def extensions(self) -> dict[str, int]:
        """Our BEP 10 extension names and the ids we receive them on."""
        return dict(self._extensions)

    @property
    def info_hash(self) -> bytes | None:
        """The info-hash in use: given, or learned from a responder's incoming handshake."""
        return self._info_hash

    @property
    def remote_peer_id(self) -> bytes | None:
        """The peer's id, once its handshake arrived."""
        return self._remote_peer_id

    @property
    def ext_handshake_due(self) -> bool:
        """True once our extension handshake should go out and has not: our handshake is
        sent, the peer's arrived with the BEP 10 bit, and the connection is open."""
        reserved = self._remote_reserved
        return (
            self._terminal is None
            and self._handshake_sent
            and not self._ext_handshake_sent
            and reserved is not None
            and bool(reserved[5] & 0x10)
        )

    @property
    def remote_extensions(self) -> dict[str, int]:
        """Extension ids the peer receives on, merged over all its ext handshakes."""
        return dict(self._remote_extensions)

    @property
    def remote_reserved(self) -> bytes | None:
        """The 8 reserved bytes of the peer's handshake, once it arrived."""
        return self._remote_reserved

    @property
    def remote_metadata_size(self) -> int | None:
        """The latest ``metadata_size`` the peer announced, if any."""
        return self._remote_metadata_size

    # --- receiving --------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the socket; ``b""`` means the peer closed (EOF).

        Raises:
            LocalProtocolError: data fed after EOF was already signalled.
        """
        if self._terminal is not None:
            return  # the connection is over; what the peer says now does not matter
        if not data:
            self._eof = True
        elif self._eof:
            raise LocalProtocolError("data received after EOF")
        else:
            self._buffer.feed(data)

    def next_event(self) -> PeerEvent | Literal[NeedData.NEED_DATA]:
        """The next event parsed from the received bytes, or `NEED_DATA`.

        `Violation` and `ConnectionClosed` are terminal and repeat on every later call.
        """
        if self._terminal is not None:
            return self._terminal
        if self._state is ConnectionState.HANDSHAKE:
            return self._read_handshake()
        buffer = self._buffer
        if len(buffer) < 4:
            return self._need_data()
        length = buffer.uint32()
        if length > self.max_message:
            return self._violation(f"message of {length} bytes exceeds {self.max_message}")
        if length and len(buffer) >= 5:
            cap = _MAX_HASH_BODY.get(_ID.unpack(buffer.peek(5))[1])
            if cap is not None and length > cap:
                return self._violation(f"hash message of {length} bytes exceeds {cap}")
        if len(buffer) < 4 + length:
            return self._need_data()
        frame = buffer.take(4 + length)
        if length == 0:
            return Ignored("keep-alive")
        return self._dispatch(frame[4], memoryview(frame)[5:])

    def _need_data(self) -> PeerEvent | Literal[NeedData.NEED_DATA]:
        if not self._eof:
            return NEED_DATA
        if len(self._buffer):
            return self._violation("connection closed mid-message")
        self._state = ConnectionState.CLOSED
        self._terminal = ConnectionClosed()
        return self._terminal

    def _violation(self, reason: str) -> Violation:
        self._state = ConnectionState.CLOSED
        self._terminal = Violation(reason)
        return self._terminal

    def _read_handshake(self) -> PeerEvent | Literal[NeedData.NEED_DATA]:
        # Check the protocol string on whatever prefix has arrived, so that an HTTP request
        # or an encrypted (BEP 8/MSE) stream is refused at once, not after 68 bytes.
        head = self._buffer.peek(len(PROTOCOL))
        if head != PROTOCOL[: len(head)]:
            return self._violation("not a BitTorrent handshake")
        if len(self._buffer) < HANDSHAKE_BYTES:
            return self._need_data()
        raw = self._buffer.take(HANDSHAKE_BYTES)
        reserved, info_hash, peer_id = raw[20:28], raw[28:48], raw[48:68]
        if self._info_hash is None:
            self._info_hash = info_hash
        elif info_hash == self._alt_info_hash and info_hash is not None:
            self._info_hash = info_hash  # the hybrid's v2 hash: the peer upgraded us (BEP 52)
        elif info_hash != self._info_hash:
            return self._violation("handshake for another info_hash")
        self._remote_peer_id = peer_id
        self._remote_reserved = reserved
        self._state = ConnectionState.OPEN
        return HandshakeReceived(info_hash, peer_id, reserved)

    def _dispatch(self, msg_id: int, body: memoryview) -> PeerEvent:
        if msg_id == MSG_EXTENDED:
            if not body:
                return self._violation("extended message without an extension id")
            ext_id = body[0]
            if ext_id == EXT_HANDSHAKE:
                return self._read_ext_handshake(body[1:])
            if ext_id == self._local_ut_metadata:
                return self._read_ut_metadata(bytes(body[1:]))
            name = self._local_names.get(ext_id)
            return Ignored(f"extended {name}" if name else f"extended #{ext_id}")
        if msg_id == MSG_PORT:
            if len(body) != 2:
                return self._violation("port message is not 2 bytes")
            return DhtPort(_PORT.unpack(body)[0])
        if msg_id in _MAX_HASH_BODY:
            try:
                return parse_hash_message(msg_id, body)
            except HashMessageError as exc:
                return self._violation(f"bad hash message: {exc}")
        kind = _SKIPPED_KINDS.get(msg_id)
        return Ignored(kind if kind else f"message #{msg_id}")

    def _read_ext_handshake(self, body: memoryview) -> PeerEvent:
        # The front door: a size cap and a nesting bound checked by a flat scan before
        # bencode2 builds anything (it takes ~16 ms to reject 60 KB of unclosed nesting).
        if len(body) > MAX_EXT_HANDSHAKE_BYTES:
            return self._violation(f"ext handshake over {MAX_EXT_HANDSHAKE_BYTES} bytes")
        raw = bytes(body)
        try:
            if value_end(raw, 0, max_depth=_MAX_BENCODE_DEPTH) != len(raw):
                return self._violation("ext handshake is not valid bencoding (bytes after it)")
            d = bencode2.bdecode(raw)
        except ValueError:  # BencodeError and BencodeDecodeError are ValueErrors
            return self._violation("ext handshake is not valid bencoding")
        if not isinstance(d, dict):
            return self._violation("ext handshake is not a dict")
        raw_m = d.get(b"m", {})
        if not isinstance(raw_m, dict):
            return self._violation("ext handshake 'm' is not a dict")
        m: dict[str, int] = {}
        for key, value in raw_m.items():
            if type(value) is not int or not 0 <= value <= 255:
                return self._violation("ext handshake 'm' has an id that is not 0..255")
            m[key.decode("utf-8", "replace")] = value
        size = d.get(b"metadata_size")
        if size is not None:
            if type(size) is not int or not 0 <= size <= self.max_metadata_size:
                return self._violation(
                    f"claims an absurd metadata size: metadata_size {size!r},"
                    f" the cap is {self.max_metadata_size}"
                )
            # libtorrent treats 0 as "no metadata here"; so do we.
            size = size or None
        # BEP 10: each handshake updates the previous one; id 0 switches an extension off.
        for name, ext_id in m.items():
            if ext_id:
                self._remote_extensions[name] = ext_id
            else:
                self._remote_extensions.pop(name, None)
        if size is not None:
            self._remote_metadata_size = size
        return ExtHandshake(
            m=m,
            metadata_size=size,
            client=_opt_text(d.get(b"v")),
            reqq=_opt_int(d.get(b"reqq"), 1, 2**31 - 1),
            yourip=_opt_ip(d.get(b"yourip")),
            listen_port=_opt_int(d.get(b"p"), 1, 65535),
        )

    def _read_ut_metadata(self, body: bytes) -> PeerEvent:
        try:
            if body[:1] != b"d":
                raise ValueError("not a dict")
            # BEP 9 data messages need the span: their dict is followed by raw bytes.
            end = value_end(body, 0, max_depth=_MAX_BENCODE_DEPTH)
            header = bencode2.bdecode(body[:end])
        except ValueError:
            return self._violation("ut_metadata header is not a bencoded dict")
        msg_type = header.get(b"msg_type")
        piece = header.get(b"piece")
        if type(msg_type) is not int or type(piece) is not int:
            return self._violation("ut_metadata message without int msg_type and piece")
        if piece < 0:
            return self._violation(f"ut_metadata piece {piece} is negative")
        if msg_type == UT_REQUEST:
            return MetadataRequest(piece)
        if msg_type == UT_REJECT:
            return MetadataReject(piece)
        if msg_type != UT_DATA:
            return Ignored(f"ut_metadata msg_type {msg_type}")  # BEP 9: unknown types ignored
        total = header.get(b"total_size")
        if type(total) is not int or not 0 < total <= self.max_metadata_size:
            return self._violation(f"ut_metadata total_size {total!r} is not in 1..cap")
        data = body[end:]
        expected = piece_length(total, piece)
        if expected is None:
            return self._violation(f"ut_metadata piece {piece} is beyond total_size {total}")
        if len(data) != expected:
            return self._violation(
                f"ut_metadata piece {piece} is {len(data)} bytes, not {expected}"
            )
        return MetadataData(piece, total, data)

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
        d: dict[bytes, object] = {
            b"m": {name.encode(): i for name, i in self._extensions.items()},
            b"v": self.client_version.encode(),
        }
        if size is not None:
            d[b"metadata_size"] = size
        if yourip is not None:
            d[b"yourip"] = yourip
        if listen_port is not None:
            d[b"p"] = listen_port
        if reqq is not None:
            d[b"reqq"] = reqq
        self._ext_handshake_sent = True
        return _extended(EXT_HANDSHAKE, bencode2.bencode(d))

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
        return _HEADER.pack(3, MSG_PORT) + _PORT.pack(port)

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
        if self.fast and reserved is not None and reserved[7] & RESERVED_FAST:
            return _HEADER.pack(1, MSG_HAVE_ALL)
        body = bytearray(b"\xff" * (pieces // 8))
        if pieces % 8:
            body.append((0xFF << (8 - pieces % 8)) & 0xFF)
        return _HEADER.pack(len(body) + 1, MSG_BITFIELD) + bytes(body)

    def send_keepalive(self) -> bytes:
        """A keep-alive (zero-length message)."""
        self._check_messages_allowed()
        return _LENGTH.pack(0)

    def _ut_metadata(self, header: dict[bytes, int], data: bytes = b"") -> bytes:
        self._check_messages_allowed()
        ext_id = self._remote_extensions.get(UT_METADATA)
        if ext_id is None:
            raise LocalProtocolError("peer has not advertised ut_metadata")
        return _extended(ext_id, bencode2.bencode(header) + data)


def _extended(ext_id: int, payload: bytes) -> bytes:
    """Frame a BEP 10 extended message (id 20) addressed to the receiver's ``ext_id``."""
    return _EXT_HEADER.pack(len(payload) + 2, MSG_EXTENDED, ext_id) + payload


# Optional ext handshake fields: a peer that fills them badly loses the field, not the
# connection, as nothing here depends on them.


def _opt_int(value: object, low: int, high: int) -> int | None:
    return value if type(value) is int and low <= value <= high else None


def _opt_text(value: object) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else None


def _opt_ip(value: object) -> bytes | None:
    return value if isinstance(value, bytes) and len(value) in (4, 16) else None
