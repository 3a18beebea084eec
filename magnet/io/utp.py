"""uTP over asyncio: one UDP socket driving a `magnet.utp.UtpSocket` core, streams out.

`UtpEndpoint` is the only place uTP meets the event loop. Each datagram goes to the core
(or, when it is not uTP, to ``on_datagram``: libtorrent shares the port with the DHT), then
the endpoint sends what the core has due, hands each connection's events to its stream,
and re-arms its one ``loop.call_at`` timer. The deadline handed back to the core is never
earlier than the one it asked for, so its clock never runs backwards.

Connections surface as ordinary asyncio ``(StreamReader, StreamWriter)`` pairs, so peer-wire
code written for TCP runs over uTP unchanged: `open_connection` dials, ``on_connection``
receives incoming ones (as ``asyncio.start_server`` does). ``writer.write_eof()`` or
``close()`` sends ST_FIN after the queued bytes. A reader that stops reading stops taking
events from its connection, so the core's advertised window closes: real back-pressure.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from magnet.utp import (
    Connected,
    ConnectionReset,
    ConnectionTimedOut,
    DataReceived,
    EndOfStream,
    State,
    UtpConfig,
    UtpConnection,
    UtpSocket,
    is_utp,
)

__all__ = ["UtpEndpoint"]

Addr = tuple[str, int]
StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]
ConnectionHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]

_WRITE_HIGH_WATER = 256 * 1024


class _UtpTransport(asyncio.Transport):
    """The asyncio face of one `UtpConnection`: bytes in through the core, events out."""

    def __init__(self, endpoint: UtpEndpoint, conn: UtpConnection, peer: Addr) -> None:
        super().__init__({"peername": peer, "sockname": endpoint.local_address})
        self._endpoint = endpoint
        self.conn = conn
        self.protocol: asyncio.StreamReaderProtocol | None = None
        self._backlog = bytearray()  # bytes the core's send buffer has no room for yet
        self._write_paused = False
        self.reading_paused = False
        self._closing = False
        self._lost = False

    # asyncio.Transport ----------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._lost:
            return
        self._backlog += data
        self.pump()
        self._endpoint.flush()

    def write_eof(self) -> None:
        if not self._closing:
            self._closing = True
            self.pump()
            self._endpoint.flush()

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.write_eof()

    def abort(self) -> None:
        self._closing = True
        self._backlog.clear()
        self.conn.abort()
        self._endpoint.flush()
        self.lost(ConnectionAbortedError("uTP connection aborted"))

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def get_write_buffer_size(self) -> int:
        return len(self._backlog)

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            self._endpoint.flush()

    def is_reading(self) -> bool:
        return not self.reading_paused

    # endpoint side --------------------------------------------------------------
    def pump(self) -> None:
        """Move backlog into the core as its send buffer frees; FIN once all is in."""
        conn = self.conn
        if conn.state in (State.CLOSED, State.RESET):
            self._backlog.clear()
        elif self._backlog and conn.state is not State.IDLE:
            room = min(conn.writable(), len(self._backlog))
            if room:
                conn.send(bytes(self._backlog[:room]))
                del self._backlog[:room]
        if self._closing and not self._backlog:
            conn.close()
        if self.protocol is None:
            return
        if not self._write_paused and len(self._backlog) > _WRITE_HIGH_WATER:
            self._write_paused = True
            self.protocol.pause_writing()
        elif self._write_paused and not self._backlog:
            self._write_paused = False
            self.protocol.resume_writing()

    def lost(self, exc: Exception | None) -> None:
        if not self._lost:
            self._lost = True
            if self.protocol is not None:
                self.protocol.connection_lost(exc)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, endpoint: UtpEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.endpoint.datagram_received(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        self.endpoint.send_errors += 1


class UtpEndpoint:
    """uTP connections over one UDP port. Build it with ``await UtpEndpoint.create(...)``."""

    def __init__(
        self,
        core: UtpSocket,
        *,
        on_connection: ConnectionHandler | None = None,
        on_datagram: Callable[[bytes, Addr], None] | None = None,
    ) -> None:
        self.core = core
        self.loop = asyncio.get_running_loop()
        self.on_connection = on_connection
        self.on_datagram = on_datagram
        self.send_errors = 0
        self.local_address: Addr = ("", 0)
        self._udp: asyncio.DatagramTransport | None = None
        self._transports: dict[UtpConnection, _UtpTransport] = {}
        self._connecting: dict[UtpConnection, asyncio.Future[None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._tasks: set[asyncio.Future[None]] = set()

    @classmethod
    async def create(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        rng: random.Random | None = None,
        config: UtpConfig | None = None,
        on_connection: ConnectionHandler | None = None,
        on_datagram: Callable[[bytes, Addr], None] | None = None,
    ) -> UtpEndpoint:
        """Bind ``host:port`` (UDP) and start serving; incoming uTP only with a handler."""
        core = UtpSocket(
            rng=rng or random.SystemRandom(),
            config=config,
            accept_incoming=on_connection is not None,
        )
        endpoint = cls(core, on_connection=on_connection, on_datagram=on_datagram)
        transport, _ = await endpoint.loop.create_datagram_endpoint(
            lambda: _Datagrams(endpoint), local_addr=(host, port)
        )
        endpoint._udp = transport
        sockname = transport.get_extra_info("sockname")
        endpoint.local_address = (sockname[0], sockname[1])
        return endpoint

    async def open_connection(self, host: str, port: int, *, timeout: float = 10.0) -> StreamPair:
        """Dial ``host:port`` over uTP; raise ``TimeoutError`` or ``ConnectionError``."""
        conn = self.core.connect((host, port), self.loop.time())
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._connecting[conn] = waiter
        reader, writer = self._attach(conn, (host, port))
        self.flush()
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except BaseException:
            self._connecting.pop(conn, None)
            writer.transport.abort()
            raise
        return reader, writer

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        if not is_utp(data):
            if self.on_datagram is not None:
                self.on_datagram(data, addr)
            return
        conn = self.core.receive_datagram(data, addr, self.loop.time())
        # A new incoming connection: fresh from its SYN (a lingering closed one is not).
        fresh = conn is not None and not conn.initiator and conn.state is State.SYN_RECV
        if conn is not None and fresh and conn not in self._transports and self.on_connection:
            reader, writer = self._attach(conn, addr)
            result = self.on_connection(reader, writer)
            if result is not None:
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self.flush()

    def flush(self) -> None:
        """Send what is due, deliver events, re-arm the timer."""
        if self._udp is None:
            return
        for transport in self._transports.values():
            transport.pump()
        for data, addr in self.core.datagrams_to_send(self.loop.time()):
            try:
                self._udp.sendto(data, addr)
            except (OSError, ValueError):
                self.send_errors += 1
        for conn, transport in list(self._transports.items()):
            if not transport.reading_paused:
                self._deliver(conn, transport)
        self._arm_timer()

    def _deliver(self, conn: UtpConnection, transport: _UtpTransport) -> None:
        protocol = transport.protocol
        while (event := conn.next_event()) is not None:
            if isinstance(event, Connected):
                waiter = self._connecting.pop(conn, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif isinstance(event, DataReceived) and protocol is not None:
                protocol.data_received(event.data)
                if transport.reading_paused:
                    break
            elif isinstance(event, EndOfStream) and protocol is not None:
                protocol.eof_received()
            elif isinstance(event, ConnectionReset | ConnectionTimedOut):
                exc: Exception = (
                    ConnectionResetError("uTP peer reset the connection")
                    if isinstance(event, ConnectionReset)
                    else TimeoutError("uTP peer stopped answering")
                )
                waiter = self._connecting.pop(conn, None)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(exc)
                transport.lost(exc)
        if conn.state in (State.CLOSED, State.RESET) and not transport.reading_paused:
            # Done for the stream; the core lingers on its own to re-ack a late FIN.
            transport.lost(None)
            del self._transports[conn]

    def _attach(self, conn: UtpConnection, peer: Addr) -> StreamPair:
        # asyncio's own default limit (64 KiB): past twice that the reader pauses us, we
        # stop taking events, and the core's advertised window closes.
        reader = asyncio.StreamReader(loop=self.loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=self.loop)
        transport = _UtpTransport(self, conn, peer)
        transport.protocol = protocol
        self._transports[conn] = transport
        protocol.connection_made(transport)
        return reader, asyncio.StreamWriter(transport, protocol, reader, self.loop)

    def _arm_timer(self) -> None:
        deadline = self.core.get_timer()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.core.handle_timer(max(self._timer_at, self.loop.time()))
        self.flush()

    def close(self) -> None:
        """Reset every connection and release the UDP socket."""
        for transport in list(self._transports.values()):
            transport.conn.abort()
        if self._udp is not None:
            for data, addr in self.core.datagrams_to_send(self.loop.time()):
                self._udp.sendto(data, addr)
            self._udp.close()
            self._udp = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for transport in list(self._transports.values()):
            transport.lost(ConnectionAbortedError("uTP endpoint closed"))
        self._transports.clear()
