"""Events and errors of the peer wire connection (`magnet.peerwire`).

What `PeerConnection.next_event` hands back: one frozen dataclass per fact learned from
the peer (BEP 3 handshake, BEP 10 extension handshake, BEP 9 ut_metadata messages, the
BEP 5 PORT message, and the BEP 52 hash messages, which are `magnet.hashmsgs`' own frozen
dataclasses), `Ignored` for well-framed messages we do not act on, and the two terminal
events, `Violation` and `ConnectionClosed`. `magnet.peerwire` re-exports them all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from magnet.hashmsgs import Hashes, HashReject, HashRequest

__all__ = [
    "NEED_DATA",
    "ConnectionClosed",
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
    "PeerEvent",
    "Violation",
]


class NeedData(enum.Enum):
    """Type of the `NEED_DATA` sentinel (an enum so that ``is NEED_DATA`` narrows types)."""

    NEED_DATA = "NEED_DATA"


#: Returned by `PeerConnection.next_event` when no whole event is buffered yet.
NEED_DATA: Final = NeedData.NEED_DATA


class LocalProtocolError(Exception):
    """The caller used the connection wrongly (sent out of order, or after the end)."""


@dataclass(frozen=True, slots=True)
class HandshakeReceived:
    """The peer's BEP 3 handshake arrived."""

    info_hash: bytes
    peer_id: bytes
    reserved: bytes

    @property
    def supports_extensions(self) -> bool:
        """BEP 10 extension protocol bit."""
        return bool(self.reserved[5] & 0x10)

    @property
    def supports_dht(self) -> bool:
        """BEP 5 DHT bit: the peer may send a PORT message."""
        return bool(self.reserved[7] & 0x01)

    @property
    def supports_fast(self) -> bool:
        """BEP 6 fast extension bit."""
        return bool(self.reserved[7] & 0x04)

    @property
    def supports_v2(self) -> bool:
        """BEP 52 bit: the peer speaks v2 (hash messages; a hybrid's v2 info-hash)."""
        return bool(self.reserved[7] & 0x10)


@dataclass(frozen=True, slots=True)
class ExtHandshake:
    """A BEP 10 extension handshake (id 0); ``m`` is this message's map, 0 = disabled."""

    m: dict[str, int]
    metadata_size: int | None
    client: str | None
    reqq: int | None
    yourip: bytes | None
    listen_port: int | None


@dataclass(frozen=True, slots=True)
class MetadataRequest:
    """BEP 9 msg_type 0: the peer asks for a piece of the info dict."""

    piece: int


@dataclass(frozen=True, slots=True)
class MetadataData:
    """BEP 9 msg_type 1: a piece of the info dict (length checked against ``total_size``)."""

    piece: int
    total_size: int
    data: bytes


@dataclass(frozen=True, slots=True)
class MetadataReject:
    """BEP 9 msg_type 2: the peer will not send that piece."""

    piece: int


@dataclass(frozen=True, slots=True)
class DhtPort:
    """BEP 5 PORT message: the peer runs a DHT node on this UDP port."""

    port: int


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-framed message we do not act on; ``kind`` names it (e.g. "bitfield")."""

    kind: str


@dataclass(frozen=True, slots=True)
class Violation:
    """The peer broke the protocol; the connection is over. ``reason`` is for humans."""

    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the stream cleanly, between messages."""


PeerEvent = (
    HandshakeReceived
    | ExtHandshake
    | MetadataRequest
    | MetadataData
    | MetadataReject
    | DhtPort
    | HashRequest
    | Hashes
    | HashReject
    | Ignored
    | Violation
    | ConnectionClosed
)
