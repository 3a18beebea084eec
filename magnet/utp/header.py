"""The uTP packet on the wire (BEP 29): the 20-byte header, its extension chain, 16-bit sequences.

Every uTP datagram is one packet: a fixed header (type and version in one byte, the first
extension's type, connection_id, the sender's microsecond timestamp, the difference it last
measured, its receive window, seq_nr, ack_nr), then a chain of extensions, then payload.
Each extension is (type of the *next* extension, length, body); we understand selective ACK
(type 1, a bitmask whose bit i of byte j acks ``ack_nr + 2 + 8*j + i``) and skip the rest.

`parse` raises only `UtpError`, whatever the bytes: callers drop the datagram and count it.
Sequence and ack numbers wrap at 16 bits; `seq_lt` / `seq_add` do that arithmetic.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "EXT_SACK",
    "HEADER_SIZE",
    "MAX_SACK_BYTES",
    "SEQ_MASK",
    "ST_DATA",
    "ST_FIN",
    "ST_RESET",
    "ST_STATE",
    "ST_SYN",
    "VERSION",
    "Packet",
    "UtpError",
    "encode",
    "parse",
    "seq_add",
    "seq_diff",
    "seq_lt",
]

# Packet types (BEP 29 "type").
ST_DATA: Final = 0
ST_FIN: Final = 1
ST_STATE: Final = 2
ST_RESET: Final = 3
ST_SYN: Final = 4
_MAX_TYPE: Final = ST_SYN

VERSION: Final = 1
HEADER_SIZE: Final = 20
EXT_SACK: Final = 1
# A selective ACK longer than this is never sent by us and never needed from a peer whose
# reorder window we bound the same way; the length byte alone would allow 255.
MAX_SACK_BYTES: Final = 32

SEQ_MASK: Final = 0xFFFF
_HALF: Final = 0x8000
_U32: Final = 0xFFFFFFFF

_HEADER = struct.Struct("!BBHIIIHH")


class UtpError(ValueError):
    """A datagram that is not a well-formed uTP version 1 packet."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One decoded uTP packet. ``sack`` is the raw selective-ACK bitmask, if one was sent."""

    type: int
    connection_id: int
    timestamp_us: int
    timestamp_difference_us: int
    wnd_size: int
    seq_nr: int
    ack_nr: int
    sack: bytes | None = None
    payload: bytes = b""

    def sacked(self) -> list[int]:
        """Sequence numbers the selective ACK names, in increasing order (BEP 29)."""
        if not self.sack:
            return []
        base = self.ack_nr + 2
        return [
            (base + 8 * j + i) & SEQ_MASK
            for j, byte in enumerate(self.sack)
            if byte
            for i in range(8)
            if byte >> i & 1
        ]


def parse(data: bytes) -> Packet:
    """Decode one datagram.

    :param data: the whole UDP payload.
    :returns: the packet, with unknown extensions skipped.
    :raises UtpError: short datagram, wrong version, unknown type, an extension chain that
        runs past the datagram, or a selective ACK of an absurd length.
    """
    if len(data) < HEADER_SIZE:
        raise UtpError(f"datagram of {len(data)} bytes is shorter than the uTP header")
    type_ver, extension, conn_id, ts, ts_diff, wnd, seq_nr, ack_nr = _HEADER.unpack_from(data)
    if type_ver & 0x0F != VERSION:
        raise UtpError(f"uTP version {type_ver & 0x0F}, only {VERSION} is spoken")
    ptype = type_ver >> 4
    if ptype > _MAX_TYPE:
        raise UtpError(f"unknown uTP packet type {ptype}")
    offset = HEADER_SIZE
    sack: bytes | None = None
    while extension:
        if offset + 2 > len(data):
            raise UtpError("extension header runs past the datagram")
        next_extension, length = data[offset], data[offset + 1]
        offset += 2
        if offset + length > len(data):
            raise UtpError(f"extension of {length} bytes runs past the datagram")
        if extension == EXT_SACK:
            if length == 0 or length % 4 or length > MAX_SACK_BYTES:
                raise UtpError(f"selective ACK of {length} bytes (want 4..32, a multiple of 4)")
            if sack is None:
                sack = bytes(data[offset : offset + length])
        offset += length
        extension = next_extension
    return Packet(
        type=ptype,
        connection_id=conn_id,
        timestamp_us=ts,
        timestamp_difference_us=ts_diff,
        wnd_size=wnd,
        seq_nr=seq_nr,
        ack_nr=ack_nr,
        sack=sack,
        payload=bytes(data[offset:]),
    )


def encode(packet: Packet) -> bytes:
    """The datagram for ``packet``; the selective ACK, if any, is the only extension."""
    sack = packet.sack
    head = _HEADER.pack(
        packet.type << 4 | VERSION,
        EXT_SACK if sack else 0,
        packet.connection_id & SEQ_MASK,
        packet.timestamp_us & _U32,
        packet.timestamp_difference_us & _U32,
        max(0, min(packet.wnd_size, _U32)),
        packet.seq_nr & SEQ_MASK,
        packet.ack_nr & SEQ_MASK,
    )
    if sack:
        return b"".join((head, bytes((0, len(sack))), sack, packet.payload))
    return head + packet.payload if packet.payload else head


def seq_add(seq: int, n: int) -> int:
    """``seq + n`` on the 16-bit sequence circle."""
    return (seq + n) & SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """Signed distance from ``b`` to ``a`` (``a - b``), in -32768..32767."""
    d = (a - b) & SEQ_MASK
    return d - 0x10000 if d >= _HALF else d


def seq_lt(a: int, b: int) -> bool:
    """Whether ``a`` comes before ``b`` on the circle (within half of it)."""
    return seq_diff(a, b) < 0
