"""``Fetcher.close`` when a stream tells its protocol at once that it is gone.

A dialled stream with no connection under it (a race between attempts) ends by calling its
protocol's ``connection_lost`` synchronously from ``abort``. ``close`` used to iterate over
its open connections while that callback removed one from them: a resolve that timed out
with such a peer ended in "RuntimeError: dictionary changed size during iteration" (seen
in the WAN lab) instead of its one-line explanation.
"""

from __future__ import annotations

import asyncio
import os

from magnet.io.resolve import Fetcher, _PeerProtocol
from magnet.resolution import Resolution


class _AbortTellsAtOnce(asyncio.Transport):
    def __init__(self, proto: _PeerProtocol) -> None:
        super().__init__()
        self.proto = proto
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True
        self.proto.connection_lost(None)  # synchronously, as the dial race's stream does


def test_close_survives_protocols_that_leave_while_being_aborted() -> None:
    async def main() -> list[bool]:
        res = Resolution(os.urandom(20), peer_id=os.urandom(20), encryption="off")
        fetcher = Fetcher(res, lambda: None)
        transports = []
        for port in (6881, 6882, 6883):
            addr = ("127.0.0.1", port)
            proto = _PeerProtocol(fetcher, addr)
            proto.transport = _AbortTellsAtOnce(proto)
            transports.append(proto.transport)
            fetcher._open[addr] = proto
        fetcher.close()
        return [t.aborted for t in transports]

    assert asyncio.run(asyncio.wait_for(main(), 10)) == [True, True, True]
