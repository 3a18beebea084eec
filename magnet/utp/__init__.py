"""uTP, the Micro Transport Protocol (BEP 29), as a sans-IO core.

`header` owns the wire format, `ledbat` the congestion window, `connection` one stream's
state machine, `mux` the demultiplexing of many streams over one UDP port. Drivers (asyncio,
the simulator) feed them datagrams and ``now`` and send what they hand back.
"""

from magnet.utp.connection import State, UtpConfig, UtpConnection
from magnet.utp.events import (
    Connected,
    ConnectionReset,
    ConnectionTimedOut,
    DataReceived,
    EndOfStream,
    UtpEvent,
    UtpUsageError,
)
from magnet.utp.header import Packet, UtpError
from magnet.utp.mux import UtpSocket, is_utp

__all__ = [
    "Connected",
    "ConnectionReset",
    "ConnectionTimedOut",
    "DataReceived",
    "EndOfStream",
    "Packet",
    "State",
    "UtpConfig",
    "UtpConnection",
    "UtpError",
    "UtpEvent",
    "UtpSocket",
    "UtpUsageError",
    "is_utp",
]
