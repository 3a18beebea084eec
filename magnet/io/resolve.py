"""Resolving a magnet link on asyncio: DHT lookups and trackers feed peers to a ``Resolution``.

``resolve`` is the library entry point behind ``magnetar resolve``. It runs the sources of
peers side by side (the link's ``x.pe`` at once, DHT get_peers lookups repeated while nothing
resolves, and an announce to every tracker) next to a ``_Fetcher`` that carries out a
``Resolution``'s actions over TCP and uTP (``magnet.io.dial`` races the two): open
connections, write bytes, close, and keep its single timer armed. No protocol logic lives
here; this module moves bytes and keeps time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dht.addresses import AddressClass, AddressPolicy, classify, format_hostport
from dht.io.timer import CoreTimer
from dht.version import PEER_ID_PREFIX
from magnet.resolution import (
    Close,
    Connect,
    MetadataVerified,
    Resolution,
    ResolutionStats,
    Resolved,
    Send,
)
from magnet.torrentfile import TorrentError, TorrentMeta, build_torrent, parse_info
from magnet.uri import MagnetLink, parse_info_hash_or_magnet

if TYPE_CHECKING:
    from dht.io.node import Node

__all__ = ["Progress", "ResolveError", "ResolveResult", "peer_policy", "resolve"]

Addr = tuple[str, int]
CLIENT_PREFIX = PEER_ID_PREFIX  # Azureus-style peer id prefix, from dht.version


log = logging.getLogger("magnet.io.resolve")
_MAX_TRANSPORTS_KEPT = 1000  # peers whose transport the result lists


class ResolveError(Exception):
    """Resolution failed; ``str(exc)`` is one line saying why."""

    def __init__(self, reason: str, kind: str, stats: ResolutionStats | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # "bad-link", "no-dht", "no-peers", "no-metadata", "bad-metadata", "timeout"
        self.kind = kind
        self.stats = stats


@dataclass(slots=True)
class Progress:
    """A snapshot for progress displays."""

    nodes_asked: int = 0
    nodes_answered: int = 0
    lookups: int = 0
    peers_found: int = 0
    peers_tried: int = 0
    peers_connected: int = 0
    metadata_bytes: int = 0
    metadata_size: int = 0


@dataclass(slots=True)
class ResolveResult:
    link: MagnetLink
    info: bytes  # the verified info dict, byte for byte as received
    meta: TorrentMeta
    peer: Addr
    source: str
    seconds: float
    trace: list[tuple[str, float]] = field(default_factory=list)  # (phase, seconds from start)
    # Where peers came from and how each source fared when the metadata arrived, e.g.
    # {"dht": "2 lookups done, 16 nodes answered", "udp://t:1/announce": "pending"}.
    sources: dict[str, str] = field(default_factory=dict)
    # BEP 52 piece layers (root -> hashes), proven against the info dict's pieces roots.
    piece_layers: dict[bytes, bytes] | None = None
    # "fetched", "not needed" (v1, or no file over one piece), "skipped" (not asked for),
    # "v1 link" (a hybrid named by its v1 hash alone: resolved as v1, as ever), or
    # "missing" (asked for, not all fetched in time: the .torrent lacks them).
    layers_status: str = "not needed"
    layer_peers: tuple[Addr, ...] = ()  # whose hashes were kept
    layers_seconds: float = 0.0  # from the metadata verified to the layers proven

    transport: str = "tcp"  # what carried the metadata: "tcp" or "utp"
    # Each peer that answered ("host:port") and the transport it answered on.
    connections: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """The .torrent holds all its author's torrent had: no piece layers missing."""
        return self.layers_status != "missing"

    def torrent(self, *, creation_date: int | None = None) -> bytes:
        """A complete .torrent: the info dict spliced in verbatim, the piece layers (v2),
        the link's trackers."""
        return build_torrent(
            self.info,
            trackers=self.link.trackers,
            web_seeds=self.link.web_seeds,
            creation_date=int(time.time()) if creation_date is None else creation_date,
            piece_layers=self.piece_layers,
        )


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

    def __init__(self, fetcher: _Fetcher, addr: Addr) -> None:
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


