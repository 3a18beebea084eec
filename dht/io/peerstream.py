"""``PeerStream``: the peers of a ``dht.Node`` get_peers lookup, as an async iterator.

The node feeds it batches as the cores report them; it ends when the lookup of every DHT
family the node is in has ended (or the caller cancels).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dht.events import LookupDone
from dht.wire import Addr

if TYPE_CHECKING:
    from dht.io.node import Node

__all__ = ["PeerStream"]


class PeerStream:
    """Peers of a get_peers lookup as they arrive: ``async for peer in stream``.

    A dual-stack node runs one lookup per family; the stream ends when all have. ``result``
    holds a summary once finished (how many nodes were asked and answered), which lets a
    caller explain an empty result.
    """

    def __init__(self, node: Node, request_ids: Sequence[int]) -> None:
        self._node = node
        self.request_ids = list(request_ids)
        self._open = set(request_ids)
        self._queue: asyncio.Queue[tuple[Addr, ...] | None] = asyncio.Queue()
        self._buffer: list[Addr] = []
        self._done: list[LookupDone] = []
        self.result: LookupDone | None = None

    def _feed(self, peers: tuple[Addr, ...]) -> None:
        self._queue.put_nowait(peers)

    def _finished(self, done: LookupDone | None) -> None:
        if done is not None:
            self._open.discard(done.request_id)
            self._done.append(done)
        else:
            self._open.clear()
        if not self._open:
            first = self._done[0] if self._done else None
            if first is not None:
                self.result = LookupDone(
                    first.request_id,
                    first.kind,
                    first.target,
                    tuple(n for d in self._done for n in d.nodes),
                    sum(d.queried for d in self._done),
                    sum(d.replied for d in self._done),
                    sum(d.peers for d in self._done),
                    sum(d.announced for d in self._done),
                    any(d.timed_out for d in self._done),
                )
            self._queue.put_nowait(None)

    @property
    def finished(self) -> bool:
        return not self._open

    def __aiter__(self) -> PeerStream:
        return self

    async def __anext__(self) -> Addr:
        while not self._buffer:
            if not self._open and self._queue.empty():
                raise StopAsyncIteration
            batch = await self._queue.get()
            if batch is not None:
                self._buffer.extend(batch)
        return self._buffer.pop(0)

    def cancel(self) -> None:
        if self._open:
            for rid in list(self._open):
                self._node._cancel(rid)
            self._finished(None)
