"""Fetching a torrent's info dict from peers (BEP 9 over BEP 10): the coordinator, sans IO.

``Resolution`` is fed peer addresses as the DHT (or ``x.pe``, or trackers) find them, and
the bytes and fates of the TCP connections its driver opens for it. It decides whom to
connect to (a bounded number at a time), speaks the peer wire through one
``PeerConnection`` per peer, spreads the metadata pieces over every peer that has them,
verifies the assembled dict against the info-hash, and drops peers that stall, reject,
lie about the size or send data that does not verify. The first verified copy wins. With
``piece_layers`` on, a v2 or hybrid torrent then goes through a second phase on the same
connections: its BEP 52 piece layers over hash requests (``magnet.layers`` decides).

This module owns the peer life cycle (queue, connections, timers, redials) and routes each
peer event to its phase: ``magnet.metadataphase`` (the pieces of the info dict) and
``magnet.layersphase`` (the piece layers); ``magnet.dialstate`` holds each peer's dial
state and redial policy, ``magnet.resolution_actions`` the actions and counts.

Its output is a queue of actions (``Connect``, ``Send``, ``Close``, ``Resolved``); time
comes in as ``now`` and leaves as one deadline (``get_timer``). It keeps counts of what
happened to every peer so that a failure can be explained in one line.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from magnet.dialstate import (
    ACTIVE,
    ENCRYPTION_POLICIES,
    REDIAL_BACKOFF_S,
    REDIALS,
    DialPeer,
    DialState,
    encrypted_dial,
    redial_delay,
)
from magnet.layersphase import LayersPhase
from magnet.metadata import MetadataAssembler
from magnet.metadataphase import (
    MAX_METADATA_SIZE,
    MAX_SIZES,
    METADATA_BUDGET_SLACK,
    MetadataPhase,
)
from magnet.peerwire import (
    NEED_DATA,
    ConnectionClosed,
    ExtHandshake,
    HandshakeReceived,
    Hashes,
    HashReject,
    HashRequest,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    PeerConnection,
    Violation,
)
from magnet.resolution_actions import (
    Action,
    Addr,
    Close,
    Connect,
    MetadataVerified,
    ResolutionStats,
    Resolved,
    Send,
    explain,
)

if TYPE_CHECKING:
    from magnet.layers import LayerFetcher

__all__ = [
    "ENCRYPTION_POLICIES",
    "MAX_METADATA_SIZE",
    "MAX_SIZES",
    "REDIALS",
    "REDIAL_BACKOFF_S",
    "Action",
    "Close",
    "Connect",
    "MetadataVerified",
    "Resolution",
    "ResolutionStats",
    "Resolved",
    "Send",
]

# libtorrent answers a ut_metadata request at once only while its send buffer holds under
# 160 KiB (ten 16 KiB pieces); later requests wait for its once-a-second tick. Eight in flight
# per peer keeps every request on the fast path (ask more and big metadata stalls ~1 s).
REQUESTS_PER_PEER = 8


class Resolution(LayersPhase, MetadataPhase):
    """Gets one info dict from a swarm. See the module docstring."""

    def __init__(
        self,
        info_hash: bytes,
        *,
        peer_id: bytes,
        info_hash_v1: bytes | None = None,
        info_hash_v2: bytes | None = None,
        max_connections: int = 40,
        max_known: int = 5000,
        max_metadata_size: int = MAX_METADATA_SIZE,
        connect_timeout: float = 5.0,
        handshake_timeout: float = 5.0,
        request_timeout: float = 5.0,
        requests_per_peer: int = REQUESTS_PER_PEER,
        encryption: str = "auto",
        randbytes: Callable[[int], bytes] | None = None,
        accept: Callable[[Addr], bool] | None = None,
        piece_layers: bool = False,
    ) -> None:
        """``info_hash`` is what the handshake carries (v1, or v2 truncated to 20 bytes);
        ``info_hash_v1``/``info_hash_v2`` are what the assembled dict is checked against.
        ``accept`` is the address policy for peers (``dht.addresses.AddressPolicy.acceptable``):
        peers it refuses are counted in ``stats.refused`` and never dialled. ``piece_layers``
        fetches a v2 torrent's piece layers after its metadata (``MetadataVerified`` marks
        the switch; ``Resolved`` then carries them)."""
        if info_hash_v1 is None and info_hash_v2 is None:
            info_hash_v1 = info_hash
        self.info_hash = info_hash
        self.peer_id = peer_id
        self._v1 = info_hash_v1
        self._v2 = info_hash_v2
        self.max_connections = max_connections
        self.max_known = max_known
        self.max_metadata_size = max_metadata_size
        # What all metadata being collected may hold at once: one largest info dict and room
        # for a few small rival claims beside it.
        self.metadata_budget = max_metadata_size + METADATA_BUDGET_SLACK
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self.request_timeout = request_timeout
        self.requests_per_peer = requests_per_peer
        if encryption not in ENCRYPTION_POLICIES:
            raise ValueError(f"encryption must be one of {', '.join(ENCRYPTION_POLICIES)}")
        if encryption != "off" and randbytes is None:
            raise ValueError("encryption needs randbytes (os.urandom)")
        self.encryption = encryption
        self._randbytes = randbytes
        self._accept = accept
        self._peers: dict[Addr, DialPeer] = {}
        self._queue: deque[DialPeer] = deque()
        self._active = 0  # CONNECTING + HANDSHAKE + READY
        self._assemblers: dict[int, MetadataAssembler] = {}
        self._actions: deque[Action] = deque()
        self.stats = ResolutionStats()
        self.result: Resolved | None = None
        # The piece layers phase (BEP 52): wanted, then the verified metadata and fetcher.
        self.piece_layers = piece_layers and info_hash_v2 is not None
        self.metadata: Resolved | None = None
        self.layers: LayerFetcher[Addr] | None = None

    # --- what the driver feeds in --------------------------------------------------------

    def add_peers(self, peers: Iterable[Addr], source: str, now: float) -> int:
        """Queue peers to try. Returns how many were new.

        The one place every peer enters, whatever its source (DHT, tracker, ``x.pe``): a
        stranger's list must not make us dial hosts on our LAN or our own machine."""
        new = 0
        accept = self._accept
        for addr in peers:
            if addr in self._peers or addr[1] == 0 or len(self._peers) >= self.max_known:
                continue
            if accept is not None and not accept(addr):
                self.stats.refused += 1
                continue
            peer = DialPeer(addr, source)
            peer.encrypt = self.encryption in ("prefer", "require")
            self._peers[addr] = peer
            self._queue.append(peer)
            new += 1
        self.stats.known += new
        if new:
            self._schedule(now)
        return new

    def connection_made(self, addr: Addr, now: float) -> None:
        peer = self._peers.get(addr)
        if peer is None or peer.state is not DialState.CONNECTING:
            return
        peer.state = DialState.HANDSHAKE
        peer.deadline = now + self.handshake_timeout
        v2 = self._v2 if self.piece_layers else None
        conn = PeerConnection(
            self.info_hash,
            self.peer_id,
            max_metadata_size=self.max_metadata_size,
            # BEP 52 bit: a v2 peer answers hash requests; libtorrent upgrades a hybrid
            # dialled by its v1 hash to the truncated v2 hash, which we then accept.
            v2=v2 is not None,
            alt_info_hash=v2[:20] if v2 is not None and v2[:20] != self.info_hash else None,
        )
        peer.conn = conn
        # The handshake alone: the extension handshake follows once theirs has arrived
        # (``_process``; why: magnet/peerwire.py). No request can go before their extension
        # handshake anyway, so this costs no round trip.
        hello = conn.send_handshake()
        if peer.encrypt:
            assert self._randbytes is not None
            stream = encrypted_dial(self.info_hash, hello, self.encryption, self._randbytes)
            peer.stream = stream
            self._actions.append(Send(addr, stream.data_to_send()))
        else:
            self._actions.append(Send(addr, hello))

    def data_received(self, addr: Addr, data: bytes, now: float) -> None:
        peer = self._peers.get(addr)
        if peer is None or peer.conn is None or peer.state is DialState.DONE or not data:
            return
        stream = peer.stream
        if stream is not None:
            data = stream.receive_data(data)
            out = stream.data_to_send()
            if out:
                self._actions.append(Send(addr, out))
            if stream.failure is not None:
                self._actions.append(Close(addr, stream.failure))
                if not self._redial(peer, now):
                    why = f"encryption handshake failed: {stream.failure}"
                    self._finish(peer, why, now, close=False)
                return
            if not data:  # still in the handshake (b"" would mean end of stream)
                return
        peer.conn.receive_data(data)
        self._process(peer, now)

    def connection_lost(self, addr: Addr, reason: str | None, now: float) -> None:
        """The connection ended (or could not be made); ``reason`` for a failed connect."""
        peer = self._peers.get(addr)
        if peer is None or peer.state in (DialState.DONE, DialState.QUEUED, DialState.WAITING):
            return  # (an old connection's end, after a redial was decided)
        if peer.state is DialState.CONNECTING:
            why = "connect failed" if reason is None else f"connect failed: {reason}"
        elif peer.state is DialState.HANDSHAKE:
            if self._redial(peer, now):
                return
            why = "closed during handshake"
        elif self.layers is not None:
            why = "closed before sending the piece layers"
        else:
            why = "closed before sending the metadata"
        self._finish(peer, why, now, close=False)

    def handle_timer(self, now: float) -> None:
        for peer in list(self._peers.values()):
            state = peer.state
            if state is DialState.CONNECTING and now >= peer.deadline:
                self._finish(peer, "connect timed out", now)
            elif state is DialState.HANDSHAKE and now >= peer.deadline:
                self._actions.append(Close(peer.addr, "handshake timed out"))
                if not self._redial(peer, now):
                    self._finish(peer, "handshake timed out", now, close=False)
            elif state is DialState.WAITING and now >= peer.deadline:
                peer.state = DialState.QUEUED
                self._queue.appendleft(peer)
            elif state is DialState.READY and peer.requested and now >= peer.deadline:
                self._finish(peer, "stalled on a metadata request", now)
        if self.layers is not None and self.result is None:
            for addr, why in self.layers.expired(now):
                self._finish(self._peers[addr], why, now)
        self._schedule(now)

    def get_timer(self) -> float | None:
        deadlines = [
            p.deadline
            for p in self._peers.values()
            if p.state in (DialState.CONNECTING, DialState.HANDSHAKE, DialState.WAITING)
            or (p.state is DialState.READY and p.requested)
        ]
        layers = self.layers.deadline() if self.layers is not None else None
        if layers is not None and self.result is None:
            deadlines.append(layers)
        return min(deadlines) if deadlines else None

    def next_action(self) -> Action | None:
        return self._actions.popleft() if self._actions else None

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def active(self) -> int:
        """Connections being made or open."""
        return self._active

    @property
    def idle(self) -> bool:
        """Nothing queued, in progress or waiting to be redialled: only new peers can
        change anything."""
        return (
            self._active == 0
            and not self._queue
            and not any(p.state is DialState.WAITING for p in self._peers.values())
        )

    # --- peer life cycle ---------------------------------------------------------------------

    def _schedule(self, now: float) -> None:
        if self.result is not None:
            return
        while self._queue and self._active < self.max_connections:
            peer = self._queue.popleft()
            if peer.state is not DialState.QUEUED:
                continue
            peer.state = DialState.CONNECTING
            peer.deadline = now + self.connect_timeout
            self._active += 1
            self.stats.tried += 1
            self._actions.append(Connect(peer.addr))

    def _redial(self, peer: DialPeer, now: float) -> bool:
        """A dial of ``peer`` failed before the peer wire was up: dial it again (after
        ``dialstate.redial_delay``), or say no."""
        if self.result is not None:
            return False
        delay = redial_delay(peer, self.encryption)
        if delay is None:
            return False
        self._active -= 1
        if delay:
            peer.state = DialState.WAITING  # its slot is free meanwhile
            peer.deadline = now + delay
        else:
            peer.state = DialState.QUEUED
            self._queue.appendleft(peer)
        self._schedule(now)
        return True

    def _finish(self, peer: DialPeer, why: str | None, now: float, *, close: bool = True) -> None:
        """Done with ``peer``: count why, release its requests, close, try the next one."""
        if peer.state is DialState.DONE:
            return
        if peer.state in ACTIVE:
            self._active -= 1
        peer.state = DialState.DONE
        peer.requested.clear()
        if why is not None:
            assert self.stats.failures is not None
            self.stats.failures[why] += 1
        if close:
            self._actions.append(Close(peer.addr, why or "done"))
        peer.conn = None
        peer.stream = None
        if self.layers is not None and self.result is None:
            self.layers.drop_peer(peer.addr)
            self._request_layers(now)
            self._schedule(now)
        elif self.result is None:
            self._release_sizes()
            self._request_more(now)
            self._schedule(now)

    def _process(self, peer: DialPeer, now: float) -> None:
        conn = peer.conn
        assert conn is not None
        while peer.state is not DialState.DONE:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, HandshakeReceived):
                if not peer.spoke:  # a redialled peer counts once
                    peer.spoke = True
                    self.stats.connected += 1
                if not event.supports_extensions:
                    self._finish(peer, "no extension protocol (BEP 10)", now)
                elif conn.ext_handshake_due:
                    self._send(peer, conn.send_ext_handshake())
            elif isinstance(event, ExtHandshake):
                self._on_ext_handshake(peer, event, now)
            elif isinstance(event, MetadataData):
                verified = self._on_piece(peer, event, now)
                if verified is not None:
                    self._verified(verified, now)
            elif isinstance(event, MetadataReject):
                self._finish(peer, "rejected the metadata request", now)
            elif isinstance(event, MetadataRequest):
                # We have nothing to give yet: say so, as BEP 9 asks.
                self._send(peer, conn.send_metadata_reject(event.piece))
            elif isinstance(event, Hashes | HashReject | HashRequest):
                self._on_hash_message(peer, event, now)
            elif isinstance(event, Violation):
                self._finish(peer, f"protocol violation: {event.reason}", now)
            elif isinstance(event, ConnectionClosed):
                self.connection_lost(peer.addr, None, now)
        if self.result is None and peer.state is DialState.READY:
            if self.layers is not None:
                self._request_layers(now)
            else:
                self._request_more(now)

    def _on_ext_handshake(self, peer: DialPeer, ev: ExtHandshake, now: float) -> None:
        if peer.state is DialState.READY:
            return  # a later, incremental handshake: nothing we need from it
        if "ut_metadata" not in ev.m or not ev.metadata_size:
            self._finish(peer, "does not offer the metadata (no ut_metadata)", now)
            return
        size = ev.metadata_size
        if self.metadata is not None and self.layers is not None:
            self._layers_offered(peer, size, now)
        else:
            self._metadata_offered(peer, size, now)

    def _resolved(self, result: Resolved, now: float) -> None:
        self.result = result
        self._actions.append(result)
        for other in list(self._peers.values()):
            if other.state in ACTIVE:
                self._finish(other, None, now)
            elif other.state is DialState.WAITING:
                other.state = DialState.DONE

    # --- explaining ----------------------------------------------------------------------

    def explain(self) -> str:
        """Why there is no result yet, in one line (for the peer side of a failure)."""
        return explain(self.stats)
