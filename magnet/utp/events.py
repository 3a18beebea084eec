"""What a uTP connection tells its owner (`UtpConnection.next_event`), and the caller-misuse error.

Stream facts only, in the order they happened: the handshake finished, bytes arrived in
order, the peer finished its stream (BEP 29 ST_FIN), or the connection ended abnormally
(ST_RESET received, or the peer stopped answering). After `ConnectionReset` or
`ConnectionTimedOut` nothing more comes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Connected",
    "ConnectionReset",
    "ConnectionTimedOut",
    "DataReceived",
    "EndOfStream",
    "UtpEvent",
    "UtpUsageError",
]


@dataclass(frozen=True, slots=True)
class Connected:
    """The handshake is done (initiator: our SYN was answered; acceptor: the SYN arrived)."""


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Stream bytes, in order."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The peer's ST_FIN and everything before it arrived: no more bytes will come."""


@dataclass(frozen=True, slots=True)
class ConnectionReset:
    """The peer sent ST_RESET: it has no state for this connection."""


@dataclass(frozen=True, slots=True)
class ConnectionTimedOut:
    """The peer stopped acknowledging: retransmissions ran out (BEP 29 "timeouts")."""


UtpEvent = Connected | DataReceived | EndOfStream | ConnectionReset | ConnectionTimedOut


class UtpUsageError(RuntimeError):
    """The caller used a connection wrongly (send after close, connect twice, ...)."""
