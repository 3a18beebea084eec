"""``dht.Node``: one UDP socket driving a ``DhtProtocol`` on asyncio.

No protocol logic lives here: each datagram goes to the core with ``loop.time()``; what the
core wants sent is sent, its single timer is kept armed with ``loop.call_at``, and its events
resolve the futures and queues of whoever called ``ping``, ``find_node``, ``get_peers`` or
``announce``. The timer is only re-armed when the core's deadline moves earlier, which keeps
the per-datagram cost low on a busy node.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from dht.bootstrap import DEFAULT_ROUTERS, format_hostport, resolve_routers
from dht.events import (
    BootstrapStalled,
    DhtEvent,
    LookupDone,
    PeersFound,
    QueryAnswered,
    QueryFailed,
)
from dht.protocol import DhtConfig, DhtProtocol
from dht.wire import Addr, NodeContact, Response

__all__ = ["DhtQueryError", "Node", "PeerStream", "run"]

log = logging.getLogger("dht.node")


class DhtQueryError(Exception):
    """A query was not answered (timeout), answered with a KRPC error, or not sent (busy)."""

    def __init__(self, addr: Addr, reason: str) -> None:
        super().__init__(f"{format_hostport(addr)}: {reason}")
        self.addr = addr
        self.reason = reason


class PeerStream:
    """Peers of a get_peers lookup as they arrive: ``async for peer in stream``.

    ``result`` holds the lookup's summary once it has finished (how many nodes were asked
    and answered), which lets a caller explain an empty result.
    """

    def __init__(self, node: Node, request_id: int) -> None:
        self._node = node
        self.request_id = request_id
        self._queue: asyncio.Queue[tuple[Addr, ...] | None] = asyncio.Queue()
        self._buffer: list[Addr] = []
        self.result: LookupDone | None = None

    def _feed(self, peers: tuple[Addr, ...] | None) -> None:
        self._queue.put_nowait(peers)

    def __aiter__(self) -> PeerStream:
        return self

    async def __anext__(self) -> Addr:
        while not self._buffer:
            if self.result is not None and self._queue.empty():
                raise StopAsyncIteration
            batch = await self._queue.get()
            if batch is None:
                continue
            self._buffer.extend(batch)
        return self._buffer.pop(0)

    def cancel(self) -> None:
        if self.result is None:
            self._node._cancel(self.request_id)


class Node(asyncio.DatagramProtocol):
    """A DHT node on one UDP socket (IPv4).

    ``bootstrap_routers`` defaults to the public routers; pass loopback addresses for a
    private DHT. Use ``async with Node(...) as node`` or ``await node.start()`` /
    ``node.close()``.
    """

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 0,
        *,
        node_id: bytes | None = None,
        config: DhtConfig | None = None,
        bootstrap_routers: Sequence[Addr] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._node_id = node_id
        self._config = config or DhtConfig()
        self.routers: tuple[Addr, ...] = (
            DEFAULT_ROUTERS if bootstrap_routers is None else tuple(bootstrap_routers)
        )
        self._rng = rng or random.SystemRandom()
        self._core: DhtProtocol | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._requests: dict[int, asyncio.Future[QueryAnswered]] = {}
        self._lookups: dict[int, asyncio.Future[LookupDone]] = {}
        self._streams: dict[int, PeerStream] = {}
        self._listeners: list[Callable[[DhtEvent], None]] = []
        self.send_errors = 0

    # --- life cycle --------------------------------------------------------------------------

    async def start(self) -> Node:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._core = DhtProtocol(self._node_id, rng=self._rng, now=loop.time(), config=self._config)
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.port))
        return self

    async def __aenter__(self) -> Node:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        futures: list[asyncio.Future[Any]] = [*self._requests.values(), *self._lookups.values()]
        for fut in futures:
            if not fut.done():
                fut.cancel()
        for stream in self._streams.values():
            stream._feed(None)
        self._requests.clear()
        self._lookups.clear()

    @property
    def core(self) -> DhtProtocol:
        if self._core is None:
            raise RuntimeError("node not started")
        return self._core

    @property
    def node_id(self) -> bytes:
        return self.core.node_id

    @property
    def addr(self) -> Addr:
        if self._transport is None:
            raise RuntimeError("node not started")
        sockname = self._transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    def add_listener(self, callback: Callable[[DhtEvent], None]) -> None:
        """Call ``callback`` with every event the core emits (status lines, crawlers)."""
        self._listeners.append(callback)

    # --- asyncio.DatagramProtocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        core = self._core
        if core is None:
            return
        core.receive_datagram(data, (addr[0], addr[1]), self._loop.time())  # type: ignore[union-attr]
        self._flush()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the query will time out; nothing else to do.
        self.send_errors += 1

    # --- driving the core --------------------------------------------------------------------

    def _flush(self) -> None:
        core = self._core
        transport = self._transport
        if core is None or transport is None:
            return
        loop = self._loop
        assert loop is not None
        out = core.datagrams_to_send(0.0)
        if out:
            for data, dst in out:
                try:
                    transport.sendto(data, dst)
                except (OSError, ValueError):
                    self.send_errors += 1
        event = core.next_event()
        while event is not None:
            self._dispatch(event)
            event = core.next_event()
        deadline = core.get_timer()
        if deadline is not None and (self._timer is None or deadline < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        core = self._core
        if core is None or self._loop is None:
            return
        core.handle_timer(self._loop.time())
        self._flush()

    def _dispatch(self, event: DhtEvent) -> None:
        for listener in self._listeners:
            listener(event)
        if isinstance(event, QueryAnswered | QueryFailed):
            fut = self._requests.pop(event.request_id, None)
            if fut is not None and not fut.done():
                if isinstance(event, QueryAnswered):
                    fut.set_result(event)
                else:
                    fut.set_exception(DhtQueryError(event.addr, event.reason))
        elif isinstance(event, PeersFound):
            stream = self._streams.get(event.request_id)
            if stream is not None:
                stream._feed(event.peers)
        elif isinstance(event, LookupDone):
            stream = self._streams.pop(event.request_id, None)
            if stream is not None:
                stream.result = event
                stream._feed(None)
            lfut = self._lookups.pop(event.request_id, None)
            if lfut is not None and not lfut.done():
                lfut.set_result(event)
        elif isinstance(event, BootstrapStalled):
            log.warning(
                "no bootstrap node answered (%d tried, attempt %d); retrying in %.0f s",
                event.routers,
                event.attempt,
                event.retry_in,
            )

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _cancel(self, request_id: int) -> None:
        self.core.cancel(request_id)
        self._streams.pop(request_id, None)
        fut = self._lookups.pop(request_id, None)
        if fut is not None and not fut.done():
            fut.cancel()

    # --- public API ----------------------------------------------------------------------------

    async def query(
        self, addr: Addr, method: bytes, args: dict[bytes, Any] | None = None
    ) -> Response:
        """Send one query and return the response; raises ``DhtQueryError``."""
        rid = self.core.query(addr, method, args or {}, self._now())
        fut: asyncio.Future[QueryAnswered] = asyncio.get_running_loop().create_future()
        self._requests[rid] = fut
        self._flush()
        return (await fut).response

    async def ping(self, addr: Addr) -> QueryAnswered:
        """Ping ``addr``: returns the answer (its id is ``.response.id``, ``.rtt`` seconds)."""
        rid = self.core.ping(addr, self._now())
        fut: asyncio.Future[QueryAnswered] = asyncio.get_running_loop().create_future()
        self._requests[rid] = fut
        self._flush()
        return await fut

    async def _run_lookup(self, rid: int) -> LookupDone:
        fut: asyncio.Future[LookupDone] = asyncio.get_running_loop().create_future()
        self._lookups[rid] = fut
        self._flush()
        try:
            return await fut
        finally:
            if not fut.done():
                self._cancel(rid)

    async def find_node(self, target: bytes) -> list[NodeContact]:
        """Iterative find_node: the K closest nodes to ``target`` that answered."""
        done = await self._run_lookup(self.core.find_node(target, self._now()))
        return list(done.nodes)

    def get_peers(self, info_hash: bytes, *, seeds: Sequence[Addr] = ()) -> PeerStream:
        """Iterative get_peers: ``async for peer in node.get_peers(h)`` yields peers as found.

        ``seeds`` are extra starting points (e.g. resolved routers), asked first: a one-shot
        client can walk straight to the info-hash without filling its table beforehand.
        """
        rid = self.core.get_peers(info_hash, self._now(), seeds=seeds)
        stream = PeerStream(self, rid)
        self._streams[rid] = stream
        self._flush()
        return stream

    async def announce(self, info_hash: bytes, port: int, *, implied_port: bool = False) -> int:
        """Announce that we have ``info_hash`` on ``port``. Returns how many nodes took it."""
        rid = self.core.announce(info_hash, port, self._now(), implied_port=implied_port)
        return (await self._run_lookup(rid)).announced

    async def bootstrap(self, routers: Sequence[Addr] | None = None) -> int:
        """Join the DHT through ``routers`` (default: this node's). Returns the table size."""
        names = tuple(routers) if routers is not None else self.routers
        addrs = await resolve_routers(names)
        if not addrs and names:
            log.warning("none of the %d bootstrap routers resolved", len(names))
        await self._run_lookup(self.core.bootstrap(addrs, self._now()))
        return len(self.core.routing)

    def add_node(self, addr: Addr) -> None:
        """Ping ``addr``; if it answers it joins the routing table."""
        self.core.add_node(addr, self._now())
        self._flush()


def run(main: Any, *, fast: bool = True) -> Any:
    """Run a coroutine on uvloop when it is installed and ``fast``, else on asyncio."""
    if fast:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
