"""Resolving a magnet link on asyncio: DHT lookups and trackers feed peers to a ``Resolution``.

``resolve`` is the library entry point behind ``magnetar resolve``. It runs the sources of
peers side by side (the link's ``x.pe`` at once, DHT get_peers lookups repeated while nothing
resolves, and an announce to every tracker) next to a ``Fetcher`` that carries out a
``Resolution``'s actions over TCP and uTP (``magnet.io.dial`` races the two): open
connections, write bytes, close, and keep its single timer armed. No protocol logic lives
here; this module moves bytes and keeps time. The sources of peers are in
``magnet.io.peer_sources``, the result, error and failure explanations in
``magnet.io.resolve_result`` (all re-exported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dht.addresses import format_hostport
from dht.io.timer import CoreTimer
from dht.version import PEER_ID_PREFIX
from magnet.io.peer_sources import (
    MAX_TRACKERS,
    TRACKER_PORT,
    TRACKER_TIMEOUT_S,
    DhtDown,
    dht_source,
    give_up_if_alone,
    peer_filter,
    peer_policy,
    tracker_source,
)
from magnet.io.resolve_result import (
    Progress,
    ResolveError,
    ResolveResult,
    explain_failure,
    explain_trackers,
    failure_kind,
    layers_outcome,
)
from magnet.resolution import (
    Close,
    Connect,
    MetadataVerified,
    Resolution,
    Resolved,
    Send,
)
from magnet.torrentfile import TorrentError, parse_info
from magnet.uri import MagnetLink, parse_info_hash_or_magnet

if TYPE_CHECKING:
    from dht.io.node import Node

__all__ = [
    "MAX_TRACKERS",
    "TRACKER_PORT",
    "TRACKER_TIMEOUT_S",
    "Fetcher",
    "Progress",
    "ResolveError",
    "ResolveResult",
    "peer_policy",
    "resolve",
]

Addr = tuple[str, int]
CLIENT_PREFIX = PEER_ID_PREFIX  # Azureus-style peer id prefix, from dht.version


_MAX_TRANSPORTS_KEPT = 1000  # peers whose transport the result lists


# Linux's TCP_QUICKACK: acknowledge at once instead of up to 40 ms later. A seed that sends
# each 16 KiB metadata piece as several segments with Nagle's algorithm on holds the last,
# short one until our ACK for the others arrives, and we send nothing back (no next request)
# until the piece is whole: each such piece then waits out our delayed ACK. libtorrent seeds
# did this in about half of our >1 MiB resolves (10 ms or 50 ms). The kernel turns quick
# mode off again by itself, so it is re-armed on every read.
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class _PeerProtocol(asyncio.Protocol):
    """One connection to a peer, over TCP or uTP (``magnet.io.dial`` picks and may switch
    before the peer answers; ``transport.get_extra_info("transport")`` says which)."""

    def __init__(self, fetcher: Fetcher, addr: Addr) -> None:
        self.fetcher = fetcher
        self.addr = addr
        self.transport: asyncio.Transport | None = None

    @property
    def kind(self) -> str:
        kind = self.transport.get_extra_info("transport") if self.transport else None
        return str(kind or "tcp")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._ack_quickly()
        self.fetcher.connected(self)

    def _ack_quickly(self) -> None:
        if _QUICKACK is None or self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")  # None over uTP
        if sock is not None:
            with contextlib.suppress(OSError):  # not a TCP socket we may tune
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def data_received(self, data: bytes) -> None:
        self._ack_quickly()
        self.fetcher.received(self.addr, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fetcher.lost(self, exc)


class Fetcher:
    """Carries out a Resolution's actions over TCP and uTP."""

    def __init__(
        self,
        resolution: Resolution,
        on_change: Callable[[], None],
        transport: str = "auto",
    ) -> None:
        from magnet.io.dial import Dialer

        self.res = resolution
        # Each attempt ends (and says why) before the Resolution's own connect deadline.
        self.dialer: Dialer[_PeerProtocol] = Dialer(
            transport,
            timeout=max(resolution.connect_timeout - 0.5, 0.5),
            redialled=resolution.encryption not in ("off", "require"),  # see Resolution
        )
        self.transports: dict[Addr, str] = {}  # the transport each peer first answered on
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[Resolved] = self.loop.create_future()
        self.verified: MetadataVerified | None = None  # the metadata, while layers come
        self.verified_at = 0.0
        self._connecting: dict[Addr, asyncio.Task[object]] = {}
        self._open: dict[Addr, _PeerProtocol] = {}
        self._timer = CoreTimer(self.loop, self._on_timer)
        self._on_change = on_change

    def add_peers(self, peers: Sequence[Addr], source: str) -> None:
        if self.res.add_peers(peers, source, self.loop.time()):
            self._pump()

    def connected(self, proto: _PeerProtocol) -> None:
        self._connecting.pop(proto.addr, None)
        if self.done.done():
            if proto.transport is not None:
                proto.transport.close()
            return
        self._open[proto.addr] = proto
        self.res.connection_made(proto.addr, self.loop.time())
        self._pump()

    def received(self, addr: Addr, data: bytes) -> None:
        proto = self._open.get(addr)
        # The peer's first answer: the transport it came over is the one kept.
        known = self.transports
        if proto is not None and addr not in known and len(known) < _MAX_TRANSPORTS_KEPT:
            known[addr] = proto.kind
        self.res.data_received(addr, data, self.loop.time())
        self._pump()

    def lost(self, proto: _PeerProtocol, exc: Exception | None) -> None:
        # Only the current connection to that address counts: a peer may have been
        # closed and redialled (the other way of encrypting) before this callback ran.
        if self._open.get(proto.addr) is proto:
            del self._open[proto.addr]
            self.res.connection_lost(proto.addr, None, self.loop.time())
            self._pump()

    async def _connect(self, addr: Addr) -> None:
        try:
            await self.dialer.dial(addr, lambda: _PeerProtocol(self, addr))
        except asyncio.CancelledError:
            raise
        except (OSError, ValueError) as exc:
            self._connecting.pop(addr, None)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.res.connection_lost(addr, reason.lower() or "error", self.loop.time())
            self._pump()

    def _pump(self) -> None:
        res = self.res
        while (action := res.next_action()) is not None:
            if isinstance(action, Send):
                proto = self._open.get(action.addr)
                if proto is not None and proto.transport is not None:
                    proto.transport.write(action.data)
            elif isinstance(action, Connect):
                self._connecting[action.addr] = self.loop.create_task(self._connect(action.addr))
            elif isinstance(action, Close):
                task = self._connecting.pop(action.addr, None)
                if task is not None:
                    task.cancel()
                proto = self._open.pop(action.addr, None)
                if proto is not None and proto.transport is not None:
                    proto.transport.abort()
            elif isinstance(action, Resolved) and not self.done.done():
                self.done.set_result(action)
            elif isinstance(action, MetadataVerified):
                self.verified = action
                self.verified_at = time.monotonic()
        self._timer.arm(res.get_timer())
        self._on_change()

    def _on_timer(self, now: float) -> None:
        self.res.handle_timer(now)
        self._pump()

    def close(self) -> None:
        self._timer.cancel()
        connecting, self._connecting = list(self._connecting.values()), {}
        opened, self._open = list(self._open.values()), {}
        # Emptied first: aborting a dialled stream with no connection under it tells its
        # protocol at once (``connection_lost`` -> ``lost``), which must find nothing to
        # remove nor anything to decide while everything is being closed.
        for task in connecting:
            task.cancel()
        for proto in opened:
            if proto.transport is not None:
                proto.transport.abort()
        self.dialer.close()


