"""Sans-IO peer wire connection: handshake, message framing and metadata exchange.

Owns the byte stream of one TCP connection to a BitTorrent peer: the BEP 3 handshake and
length-prefixed messages, the BEP 10 extension handshake, the BEP 9 ut_metadata messages
and the BEP 52 hash messages (21-23, their bytes in `magnet.hashmsgs`). Everything else a
peer may send (BEP 3 choke..cancel, BEP 5 port, BEP 6 fast extension, BEP 11 ut_pex,
unknown ids) is framed, skipped and reported. Shaped like h11: `receive_data` feeds bytes,
`next_event` pulls events, the `send_*` methods return bytes to write. No sockets, no
clock, no timers: a stalled peer is the caller's business.

This module is the connection's state machine and its receiving half; the bytes themselves
(constants, size caps, parsers of extension handshakes and ut_metadata, message builders)
are in `magnet.wiremessages`, the `send_*` half in `magnet.peersend`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Literal

from magnet.hashmsgs import (
    Hashes,
    HashMessageError,
    HashReject,
    HashRequest,
    parse_hash_message,
)
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
from magnet.peersend import PeerSending
from magnet.receivebuffer import ReceiveBuffer
from magnet.wiremessages import (
    CLIENT_VERSION,
    EXT_HANDSHAKE,
    HANDSHAKE_BYTES,
    MAX_HASH_BODY,
    MAX_MESSAGE_BYTES,
    MAX_METADATA_BYTES,
    MSG_EXTENDED,
    MSG_ID,
    MSG_PORT,
    PORT,
    PROTOCOL,
    SKIPPED_KINDS,
    UT_METADATA,
    parse_ext_handshake,
    parse_ut_metadata,
)

__all__ = [
    "CLIENT_VERSION",
    "HANDSHAKE_BYTES",
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
    "UT_METADATA",
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


class Role(enum.Enum):
    """Which end of the TCP connection we are."""

    INITIATOR = "initiator"
    RESPONDER = "responder"


class ConnectionState(enum.Enum):
    """Where the incoming stream is: before their handshake, in messages, or over."""

    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSED = "closed"


class PeerConnection(PeerSending):
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
        "_extensions",
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
            cap = MAX_HASH_BODY.get(MSG_ID.unpack(buffer.peek(5))[1])
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
            return DhtPort(PORT.unpack(body)[0])
        if msg_id in MAX_HASH_BODY:
            try:
                return parse_hash_message(msg_id, body)
            except HashMessageError as exc:
                return self._violation(f"bad hash message: {exc}")
        kind = SKIPPED_KINDS.get(msg_id)
        return Ignored(kind if kind else f"message #{msg_id}")

    def _read_ext_handshake(self, body: memoryview) -> PeerEvent:
        ev = parse_ext_handshake(body, self.max_metadata_size)
        if isinstance(ev, Violation):
            return self._violation(ev.reason)
        # BEP 10: each handshake updates the previous one; id 0 switches an extension off.
        for name, ext_id in ev.m.items():
            if ext_id:
                self._remote_extensions[name] = ext_id
            else:
                self._remote_extensions.pop(name, None)
        if ev.metadata_size is not None:
            self._remote_metadata_size = ev.metadata_size
        return ev

    def _read_ut_metadata(self, body: bytes) -> PeerEvent:
        ev = parse_ut_metadata(body, self.max_metadata_size)
        return self._violation(ev.reason) if isinstance(ev, Violation) else ev
