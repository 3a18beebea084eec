"""A receive buffer for byte-stream protocols: bytes received and not yet parsed.

The peer wire (``magnet.peerwire``) cuts whole handshakes and length-prefixed messages off the
front of it; a bytearray and a read offset make reading many small messages cost linear,
not quadratic, copying.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["ReceiveBuffer"]

_UINT32 = struct.Struct(">I")


class ReceiveBuffer:
    """Bytes received and not yet parsed: a bytearray plus a read offset.

    Consumed bytes are cut off in bulk, only when they are at least half of the buffer,
    so reading many small messages costs linear, not quadratic, copying.
    """

    __slots__ = ("_data", "_start")

    _COMPACT_BYTES: Final = 65536

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0

    def __len__(self) -> int:
        return len(self._data) - self._start

    def feed(self, data: bytes) -> None:
        self._data += data

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes from the front, without consuming them."""
        return bytes(self._data[self._start : self._start + n])

    def uint32(self) -> int:
        """The big-endian uint32 at the front (caller checked that 4 bytes are there)."""
        value: int = _UINT32.unpack_from(self._data, self._start)[0]
        return value

    def take(self, n: int) -> bytes:
        """Remove and return exactly ``n`` bytes (caller checked that they are there)."""
        start = self._start
        chunk = bytes(self._data[start : start + n])
        self._start = start + n
        if self._start == len(self._data):
            self._data.clear()
            self._start = 0
        elif self._start >= self._COMPACT_BYTES and self._start * 2 >= len(self._data):
            del self._data[: self._start]
            self._start = 0
        return chunk