def new_peer_id() -> bytes:
    return CLIENT_PREFIX + os.urandom(20 - len(CLIENT_PREFIX))


async def resolve(
    link: str | MagnetLink,
    *,
    node: Node | None = None,
    bootstrap: Sequence[Addr | str] | None = None,
    timeout: float = 60.0,
    use_dht: bool = True,
    use_trackers: bool = True,
    trackers: Sequence[str] = (),
    encryption: str = "auto",
    max_connections: int = 40,
    max_metadata_size: int = 32 * 1024 * 1024,
    on_progress: Callable[[Progress], None] | None = None,
    allow_private: bool = False,
    piece_layers: bool = True,
    transport: str = "auto",
) -> ResolveResult:
    """Fetch and verify the info dict a magnet link names.

    Peers come from the link's ``x.pe`` and the DHT (``node``, or a read-only client node
    of our own joining through ``bootstrap``, default the public routers). ``encryption``
    is one of ``magnet.resolution.ENCRYPTION_POLICIES`` (MSE/PE; "auto" by default). The
    link's ``tr`` trackers and ``trackers`` are announced to in parallel with the DHT lookup
    (unless ``use_trackers`` is False); a dead or slow tracker never delays the rest. Raises
    ``ResolveError`` with a one-line reason on bad input, timeout or when no source is left.

    Peers and tracker hosts on private or loopback addresses are refused (strangers must not
    make us dial our own LAN) unless ``allow_private`` is True or the network is a lab one:
    the link's own ``x.pe`` peers or the DHT's bootstrap addresses are private or loopback.

    A v2 or hybrid link also gets its BEP 52 piece layers (``piece_layers``, on by default)
    from the peers that sent the metadata, within the same ``timeout``. If they cannot all
    be had in time (or every peer refuses), the result still comes, with the info dict
    alone and ``layers_status`` "missing": a client can load such a .torrent and fetch the
    layers itself, so it is worth having, but it is not the torrent its author made.
    ``transport`` is how peers are dialled: "auto" (TCP, and uTP 250 ms later or as soon as
    TCP fails; the stream the peer answers on is kept: see ``magnet.io.dial``), "tcp" or
    "utp". The result says which carried the metadata, and for every peer that answered.
    """
    started = time.monotonic()
    if isinstance(link, str):
        from magnet.uri import MagnetError

        try:
            link = parse_info_hash_or_magnet(link)
        except MagnetError as exc:
            raise ResolveError(str(exc), "bad-link") from None
    if bootstrap is not None:
        from dht.addresses import as_addrs

        try:
            bootstrap = as_addrs(bootstrap)
        except ValueError as exc:
            raise ResolveError(f"bad bootstrap address {exc}", "bad-link") from None
    from magnet.io.dial import TRANSPORTS

    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")
    trace: list[tuple[str, float]] = []

    def mark(phase: str) -> None:
        trace.append((phase, round(time.monotonic() - started, 4)))

    policy = peer_policy(link, node=node, bootstrap=bootstrap, allow_private=allow_private)
    resolution = Resolution(
        link.dht_key,
        peer_id=new_peer_id(),
        info_hash_v1=link.btih,
        info_hash_v2=link.btmh,
        max_connections=max_connections,
        max_metadata_size=max_metadata_size,
        encryption=encryption,
        randbytes=os.urandom,
        accept=peer_filter(link, policy),
        piece_layers=piece_layers,
    )
    progress = Progress()

    def changed() -> None:
        st = resolution.stats
        progress.peers_found = st.known
        progress.peers_tried = st.tried
        progress.peers_connected = st.connected
        progress.metadata_bytes = st.metadata_bytes
        if on_progress is not None:
            on_progress(progress)

    fetcher = Fetcher(resolution, changed, transport)
    own_node: Node | None = None
    tasks: list[asyncio.Task[None]] = []
    dht_state = {"answered": 0, "asked": 0, "lookups": 0}
    dht_down = DhtDown()
    tracker_errors: dict[str, str] = {}
    tracker_urls = (
        list(dict.fromkeys([*link.trackers, *trackers]))[:MAX_TRACKERS] if use_trackers else []
    )
    try:
        for url in tracker_urls:
            source = tracker_source(
                url, link.dht_key, resolution.peer_id, fetcher, tracker_errors, mark, policy
            )
            tasks.append(asyncio.create_task(source))
        if link.peers:
            mark("x.pe peers")
            fetcher.add_peers(list(link.peers), "x.pe")
        if use_dht:
            if node is None:
                from dht.io.client import client_node

                own_node = client_node(bootstrap)
                await own_node.start()
                node = own_node

            dht_task = asyncio.create_task(
                dht_source(node, link.dht_key, fetcher, progress, dht_state, mark, dht_down)
            )
            # No router resolved or answered: unless a tracker may still bring peers, say so
            # now rather than after the whole timeout (as ``peers`` does).
            dht_down.on_change = lambda: give_up_if_alone(
                fetcher, dht_down, tasks, tracker_urls, tracker_errors
            )
            for task in tasks:  # the trackers: the last to end empty leaves the DHT alone
                task.add_done_callback(lambda _task: dht_down.on_change())
            tasks.append(dht_task)
        resolved: Resolved | None
        try:
            async with asyncio.timeout(timeout):
                resolved = await fetcher.done
        except TimeoutError:
            # The metadata may have come without all of its piece layers: see the docstring.
            resolved = None if fetcher.verified is None else fetcher.verified.result
        if resolved is None:
            reason = explain_failure(resolution, dht_state, use_dht, timeout, transport)
            if tracker_urls and not resolution.stats.known:
                reason += "; " + explain_trackers(tracker_urls, tracker_errors)
            raise ResolveError(
                reason, failure_kind(resolution, dht_state, use_dht), resolution.stats
            ) from None
        if fetcher.verified is None:
            mark("metadata verified")
        else:
            trace.append(("metadata verified", round(fetcher.verified_at - started, 4)))
            if resolved.piece_layers is not None:
                mark("piece layers verified")
        try:
            meta = parse_info(resolved.info)
        except TorrentError as exc:
            # The bytes hash to the link's info-hash, so every peer would serve these same
            # bytes: the torrent itself is broken, not the peer.
            raise ResolveError(
                f"the metadata matches the info-hash but is not a usable info dict: {exc}",
                "bad-metadata",
                resolution.stats,
            ) from None
        sources: dict[str, str] = {}
        if link.peers:
            sources["x.pe"] = f"{len(link.peers)} peers"
        if use_dht:
            sources["dht"] = (
                f"{dht_state['lookups']} lookups done, {dht_state['answered']} nodes answered"
            )
        for url in tracker_urls:
            sources[url] = tracker_errors.get(url, "pending")
        return ResolveResult(
            link,
            resolved.info,
            meta,
            resolved.peer,
            resolved.source,
            time.monotonic() - started,
            trace,
            sources,
            **layers_outcome(
                meta, resolved, fetcher.verified_at, fetcher.res.piece_layers, piece_layers
            ),
            transport=fetcher.transports.get(resolved.peer, "tcp"),
            connections={format_hostport(addr): kind for addr, kind in fetcher.transports.items()},
        )
    finally:
        dht_down.on_change = lambda: None  # the answer is given: nothing more to decide
        if fetcher.done.done() and not fetcher.done.cancelled():
            fetcher.done.exception()  # seen: a give-up that raced the timeout logs nothing
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        fetcher.close()
        if own_node is not None:
            own_node.close()
