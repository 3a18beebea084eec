"""uTP over asyncio: one UDP socket driving a `magnet.utp.UtpSocket` core, streams out.

`UtpEndpoint` is the only place uTP meets the event loop. Each datagram goes to the core
(or, when it is not uTP, to ``on_datagram``: libtorrent shares the port with the DHT), then
the endpoint sends what the core has due, hands each connection's events to its stream,
and re-arms its one ``loop.call_at`` timer. The deadline handed back to the core is never
earlier than the one it asked for, so its clock never runs backwards.

Connections surface as ordinary asyncio ``(StreamReader, StreamWriter)`` pairs, so peer-wire
code written for TCP runs over uTP unchanged: `open_connection` dials, ``on_connection``
receives incoming ones (as ``asyncio.start_server`` does). Code written as an
``asyncio.Protocol`` uses `create_connection` and ``protocol_factory`` instead, as with
``loop.create_connection`` and ``loop.create_server``. ``writer.write_eof()`` or
``close()`` sends ST_FIN after the queued bytes. A reader that stops reading stops taking
events from its connection, so the core's advertised window closes: real back-pressure.

The endpoint binds its own UDP socket (`create`) or rides one that a DHT node owns
(`attach`): the node hands over every datagram that is not KRPC, and uTP sends through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
ProtocolFactory = Callable[[], asyncio.Protocol]
SendTo = Callable[[bytes, Addr], None]

_WRITE_HIGH_WATER = 256 * 1024

log = logging.getLogger("magnet.io.utp")


class _UtpTransport(asyncio.Transport):
    """The asyncio face of one `UtpConnection`: bytes in through the core, events out."""

    def __init__(self, endpoint: UtpEndpoint, conn: UtpConnection, peer: Addr) -> None:
        super().__init__({"peername": peer, "sockname": endpoint.local_address})
        self._endpoint = endpoint
        self.conn = conn
        self.protocol: asyncio.Protocol | None = None
        self._high_water = _WRITE_HIGH_WATER
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

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        # Only the high mark matters here: writing resumes once the backlog is empty.
        self._high_water = _WRITE_HIGH_WATER if high is None else high

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, self._high_water)

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
        if not self._write_paused and len(self._backlog) > self._high_water:
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

    def start(self, protocol: asyncio.Protocol) -> None:
        """Hand the connection to ``protocol`` (its ``connection_made`` runs now)."""
        self.protocol = protocol
        protocol.connection_made(self)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, endpoint: UtpEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.endpoint.datagram_received(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        self.endpoint.send_errors += 1


class UtpEndpoint:
    """uTP connections over one UDP port: ``await UtpEndpoint.create(...)`` binds its own
    socket, `attach` shares another's (a DHT node's)."""

    def __init__(
        self,
        core: UtpSocket,
        *,
        on_connection: ConnectionHandler | None = None,
        protocol_factory: ProtocolFactory | None = None,
        on_datagram: Callable[[bytes, Addr], None] | None = None,
    ) -> None:
        self.core = core
        self.loop = asyncio.get_running_loop()
        self.on_connection = on_connection
        self.protocol_factory = protocol_factory
        self.on_datagram = on_datagram
        self.send_errors = 0
        self.internal_errors = 0
        self.local_address: Addr = ("", 0)
        self._udp: asyncio.DatagramTransport | None = None  # ours to close (from `create`)
        self._sendto: SendTo | None = None
        self._transports: dict[UtpConnection, _UtpTransport] = {}
        self._connecting: dict[UtpConnection, asyncio.Future[None]] = {}
        # Dialled with `create_connection`: the protocol to start once the peer answers.
        self._pending: dict[UtpConnection, ProtocolFactory] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._flushing = False
        self._flush_again = False
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
        protocol_factory: ProtocolFactory | None = None,
        on_datagram: Callable[[bytes, Addr], None] | None = None,
    ) -> UtpEndpoint:
        """Bind ``host:port`` (UDP) and start serving; incoming uTP only with a handler
        (``on_connection`` for stream pairs, or ``protocol_factory``)."""
        endpoint = cls._new(rng, config, on_connection, protocol_factory, on_datagram)
        transport, _ = await endpoint.loop.create_datagram_endpoint(
            lambda: _Datagrams(endpoint), local_addr=(host, port)
        )
        endpoint._udp = transport
        endpoint._sendto = transport.sendto
        sockname = transport.get_extra_info("sockname")
        endpoint.local_address = (sockname[0], sockname[1])
        return endpoint

    @classmethod
    def attach(
        cls,
        sendto: SendTo,
        local_address: Addr,
        *,
        rng: random.Random | None = None,
        config: UtpConfig | None = None,
        on_connection: ConnectionHandler | None = None,
        protocol_factory: ProtocolFactory | None = None,
    ) -> UtpEndpoint:
        """uTP over a socket someone else owns: they pass its uTP datagrams to
        `datagram_received`; we send through ``sendto``. `close` leaves the socket open."""
        endpoint = cls._new(rng, config, on_connection, protocol_factory, None)
        endpoint._sendto = sendto
        endpoint.local_address = local_address
        return endpoint

    @classmethod
    def _new(
        cls,
        rng: random.Random | None,
        config: UtpConfig | None,
        on_connection: ConnectionHandler | None,
        protocol_factory: ProtocolFactory | None,
        on_datagram: Callable[[bytes, Addr], None] | None,
    ) -> UtpEndpoint:
        core = UtpSocket(
            rng=rng or random.SystemRandom(),
            config=config,
            accept_incoming=on_connection is not None or protocol_factory is not None,
        )
        return cls(
            core,
            on_connection=on_connection,
            protocol_factory=protocol_factory,
            on_datagram=on_datagram,
        )

    async def open_connection(self, host: str, port: int, *, timeout: float = 10.0) -> StreamPair:
        """Dial ``host:port`` over uTP; raise ``TimeoutError`` or ``ConnectionError``."""
        conn = self.core.connect((host, port), self.loop.time())
        reader, writer = self._attach(conn, (host, port))
        await self._await_connected(conn, timeout)
        return reader, writer

    async def create_connection(
        self, protocol_factory: ProtocolFactory, host: str, port: int, *, timeout: float = 10.0
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        """Dial ``host:port`` over uTP, as ``loop.create_connection`` does over TCP: the
        protocol is made (and its ``connection_made`` called) once the peer has answered."""
        conn = self.core.connect((host, port), self.loop.time())
        transport = _UtpTransport(self, conn, (host, port))
        self._transports[conn] = transport
        self._pending[conn] = protocol_factory
        await self._await_connected(conn, timeout)
        assert transport.protocol is not None  # started by the Connected event
        return transport, transport.protocol

    async def _await_connected(self, conn: UtpConnection, timeout: float) -> None:
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._connecting[conn] = waiter
        self.flush()
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except BaseException:
            self._connecting.pop(conn, None)
            self._pending.pop(conn, None)
            transport = self._transports.get(conn)
            if transport is not None:
                transport.abort()
            else:
                conn.abort()
                self.flush()
            raise

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        try:
            self._received(data, addr)
        except Exception:  # the one boundary per datagram: a bug costs that datagram only
            self.internal_errors += 1
            if self.internal_errors & (self.internal_errors - 1) == 0:  # 1st, 2nd, 4th, ...
                log.exception("uTP datagram from %s dropped (internal error)", addr[0])

    def _received(self, data: bytes, addr: Addr) -> None:
        if not is_utp(data):
            if self.on_datagram is not None:
                self.on_datagram(data, addr)
            return
        conn = self.core.receive_datagram(data, addr, self.loop.time())
        # A new incoming connection: fresh from its SYN (a lingering closed one is not).
        fresh = (
            conn is not None
            and not conn.initiator
            and conn.state is State.SYN_RECV
            and conn not in self._transports
        )
        if conn is not None and fresh and self.protocol_factory is not None:
            transport = _UtpTransport(self, conn, addr)
            self._transports[conn] = transport
            transport.start(self.protocol_factory())
        elif conn is not None and fresh and self.on_connection is not None:
            reader, writer = self._attach(conn, addr)
            result = self.on_connection(reader, writer)
            if result is not None:
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self.flush()

    def flush(self) -> None:
        """Send what is due, deliver events, re-arm the timer.

        Not re-entered: a protocol that writes from ``data_received`` (a server answering a
        request) calls back in here; that call only asks the running one for another round,
        or each queued event would nest one level deeper (a RecursionError once a peer's
        requests piled up while its replies could not go out)."""
        if self._flushing:
            self._flush_again = True
            return
        self._flushing = True
        try:
            self._flush_again = True
            while self._flush_again and self._sendto is not None:
                self._flush_again = False
                self._flush_once(self._sendto)
        finally:
            self._flushing = False

    def _flush_once(self, sendto: SendTo) -> None:
        for transport in list(self._transports.values()):
            transport.pump()
        for data, addr in self.core.datagrams_to_send(self.loop.time()):
            try:
                sendto(data, addr)
            except (OSError, ValueError):
                self.send_errors += 1
        for conn, transport in list(self._transports.items()):
            if not transport.reading_paused:
                self._deliver(conn, transport)
        self._arm_timer()

    def _deliver(self, conn: UtpConnection, transport: _UtpTransport) -> None:
        while (event := conn.next_event()) is not None:
            protocol = transport.protocol
            if isinstance(event, Connected):
                factory = self._pending.pop(conn, None)
                if factory is not None:
                    transport.start(factory())  # before any data the peer sent with it
                waiter = self._connecting.pop(conn, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif isinstance(event, DataReceived) and protocol is not None:
                protocol.data_received(event.data)
                if transport.reading_paused:
                    break
            elif isinstance(event, EndOfStream) and protocol is not None:
                # asyncio's contract: a protocol that does not ask to stay half-open (a
                # false result) gets its transport closed, as a TCP transport does itself.
                if not protocol.eof_received():
                    transport.close()
            elif isinstance(event, ConnectionReset | ConnectionTimedOut):
                exc: Exception = (
                    ConnectionResetError("uTP peer reset the connection")
                    if isinstance(event, ConnectionReset)
                    else TimeoutError("uTP peer stopped answering")
                )
                self._pending.pop(conn, None)
                waiter = self._connecting.pop(conn, None)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(exc)
                transport.lost(exc)
        if conn.state in (State.CLOSED, State.RESET) and not transport.reading_paused:
            # Done for the stream; the core lingers on its own to re-ack a late FIN.
            transport.lost(None)
            self._transports.pop(conn, None)

    def _attach(self, conn: UtpConnection, peer: Addr) -> StreamPair:
        # asyncio's own default limit (64 KiB): past twice that the reader pauses us, we
        # stop taking events, and the core's advertised window closes.
        reader = asyncio.StreamReader(loop=self.loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=self.loop)
        transport = _UtpTransport(self, conn, peer)
        self._transports[conn] = transport
        transport.start(protocol)
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
        """Reset every connection and release the UDP socket (if it is ours)."""
        for transport in list(self._transports.values()):
            transport.conn.abort()
        if self._sendto is not None:
            for data, addr in self.core.datagrams_to_send(self.loop.time()):
                with contextlib.suppress(OSError, ValueError):
                    self._sendto(data, addr)
            self._sendto = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for waiter in self._connecting.values():
            if not waiter.done():
                waiter.set_exception(ConnectionAbortedError("uTP endpoint closed"))
        self._connecting.clear()
        self._pending.clear()
        for transport in list(self._transports.values()):
            transport.lost(ConnectionAbortedError("uTP endpoint closed"))
        self._transports.clear()
