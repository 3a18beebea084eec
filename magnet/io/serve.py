"""Publishing torrents on asyncio: announce on the DHT and serve their metadata to anyone.

``serve_torrents`` runs a TCP server and a uTP (BEP 29) endpoint on the same port number,
whose connections each feed a sans-IO ``magnet.service.ServeSession`` (the metadata service,
plaintext or MSE/PE) through one protocol class, with the same caps and clocks for both. The
uTP endpoint shares the DHT node's UDP socket when the node has that port (as libtorrent
does: KRPC datagrams start with ``d``, uTP ones never do), else binds its own. A DHT node
that announces every info-hash (v1, and the truncated v2 hash of hybrid or v2 torrents)
and re-announces periodically so the swarm stays findable; each torrent is also announced
to its trackers. No protocol logic lives here: this module moves bytes and keeps time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from dht.version import PEER_ID_PREFIX
from magnet.service import SERVE_ENCRYPTION, MetadataService, Served, ServeSession
from magnet.torrentfile import TorrentMeta

if TYPE_CHECKING:
    from dht.io.node import Node
    from dht.wire import Addr
    from magnet.io.utp import UtpEndpoint

# The service's names stay importable from here, where callers first met them.
__all__ = [
    "SERVE_ENCRYPTION",
    "MetadataService",
    "ServeSession",
    "Served",
    "run",
    "serve_torrents",
]

log = logging.getLogger("magnet.io.serve")

REANNOUNCE_S = 15 * 60.0
MAX_CONNECTIONS = 512
MAX_CONNECTIONS_PER_IP = 8  # one host cannot hold the server's connections
HANDSHAKE_TIMEOUT_S = 10.0  # a peer that has not completed its handshake by then is cut off
IDLE_TIMEOUT_S = 60.0  # no whole message for this long: cut off (a byte a minute is not alive)
WRITE_BUFFER_HIGH = 1 << 20  # above this, stop reading the peer until it drains (back-pressure)
WRITE_BUFFER_MAX = 2 << 20  # a peer that lets this much pile up unread is cut off
CLOSE_GRACE_S = 5.0  # a closing connection that cannot flush its last reply by then is aborted


class _ServeProtocol(asyncio.Protocol):
    """One incoming connection (TCP or uTP): bytes to the sans-IO session and back, with deadlines.

    Every way a peer can hold resources is bounded here: connections per IP, the handshake
    deadline, an idle clock that only whole messages reset, reading paused while our writes
    are backed up, and an abort (not a flushing close) for peers that stop reading.
    """

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.session = ServeSession(server.service, server.encryption, os.urandom)
        self.transport: asyncio.Transport | None = None
        self.ip = ""
        self.timer: asyncio.TimerHandle | None = None
        self.seen_messages = 0

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)  # TCP and uTP transports are streams
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else ""
        server = self.server
        if (
            len(server.connections) >= MAX_CONNECTIONS
            or server.per_ip.get(self.ip, 0) >= MAX_CONNECTIONS_PER_IP
        ):
            server.refused += 1
            transport.abort()
            return
        self.transport = transport
        server.connections.add(self)
        server.per_ip[self.ip] = server.per_ip.get(self.ip, 0) + 1
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self._arm(HANDSHAKE_TIMEOUT_S, "no handshake in time")

    def _arm(self, delay: float, why: str) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(delay, self._abort, why)

    def _abort(self, why: str) -> None:
        if self.transport is not None:
            log.debug("dropping %s: %s", self.ip, why)
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        try:
            out, why = self.session.receive(data)
        except Exception:  # the one boundary for this peer's bytes: drop it, keep serving
            log.exception("dropping %s: unexpected error", self.ip)
            transport.abort()
            return
        if out:
            transport.write(out)
        if why is not None:
            log.debug("closing %s: %s", self.ip, why)
            transport.close()  # flushes the last reply (a reject, say) ...
            self._arm(CLOSE_GRACE_S, "closing peer does not read")  # ... or is aborted
            return
        if transport.get_write_buffer_size() > WRITE_BUFFER_MAX:
            self._abort("peer does not read its replies")
            return
        state = self.session.state
        if state.messages != self.seen_messages and state.handshaken:
            self.seen_messages = state.messages
            self._arm(IDLE_TIMEOUT_S, "idle")

    def pause_writing(self) -> None:
        # Our replies are backed up: stop taking requests until the peer reads them.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        server = self.server
        if self in server.connections:
            server.connections.discard(self)
            left = server.per_ip.get(self.ip, 1) - 1
            if left:
                server.per_ip[self.ip] = left
            else:
                server.per_ip.pop(self.ip, None)
        self.transport = None


class _Server:
    def __init__(self, service: MetadataService, encryption: str) -> None:
        self.service = service
        self.encryption = encryption
        self.connections: set[_ServeProtocol] = set()
        self.per_ip: dict[str, int] = {}
        self.refused = 0  # connections turned away at the caps


async def serve_torrents(
    torrents: Sequence[TorrentMeta],
    *,
    node: Node,
    host: str = "0.0.0.0",
    port: int = 0,
    stop: asyncio.Event | None = None,
    ready: asyncio.Future[int] | None = None,
    reannounce_s: float = REANNOUNCE_S,
    encryption: str = "prefer",
    trackers: Sequence[str] = (),
    use_trackers: bool = True,
    utp: bool = True,
) -> None:
    """Serve ``torrents``' metadata on TCP ``host:port`` (and, with ``utp``, uTP on the same
    UDP port number) and announce them through ``node`` (and to each torrent's trackers
    plus ``trackers``) until ``stop`` is set. ``ready`` gets the port once listening."""
    stop = stop or asyncio.Event()
    service = MetadataService(torrents, PEER_ID_PREFIX + os.urandom(12))
    if encryption not in SERVE_ENCRYPTION:
        raise ValueError(f"encryption must be one of {', '.join(SERVE_ENCRYPTION)}")
    state = _Server(service, encryption)
    server, utp_endpoint = await _listen(state, node, host, port, utp)
    tcp_port = int(server.sockets[0].getsockname()[1])
    if ready is not None and not ready.done():
        ready.set_result(tcp_port)
    tracker_jobs = []
    if use_trackers:
        for item in service.served:
            for url in dict.fromkeys([*item.meta.trackers, *trackers]):
                tracker_jobs.append(
                    asyncio.create_task(
                        _announce_to_tracker(
                            url, item, service.peer_id, tcp_port, stop, reannounce_s
                        )
                    )
                )
    try:
        retry_s = 2.0
        while not stop.is_set():
            missed = False
            for item in service.served:
                for key in item.keys:
                    stored = await node.announce(key, tcp_port)
                    missed |= stored == 0
                    log.info(
                        "announced %s (%s) on port %d to %d nodes",
                        key.hex(),
                        item.meta.name,
                        tcp_port,
                        stored,
                    )
            # Nobody took an announce (the node is still joining): try again soon.
            wait = min(retry_s, reannounce_s) if missed else reannounce_s
            retry_s = min(retry_s * 2, 60.0) if missed else 2.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
    finally:
        for job in tracker_jobs:
            job.cancel()
        for job in tracker_jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job
        server.close()
        if utp_endpoint is not None:
            if node.foreign_datagrams == utp_endpoint.datagram_received:
                node.foreign_datagrams = None
            utp_endpoint.close()
        for proto in list(state.connections):
            if proto.transport is not None:
                proto.transport.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2.0)


async def _listen(
    state: _Server, node: Node, host: str, port: int, utp: bool
) -> tuple[asyncio.Server, UtpEndpoint | None]:
    """The TCP server on ``host:port`` and the uTP endpoint on the same port number: the
    DHT node's socket when it has that port, else a socket of its own (with ``port`` 0,
    ports are tried until one is free for both)."""
    from magnet.io.utp import UtpEndpoint

    loop = asyncio.get_running_loop()
    attempts = 8 if port == 0 else 1
    for attempt in range(attempts):
        server = await loop.create_server(lambda: _ServeProtocol(state), host, port)
        if not utp:
            return server, None
        tcp_port = int(server.sockets[0].getsockname()[1])
        if node.addr[1] == tcp_port and node.foreign_datagrams is None:
            endpoint = UtpEndpoint.attach(
                node.sendto, node.addr, protocol_factory=lambda: _ServeProtocol(state)
            )
            node.foreign_datagrams = endpoint.datagram_received
            return server, endpoint
        try:
            own = await UtpEndpoint.create(
                host, tcp_port, protocol_factory=lambda: _ServeProtocol(state)
            )
        except OSError:
            server.close()
            if attempt == attempts - 1:
                raise
            continue
        return server, own
    raise AssertionError("unreachable")


async def _announce_to_tracker(
    url: str, item: Served, peer_id: bytes, port: int, stop: asyncio.Event, max_interval: float
) -> None:
    """Announce one torrent to one tracker as a seed, again at the interval it asks for."""
    from magnet.io.trackers import AnnounceEvent, TrackerError, announce

    retry_s = 10.0
    event = AnnounceEvent.STARTED
    while not stop.is_set():
        wait = retry_s
        for key in item.keys:
            try:
                result = await announce(
                    url, key, peer_id=peer_id, port=port, timeout=30.0, event=event, left=0
                )
            except TrackerError as exc:
                log.warning("tracker %s: %s", url, exc.reason)
                retry_s = min(retry_s * 2, max_interval)
                continue
            log.info("announced %s to %s", key.hex(), url)
            event = AnnounceEvent.NONE
            retry_s = 10.0
            wait = min(max(float(result.interval or 0), 60.0), max_interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)


async def run(
    torrents: Sequence[TorrentMeta],
    *,
    host: str = "0.0.0.0",
    port: int = 6881,
    dht_port: int | None = None,
    bootstrap: Sequence[Addr] | None = None,
    encryption: str = "prefer",
    trackers: Sequence[str] = (),
    use_trackers: bool = True,
    utp: bool = True,
    on_ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Publish ``torrents`` until ``stop`` is set or SIGINT/SIGTERM arrives: what
    ``magnetar serve`` runs.

    A DHT node on UDP ``dht_port`` (default: ``port``) joins through ``bootstrap`` (None: the
    public routers), then ``serve_torrents`` serves on TCP ``host:port`` and (with ``utp``)
    uTP on the same UDP port number, on the node's socket when that is the one, and
    announces; ``on_ready`` gets the port once it listens.

    :raises OSError: a port cannot be bound.
    """
    # Imported here, not at the top: the node and its signal handling are only needed by
    # this program, not by the service classes above.
    from dht.io.daemon import stop_on_signals
    from dht.io.node import Node

    stop = stop or asyncio.Event()
    udp_port = port if dht_port is None else dht_port
    with stop_on_signals(stop):
        async with Node(host, udp_port, bootstrap_routers=bootstrap) as node:
            if port == 0 and dht_port is None:
                port = node.addr[1]  # "any" port: the one the DHT got, for TCP and uTP too
            log.info("joined the DHT: %d nodes", await node.bootstrap())
            ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            job = asyncio.create_task(
                serve_torrents(
                    torrents,
                    node=node,
                    host=host,
                    port=port,
                    stop=stop,
                    ready=ready,
                    encryption=encryption,
                    trackers=trackers,
                    use_trackers=use_trackers,
                    utp=utp,
                )
            )
            # The server may fail before it listens (TCP port taken): then its error, not
            # a wait for a port that never comes.
            first: list[asyncio.Future[int] | asyncio.Task[None]] = [ready, job]
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():
                ready.cancel()
                await job
                return
            if on_ready is not None:
                on_ready(ready.result())
            log.info(
                "serving %d torrents on TCP and uTP port %d, DHT on UDP port %d",
                len(torrents),
                ready.result(),
                node.addr[1],
            )
            await job
