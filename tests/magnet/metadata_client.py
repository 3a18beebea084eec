"""An honest BEP 9 client over any asyncio stream: the serve tests' and benchmarks' yardstick."""

from __future__ import annotations

import asyncio
import os

from magnet.metadata import METADATA_PIECE
from magnet.peerwire import NEED_DATA, ExtHandshake, MetadataData, PeerConnection


async def fetch_metadata(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    info_hash: bytes,
    read_timeout: float | None = 10.0,
) -> bytes:
    """Handshake, extension handshake, every metadata piece; the info dict back. Raises
    ConnectionError when the server hangs up first."""
    conn = PeerConnection(info_hash, os.urandom(20))
    writer.write(conn.send_handshake() + conn.send_ext_handshake())
    pieces: dict[int, bytes] = {}
    size = 0
    while not size or len(pieces) * METADATA_PIECE < size:
        data = await asyncio.wait_for(reader.read(65536), read_timeout)
        if not data:
            raise ConnectionError("server hung up on an honest client")
        conn.receive_data(data)
        while (ev := conn.next_event()) is not NEED_DATA:
            if isinstance(ev, ExtHandshake):
                size = ev.metadata_size or 0
                count = -(-size // METADATA_PIECE)
                writer.write(b"".join(conn.send_metadata_request(i) for i in range(count)))
            elif isinstance(ev, MetadataData):
                pieces[ev.piece] = ev.data
    return b"".join(pieces[i] for i in sorted(pieces))
