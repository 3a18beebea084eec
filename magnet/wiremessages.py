"""The bytes of the peer wire (BEP 3/5/6/9/10/52): constants, front doors, parsers, builders.

What a ``magnet.peerwire.PeerConnection`` puts on and takes off the wire, without any
connection state: the handshake layout and reserved bits, the message ids, the size caps
checked before a message is buffered (whole messages, BEP 52 hash messages by id, BEP 10
extension handshakes), the parsers of an extension handshake and of a ut_metadata message
(each returns its event, or a ``Violation`` saying why the peer broke the protocol), and the
builders of the messages that need no state beyond their arguments.
"""

from __future__ import annotations

import struct
from typing import Final

import bencode2

from dht.version import CLIENT_NAME
from magnet.bencode_spans import value_end
from magnet.hashmsgs import HASH_REJECT, HASH_REQUEST, HASHES, MAX_LENGTH
from magnet.merkle import HASH_SIZE, MAX_TREE_HEIGHT
from magnet.metadata import piece_length
from magnet.peerevents import (
    ExtHandshake,
    Ignored,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    PeerEvent,
    Violation,
)

__all__ = [
    "CLIENT_VERSION",
    "EXT_HANDSHAKE",
    "HANDSHAKE_BYTES",
    "MAX_EXT_HANDSHAKE_BYTES",
    "MAX_HASH_BODY",
    "MAX_MESSAGE_BYTES",
    "MAX_METADATA_BYTES",
    "MSG_EXTENDED",
    "MSG_PORT",
    "PROTOCOL",
    "RESERVED",
    "RESERVED_FAST",
    "RESERVED_V2",
    "SKIPPED_KINDS",
    "UT_DATA",
    "UT_METADATA",
    "UT_REJECT",
    "UT_REQUEST",
    "ext_handshake_message",
    "extended",
    "have_all_message",
    "parse_ext_handshake",
    "parse_ut_metadata",
]

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
SKIPPED_KINDS: Final = {
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
MAX_HASH_BODY: Final = {
    HASH_REQUEST: _HASH_FIELDS_BYTES,
    HASH_REJECT: _HASH_FIELDS_BYTES,
    HASHES: _HASH_FIELDS_BYTES + HASH_SIZE * (MAX_LENGTH + MAX_TREE_HEIGHT),
}

LENGTH = struct.Struct(">I")
HEADER = struct.Struct(">IB")
PORT = struct.Struct(">H")
MSG_ID = struct.Struct(">IB")
_EXT_HEADER = struct.Struct(">IBB")

# Bencoded values nest; an ut_metadata header needs depth 1, so 32 is generous and bounds
# the work a hostile peer can make us do.
_MAX_BENCODE_DEPTH: Final = 32
# libtorrent's own handshake is ~300 bytes; BEP 10 sets no limit, 64 KiB leaves room for
# clients that send long version strings or many extensions.
MAX_EXT_HANDSHAKE_BYTES: Final = 64 * 1024


def parse_ext_handshake(body: memoryview, max_metadata_size: int) -> ExtHandshake | Violation:
    """A BEP 10 extension handshake (after its id byte), or why it breaks the protocol."""
    # The front door: a size cap and a nesting bound checked by a flat scan before
    # bencode2 builds anything (it takes ~16 ms to reject 60 KB of unclosed nesting).
    if len(body) > MAX_EXT_HANDSHAKE_BYTES:
        return Violation(f"ext handshake over {MAX_EXT_HANDSHAKE_BYTES} bytes")
    raw = bytes(body)
    try:
        if value_end(raw, 0, max_depth=_MAX_BENCODE_DEPTH) != len(raw):
            return Violation("ext handshake is not valid bencoding (bytes after it)")
        d = bencode2.bdecode(raw)
    except ValueError:  # BencodeError and BencodeDecodeError are ValueErrors
        return Violation("ext handshake is not valid bencoding")
    if not isinstance(d, dict):
        return Violation("ext handshake is not a dict")
    raw_m = d.get(b"m", {})
    if not isinstance(raw_m, dict):
        return Violation("ext handshake 'm' is not a dict")
    m: dict[str, int] = {}
    for key, value in raw_m.items():
        if type(value) is not int or not 0 <= value <= 255:
            return Violation("ext handshake 'm' has an id that is not 0..255")
        m[key.decode("utf-8", "replace")] = value
    size = d.get(b"metadata_size")
    if size is not None:
        if type(size) is not int or not 0 <= size <= max_metadata_size:
            return Violation(
                f"claims an absurd metadata size: metadata_size {size!r},"
                f" the cap is {max_metadata_size}"
            )
        # libtorrent treats 0 as "no metadata here"; so do we.
        size = size or None
    return ExtHandshake(
        m=m,
        metadata_size=size,
        client=_opt_text(d.get(b"v")),
        reqq=_opt_int(d.get(b"reqq"), 1, 2**31 - 1),
        yourip=_opt_ip(d.get(b"yourip")),
        listen_port=_opt_int(d.get(b"p"), 1, 65535),
    )


def parse_ut_metadata(body: bytes, max_metadata_size: int) -> PeerEvent:
    """A BEP 9 message (after its extension id): its event, or a ``Violation``."""
    try:
        if body[:1] != b"d":
            raise ValueError("not a dict")
        # BEP 9 data messages need the span: their dict is followed by raw bytes.
        end = value_end(body, 0, max_depth=_MAX_BENCODE_DEPTH)
        header = bencode2.bdecode(body[:end])
    except ValueError:
        return Violation("ut_metadata header is not a bencoded dict")
    msg_type = header.get(b"msg_type")
    piece = header.get(b"piece")
    if type(msg_type) is not int or type(piece) is not int:
        return Violation("ut_metadata message without int msg_type and piece")
    if piece < 0:
        return Violation(f"ut_metadata piece {piece} is negative")
    if msg_type == UT_REQUEST:
        return MetadataRequest(piece)
    if msg_type == UT_REJECT:
        return MetadataReject(piece)
    if msg_type != UT_DATA:
        return Ignored(f"ut_metadata msg_type {msg_type}")  # BEP 9: unknown types ignored
    total = header.get(b"total_size")
    if type(total) is not int or not 0 < total <= max_metadata_size:
        return Violation(f"ut_metadata total_size {total!r} is not in 1..cap")
    data = body[end:]
    expected = piece_length(total, piece)
    if expected is None:
        return Violation(f"ut_metadata piece {piece} is beyond total_size {total}")
    if len(data) != expected:
        return Violation(f"ut_metadata piece {piece} is {len(data)} bytes, not {expected}")
    return MetadataData(piece, total, data)


def ext_handshake_message(
    extensions: dict[str, int],
    client_version: str,
    metadata_size: int | None,
    yourip: bytes | None,
    listen_port: int | None,
    reqq: int | None,
) -> bytes:
    """A BEP 10 handshake: ``m`` from ``extensions``, ``v``, and the optional keys given."""
    d: dict[bytes, object] = {
        b"m": {name.encode(): i for name, i in extensions.items()},
        b"v": client_version.encode(),
    }
    if metadata_size is not None:
        d[b"metadata_size"] = metadata_size
    if yourip is not None:
        d[b"yourip"] = yourip
    if listen_port is not None:
        d[b"p"] = listen_port
    if reqq is not None:
        d[b"reqq"] = reqq
    return extended(EXT_HANDSHAKE, bencode2.bencode(d))


def have_all_message(pieces: int, *, fast: bool) -> bytes:
    """BEP 6 have-all when both sides set the fast bit (``fast``), else a BEP 3 bitfield of
    ``pieces`` ones (spare bits zero)."""
    if fast:
        return HEADER.pack(1, MSG_HAVE_ALL)
    body = bytearray(b"\xff" * (pieces // 8))
    if pieces % 8:
        body.append((0xFF << (8 - pieces % 8)) & 0xFF)
    return HEADER.pack(len(body) + 1, MSG_BITFIELD) + bytes(body)


def extended(ext_id: int, payload: bytes) -> bytes:
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