class _Fetcher:
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
        for task in self._connecting.values():
            task.cancel()
        for proto in self._open.values():
            if proto.transport is not None:
                proto.transport.abort()
        self._connecting.clear()
        self._open.clear()
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
        accept=_peer_filter(link, policy),
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

    fetcher = _Fetcher(resolution, changed, transport)
    own_node: Node | None = None
    tasks: list[asyncio.Task[None]] = []
    dht_state = {"answered": 0, "asked": 0, "lookups": 0}
    dht_down = _DhtDown()
    tracker_errors: dict[str, str] = {}
    tracker_urls = (
        list(dict.fromkeys([*link.trackers, *trackers]))[:MAX_TRACKERS] if use_trackers else []
    )
    try:
        for url in tracker_urls:
            source = _tracker_source(
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
                _dht_source(node, link.dht_key, fetcher, progress, dht_state, mark, dht_down)
            )
            # No router resolved or answered: unless a tracker may still bring peers, say so
            # now rather than after the whole timeout (as ``peers`` does).
            dht_down.on_change = lambda: _give_up_if_alone(
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
            reason = _explain_failure(resolution, dht_state, use_dht, timeout, transport)
            if tracker_urls and not resolution.stats.known:
                reason += "; " + _explain_trackers(tracker_urls, tracker_errors)
            raise ResolveError(
                reason, _failure_kind(resolution, dht_state, use_dht), resolution.stats
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
            **_layers_outcome(meta, resolved, fetcher, piece_layers),
            transport=fetcher.transports.get(resolved.peer, "tcp"),
            connections={
                format_hostport(addr): kind for addr, kind in fetcher.transports.items()
            },
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


def _layers_outcome(
    meta: TorrentMeta, resolved: Resolved, fetcher: _Fetcher, wanted: bool
) -> dict[str, Any]:
    """The piece-layer fields of a ``ResolveResult``."""
    from magnet.layers import layer_files

    if resolved.piece_layers is not None:
        return {
            "piece_layers": resolved.piece_layers,
            "layers_status": "fetched",
            "layer_peers": resolved.layer_peers,
            "layers_seconds": time.monotonic() - fetcher.verified_at,
        }
    if not layer_files(meta):
        return {"layers_status": "not needed"}
    if not fetcher.res.piece_layers and wanted:
        # A hybrid found by its v1 hash: a v1 link gets what it always got (the v1 piece
        # hashes check every piece), and v1 peers may not speak BEP 52 at all.
        return {"layers_status": "v1 link"}
    return {"layers_status": "missing" if wanted else "skipped"}


class _DhtDown:
    """Why the DHT cannot be reached (None while it can), and whom to tell when that
    changes: a resolve with no other source of peers then ends at once."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.on_change: Callable[[], None] = lambda: None

    def set(self, reason: str | None) -> None:
        if reason != self.reason:
            self.reason = reason
            self.on_change()


def _give_up_if_alone(
    fetcher: _Fetcher,
    dht_down: _DhtDown,
    tasks: list[asyncio.Task[None]],
    tracker_urls: list[str],
    tracker_errors: dict[str, str],
) -> None:
    """End the resolve with ``no-dht`` when the DHT is unreachable and nothing else can bring
    a peer: none known, and every tracker has answered (or failed)."""
    if dht_down.reason is None or fetcher.done.done() or fetcher.res.stats.known:
        return
    if any(not task.done() for task in tasks[: len(tracker_urls)]):
        return
    reason = dht_down.reason
    if tracker_urls:
        reason += "; " + _explain_trackers(tracker_urls, tracker_errors)
    fetcher.done.set_exception(ResolveError(reason, "no-dht", fetcher.res.stats))


async def _dht_source(
    node: Node,
    key: bytes,
    fetcher: _Fetcher,
    progress: Progress,
    dht_state: dict[str, int],
    mark: Callable[[str], None],
    dht_down: _DhtDown,
) -> None:
    """Repeated get_peers lookups until cancelled: swarms announce every few minutes, so a
    lookup that found nothing may find peers a little later. While the routing table is
    empty each lookup starts from the routers; if none resolves, or the lookup from them
    reaches nobody, ``dht_down`` says so (and is cleared when a later one succeeds)."""
    from dht.io.routers import resolve_routers

    seeds: list[Addr] = []
    if len(node.core.routing) == 0:
        seeds = await resolve_routers(node.routers)
        if not seeds:
            dht_down.set(_no_router_resolved(node.routers))
    mark("dht lookup started")
    pause = 1.0
    first_peer = True
    while True:
        stream = node.get_peers(key, seeds=seeds)
        try:
            async for peer in stream:
                if first_peer:
                    mark("first peer from dht")
                    first_peer = False
                fetcher.add_peers([peer], "dht")
        finally:
            stream.cancel()
        result = stream.result
        dht_state["lookups"] += 1
        progress.lookups = dht_state["lookups"]
        if result is not None:
            dht_state["asked"] += result.queried
            dht_state["answered"] += result.replied
            progress.nodes_asked = dht_state["asked"]
            progress.nodes_answered = dht_state["answered"]
            if result.replied or len(node.core.routing):
                dht_down.set(None)
            elif seeds:
                dht_down.set(f"no DHT node answered the bootstrap ({len(seeds)} asked)")
        if len(node.core.routing) == 0:
            seeds = await resolve_routers(node.routers)
            if not seeds:
                dht_down.set(_no_router_resolved(node.routers))
        await asyncio.sleep(pause)
        pause = min(pause * 2, 15.0)


def _no_router_resolved(routers: Sequence[Addr]) -> str:
    if not routers:
        return "no DHT node to ask: no bootstrap router given"
    return f"no DHT node to ask: none of the {len(routers)} bootstrap routers resolved"


MAX_TRACKERS = 20
TRACKER_TIMEOUT_S = 15.0
TRACKER_PORT = 6881  # what we announce: trackers want a port; we do not listen for pieces


async def _tracker_source(
    url: str,
    key: bytes,
    peer_id: bytes,
    fetcher: _Fetcher,
    errors: dict[str, str],
    mark: Callable[[str], None],
    policy: AddressPolicy,
) -> None:
    """One announce to one tracker, its peers into the pool; a failure is only recorded.
    The tracker's host passes ``policy`` after DNS (and after every redirect)."""
    from magnet.io.trackers import TrackerError, announce

    try:
        result = await announce(
            url,
            key,
            peer_id=peer_id,
            port=TRACKER_PORT,
            timeout=TRACKER_TIMEOUT_S,
            accept=policy.acceptable,
        )
    except TrackerError as exc:
        errors[url] = exc.reason
        return
    except Exception as exc:  # the one boundary for this tracker's answer: record, go on
        log.exception("tracker %s: unexpected error", url)
        errors[url] = f"unexpected error: {type(exc).__name__}"
        return
    errors[url] = f"{len(result.peers)} peers"
    if result.peers:
        mark(f"peers from tracker {url}")
        fetcher.add_peers(result.peers, f"tracker {url}")


def peer_policy(
    link: MagnetLink,
    *,
    node: Node | None = None,
    bootstrap: Sequence[Addr] | None = None,
    allow_private: bool = False,
) -> AddressPolicy:
    """Which peers and tracker hosts a resolve may connect to.

    ``allow_private`` opens private and loopback addresses. Otherwise the DHT node's network
    decides, as ``dht.io.node`` does for nodes (``AddressPolicy.for_network``: its bind
    address and its bootstrap addresses), widened by the link's own ``x.pe`` peers: a user
    who hands us a loopback or LAN peer, or bootstraps from one, is on a lab network.
    """
    if allow_private:
        return AddressPolicy(allow_private=True, allow_loopback=True)
    if node is not None:
        host, routers = node.host, tuple(node.routers)
    else:
        host, routers = "0.0.0.0", tuple(bootstrap or ())
    return AddressPolicy.for_network(host, (*routers, *link.peers))


def _peer_filter(link: MagnetLink, policy: AddressPolicy) -> Callable[[Addr], bool]:
    """``policy`` for peers, except host names the link itself names in ``x.pe``: the user
    chose those, and the policy judges addresses, not names (DHT peers are addresses)."""
    named = frozenset(p for p in link.peers if not _is_ip(p[0]))
    if not named:
        return policy.acceptable
    return lambda addr: addr in named or policy.acceptable(addr)


def _is_ip(host: str) -> bool:
    return classify(host) is not AddressClass.INVALID


def _explain_trackers(urls: list[str], errors: dict[str, str]) -> str:
    parts = [f"{url}: {errors.get(url, 'no answer yet')}" for url in urls[:3]]
    more = f" (+{len(urls) - 3} more)" if len(urls) > 3 else ""
    return "trackers: " + ", ".join(parts) + more


def _failure_kind(res: Resolution, dht_state: dict[str, int], use_dht: bool) -> str:
    if res.stats.known:
        return "no-metadata"
    if use_dht and dht_state["answered"] == 0:
        return "no-dht"
    return "no-peers"


def _explain_failure(
    res: Resolution, dht_state: dict[str, int], use_dht: bool, timeout: float, transport: str
) -> str:
    st = res.stats
    head = f"no metadata after {timeout:g} s: "
    if st.known == 0:
        if not use_dht:
            return head + "no peers known (DHT off, no x.pe peers in the link)"
        if dht_state["answered"] == 0:
            return head + "no DHT node answered"
        return (
            head + f"{dht_state['answered']} DHT nodes answered in {dht_state['lookups']} lookups, "
            "but none knows peers for this info-hash"
        )
    why = head + res.explain()
    if transport != "auto" and st.connected == 0:
        other = "uTP" if transport == "tcp" else "TCP"
        why += f" (over {transport.upper()} only: peers that accept only {other} are missed)"
    return why
