"""Fetching a torrent's info dict from peers (BEP 9 over BEP 10): the scheduler, sans IO.

``Resolution`` is fed peer addresses as the DHT (or ``x.pe``, or trackers) find them, and
the bytes and fates of the TCP connections its driver opens for it. It decides whom to
connect to (a bounded number at a time), speaks the peer wire through one
``PeerConnection`` per peer, spreads the metadata pieces over every peer that has them,
verifies the assembled dict against the info-hash, and drops peers that stall, reject,
lie about the size or send data that does not verify. The first verified copy wins. With
``piece_layers`` on, a v2 or hybrid torrent then goes through a second phase on the same
connections: its BEP 52 piece layers over hash requests (``magnet.layers`` decides).

Its output is a queue of actions (``Connect``, ``Send``, ``Close``, ``Resolved``); time
comes in as ``now`` and leaves as one deadline (``get_timer``). It keeps counts of what
happened to every peer so that a failure can be explained in one line.
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from magnet.layers import LayerFetcher, fetcher_for
from magnet.metadata import MetadataAssembler, MetadataError, piece_count
from magnet.peerwire import (
    NEED_DATA,
    ConnectionClosed,
    ExtHandshake,
    HandshakeReceived,
    Hashes,
    HashReject,
    HashRequest,
    LocalProtocolError,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    PeerConnection,
    Violation,
)

if TYPE_CHECKING:
    from magnet.encrypted_stream import EncryptedStream

__all__ = [
    "ENCRYPTION_POLICIES",
    "Action",
    "Close",
    "Connect",
    "MetadataVerified",
    "Resolution",
    "ResolutionStats",
    "Resolved",
    "Send",
]

Addr = tuple[str, int]

MAX_METADATA_SIZE = 32 * 1024 * 1024
MAX_SIZES = 4  # distinct metadata sizes claimed before further claimants are dropped
METADATA_BUDGET_SLACK = 2 * 1024 * 1024  # bytes beyond max_metadata_size, over all sizes
# Redials after a failed handshake (hung up, MSE failed, timed out): a peer's first failure
# before it spoke BitTorrent is redialled at once the other way of encrypting (see below);
# after that, up to REDIALS more attempts, REDIAL_BACKOFF_S, then twice as long each time.
# aria2 hangs up on (and bans the port of) a peer that broke its rules; loss on a long path
# kills an MSE exchange now and then: one lost dial must not lose the only seed.
REDIALS = 3
REDIAL_BACKOFF_S = 1.0

# How to dial (MSE/PE, see magnet/mse.py):
#   auto    - plaintext first; a peer that hangs up before its handshake is redialled at once
#             with encryption (encryption-only peers do exactly that), so both kinds resolve
#             about as fast and plaintext peers pay no Diffie-Hellman round trip;
#   prefer  - encrypted first (RC4 or plaintext, the peer picks), plaintext as the fallback;
#   require - encrypted, RC4 only, no fallback;
#   off     - plaintext only.
ENCRYPTION_POLICIES = ("auto", "prefer", "require", "off")


@dataclass(frozen=True, slots=True)
class Connect:
    addr: Addr


@dataclass(frozen=True, slots=True)
class Send:
    addr: Addr
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    addr: Addr
    reason: str


@dataclass(frozen=True, slots=True)
class Resolved:
    info: bytes  # the raw, verified info dict
    peer: Addr
    source: str  # where we learned of the peer: "dht", "x.pe", "tracker ..."
    # BEP 52 piece layers (root -> hashes), proven; None when not fetched (v1, or not asked)
    piece_layers: dict[bytes, bytes] | None = None
    layer_peers: tuple[Addr, ...] = ()  # the peers whose hashes were kept


@dataclass(frozen=True, slots=True)
class MetadataVerified:
    """The info dict verified; the piece layers phase starts (``Resolved`` ends it)."""

    result: Resolved  # what the resolve is worth without the layers


Action = Connect | Send | Close | Resolved | MetadataVerified


class _State(enum.Enum):
    QUEUED = 0
    CONNECTING = 1
    HANDSHAKE = 2  # connected, waiting for its handshakes
    READY = 3  # has metadata, requesting
    DONE = 4
    WAITING = 5  # a dial failed: redialled at ``deadline``


_ACTIVE = (_State.CONNECTING, _State.HANDSHAKE, _State.READY)


class _Peer:
    __slots__ = (
        "addr",
        "conn",
        "deadline",
        "encrypt",
        "plain_refused",
        "redialled",
        "redials",
        "requested",
        "size",
        "source",
        "spoke",
        "state",
        "stream",
    )

    def __init__(self, addr: Addr, source: str) -> None:
        self.addr = addr
        self.source = source
        self.state = _State.QUEUED
        self.conn: PeerConnection | None = None
        self.stream: EncryptedStream | None = None  # MSE/PE, when dialled encrypted
        self.encrypt = False  # dial this peer with MSE
        self.redialled = False  # the fallback attempt has been used
        self.plain_refused = False  # it hung up on a plaintext handshake
        self.redials = 0  # redials after back-off so far
        self.spoke = False  # its BitTorrent handshake arrived on some connection
        self.deadline = 0.0
        self.size = 0
        self.requested: dict[int, float] = {}  # piece -> when asked


# libtorrent answers a ut_metadata request at once only while its send buffer holds under
# 160 KiB (ten 16 KiB pieces); later requests wait for its once-a-second tick. Eight in flight
# per peer keeps every request on the fast path (ask more and big metadata stalls ~1 s).
REQUESTS_PER_PEER = 8


@dataclass(slots=True)
class ResolutionStats:
    """What happened so far: progress for a display, and reasons for a failure line."""

    known: int = 0  # distinct peers heard of
    tried: int = 0  # connections attempted
    connected: int = 0  # connections that reached a handshake
    with_metadata: int = 0  # peers whose ext handshake offered the metadata
    metadata_bytes: int = 0  # piece bytes received
    refused: int = 0  # peers the address policy refused (private, loopback, bogons)
    failures: Counter[str] | None = None

    def __post_init__(self) -> None:
        if self.failures is None:
            self.failures = Counter()


class Resolution:
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
        self._peers: dict[Addr, _Peer] = {}
        self._queue: deque[_Peer] = deque()
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
            peer = _Peer(addr, source)
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
        if peer is None or peer.state is not _State.CONNECTING:
            return
        peer.state = _State.HANDSHAKE
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
            from magnet.encrypted_stream import EncryptedStream
            from magnet.mse import CryptoMethod, MseInitiator

            assert self._randbytes is not None
            methods = CryptoMethod.RC4
            if self.encryption != "require":
                methods |= CryptoMethod.PLAINTEXT
            # Our BitTorrent handshake rides in the MSE initial payload (no extra round trip);
            # libtorrent hangs up on an initial payload longer than the 68-byte handshake.
            stream = EncryptedStream(
                MseInitiator(
                    self.info_hash,
                    provide=methods,
                    initial_payload=hello,
                    randbytes=self._randbytes,
                )
            )
            peer.stream = stream
            self._actions.append(Send(addr, stream.data_to_send()))
        else:
            self._actions.append(Send(addr, hello))

    def data_received(self, addr: Addr, data: bytes, now: float) -> None:
        peer = self._peers.get(addr)
        if peer is None or peer.conn is None or peer.state is _State.DONE or not data:
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
        if peer is None or peer.state in (_State.DONE, _State.QUEUED, _State.WAITING):
            return  # (an old connection's end, after a redial was decided)
        if peer.state is _State.CONNECTING:
            why = "connect failed" if reason is None else f"connect failed: {reason}"
        elif peer.state is _State.HANDSHAKE:
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
            if state is _State.CONNECTING and now >= peer.deadline:
                self._finish(peer, "connect timed out", now)
            elif state is _State.HANDSHAKE and now >= peer.deadline:
                self._actions.append(Close(peer.addr, "handshake timed out"))
                if not self._redial(peer, now):
                    self._finish(peer, "handshake timed out", now, close=False)
            elif state is _State.WAITING and now >= peer.deadline:
                peer.state = _State.QUEUED
                self._queue.appendleft(peer)
            elif state is _State.READY and peer.requested and now >= peer.deadline:
                self._finish(peer, "stalled on a metadata request", now)
        if self.layers is not None and self.result is None:
            for addr, why in self.layers.expired(now):
                self._finish(self._peers[addr], why, now)
        self._schedule(now)

    def get_timer(self) -> float | None:
        deadlines = [
            p.deadline
            for p in self._peers.values()
            if p.state in (_State.CONNECTING, _State.HANDSHAKE, _State.WAITING)
            or (p.state is _State.READY and p.requested)
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
    def collecting_bytes(self) -> int:
        """The sizes of the metadata being collected at once (bounded by ``metadata_budget``)."""
        return sum(self._assemblers)

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
            and not any(p.state is _State.WAITING for p in self._peers.values())
        )

    # --- peer life cycle ---------------------------------------------------------------------

    def _schedule(self, now: float) -> None:
        if self.result is not None:
            return
        while self._queue and self._active < self.max_connections:
            peer = self._queue.popleft()
            if peer.state is not _State.QUEUED:
                continue
            peer.state = _State.CONNECTING
            peer.deadline = now + self.connect_timeout
            self._active += 1
            self.stats.tried += 1
            self._actions.append(Connect(peer.addr))

    def _redial(self, peer: _Peer, now: float) -> bool:
        """A dial of ``peer`` failed before the peer wire was up: dial it again, or say no.

        A peer that hung up before its handshake may refuse the way we dialled: under
        ``auto``/``prefer`` the first such failure is redialled at once the other way. Any
        other handshake failure (and a second one) waits ``REDIAL_BACKOFF_S``, doubling, for
        at most ``REDIALS`` more attempts. The way of dialling changes only while the peer
        never spoke BitTorrent to us (once it did, that way works), and never back to
        plaintext once the peer hung up on a plaintext handshake."""
        if self.result is not None:
            return False
        conn = peer.conn
        spoke = conn is not None and conn.remote_peer_id is not None
        other_way = self.encryption in ("auto", "prefer") and not spoke
        if other_way and not peer.redialled:
            peer.redialled = True
            delay = 0.0
        elif peer.redials < REDIALS:
            delay = REDIAL_BACKOFF_S * 2**peer.redials
            peer.redials += 1
        else:
            return False
        if other_way:
            # A peer that hung up on a plaintext handshake refuses plaintext: keep to MSE.
            peer.plain_refused = peer.plain_refused or not peer.encrypt
            peer.encrypt = peer.plain_refused or not peer.encrypt
        self._active -= 1
        peer.conn = None
        peer.stream = None
        peer.requested.clear()
        if delay:
            peer.state = _State.WAITING  # its slot is free meanwhile
            peer.deadline = now + delay
        else:
            peer.state = _State.QUEUED
            self._queue.appendleft(peer)
        self._schedule(now)
        return True

    def _finish(self, peer: _Peer, why: str | None, now: float, *, close: bool = True) -> None:
        """Done with ``peer``: count why, release its requests, close, try the next one."""
        if peer.state is _State.DONE:
            return
        if peer.state in _ACTIVE:
            self._active -= 1
        peer.state = _State.DONE
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

    def _open_assembler(self, size: int) -> bool:
        """Collect metadata of ``size`` bytes if the memory budget has room for it.

        Every size claimed at once is held in memory as its pieces arrive, so the sum of the
        sizes being collected is bounded (``metadata_budget``), not just each one: four
        liars claiming 32 MiB each no longer cost 128 MiB.
        """
        if sum(self._assemblers) + size > self.metadata_budget:
            return False
        self._assemblers[size] = MetadataAssembler(
            self._v1, self._v2, size, self.max_metadata_size
        )
        return True

    def _release_sizes(self) -> None:
        """Give up sizes no connected peer claims any more, then let waiting sizes in."""
        live = {p.size for p in self._peers.values() if p.state is _State.READY}
        for size in [s for s in self._assemblers if s not in live]:
            del self._assemblers[size]
        for size in sorted(live - self._assemblers.keys()):
            self._open_assembler(size)

    def _process(self, peer: _Peer, now: float) -> None:
        conn = peer.conn
        assert conn is not None
        while peer.state is not _State.DONE:
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
                self._on_piece(peer, event, now)
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
        if self.result is None and peer.state is _State.READY:
            if self.layers is not None:
                self._request_layers(now)
            else:
                self._request_more(now)

    def _send(self, peer: _Peer, data: bytes) -> None:
        if peer.stream is not None:
            peer.stream.send(data)
            data = peer.stream.data_to_send()
        if data:
            self._actions.append(Send(peer.addr, data))

    def _on_ext_handshake(self, peer: _Peer, ev: ExtHandshake, now: float) -> None:
        if peer.state is _State.READY:
            return  # a later, incremental handshake: nothing we need from it
        if "ut_metadata" not in ev.m or not ev.metadata_size:
            self._finish(peer, "does not offer the metadata (no ut_metadata)", now)
            return
        size = ev.metadata_size
        if self.metadata is not None and self.layers is not None:
            # The layers phase: a peer with this very torrent may be asked for hashes.
            if size != len(self.metadata.info):
                self._finish(peer, "claims another metadata size", now)
                return
            self.stats.with_metadata += 1
            peer.size = size
            peer.state = _State.READY
            self.layers.add_peer(peer.addr)
            return
        if size > self.max_metadata_size:
            self._finish(peer, f"claims an absurd metadata size ({size} bytes)", now)
            return
        if size not in self._assemblers:
            if len(self._assemblers) >= MAX_SIZES:
                self._finish(peer, "claims yet another metadata size", now)
                return
            # A size that does not fit the memory budget beside the sizes being collected
            # waits (its peer stays connected, asked nothing) until one of those is given up.
            self._open_assembler(size)
        self.stats.with_metadata += 1
        peer.size = size
        peer.state = _State.READY
        peer.deadline = now + self.request_timeout

    def _on_piece(self, peer: _Peer, ev: MetadataData, now: float) -> None:
        if peer.state is not _State.READY or ev.total_size != peer.size:
            self._finish(peer, "sent a piece of another size of metadata", now)
            return
        asked = peer.requested.pop(ev.piece, None)
        if asked is None:
            return  # unasked (or a duplicate after we moved on): ignore, it costs nothing
        self.stats.metadata_bytes += len(ev.data)
        peer.deadline = now + self.request_timeout
        assembler = self._assemblers[peer.size]
        try:
            assembler.add(ev.piece, ev.data, source=peer.addr)
        except MetadataError:
            return  # another peer owns this round (after a failed verify): not its fault
        if not assembler.complete:
            return
        info = assembler.verify()
        if info is not None:
            self._verified(Resolved(info, peer.addr, peer.source), now)
            return
        liars = assembler.last_failure
        if len(liars) == 1:
            (liar,) = liars
            bad = next((p for a, p in self._peers.items() if a == liar), None)
            if bad is not None:
                self._finish(bad, "sent metadata that does not match the info-hash", now)
        elif len(self._assemblers) == 1 and peer.size:
            assert self.stats.failures is not None
            self.stats.failures["metadata from several peers did not verify"] += 1

    def _verified(self, result: Resolved, now: float) -> None:
        """The metadata is in: done, or on to the piece layers of a v2 torrent."""
        layers: LayerFetcher[Addr] | None = None
        if self.piece_layers:
            layers = fetcher_for(result.info, self.request_timeout)
        if layers is None:
            self._resolved(result, now)
            return
        self.metadata = result
        self._actions.append(MetadataVerified(result))
        self.layers = layers
        self._assemblers.clear()
        for p in self._peers.values():
            p.requested.clear()
            if p.state is _State.READY and p.size == len(result.info):
                self.layers.add_peer(p.addr)
            elif p.state is _State.READY:
                self._finish(p, "claimed another metadata size", now)
        self._request_layers(now)

    def _resolved(self, result: Resolved, now: float) -> None:
        self.result = result
        self._actions.append(result)
        for other in list(self._peers.values()):
            if other.state in _ACTIVE:
                self._finish(other, None, now)
            elif other.state is _State.WAITING:
                other.state = _State.DONE

    def _on_hash_message(
        self, peer: _Peer, msg: Hashes | HashReject | HashRequest, now: float
    ) -> None:
        conn = peer.conn
        assert conn is not None
        if isinstance(msg, HashRequest):
            # We hold no hashes to give while resolving: refuse, as BEP 52 asks.
            self._send(peer, conn.send_hash_reject(msg.reject()))
            return
        layers = self.layers
        if layers is None or peer.state is not _State.READY:
            return  # unasked, before any request of ours: it costs nothing
        if isinstance(msg, Hashes):
            why = layers.on_hashes(peer.addr, msg)
        else:
            why = layers.on_reject(peer.addr, msg)
        if why is not None:
            self._finish(peer, why, now)
        elif layers.done:
            assert self.metadata is not None
            sources = tuple(layers.sources)
            self._resolved(
                Resolved(
                    self.metadata.info,
                    self.metadata.peer,
                    self.metadata.source,
                    layers.layers(),
                    sources,
                ),
                now,
            )

    def _request_layers(self, now: float) -> None:
        """Hand out hash requests to every peer with room (``magnet.layers`` picks)."""
        layers = self.layers
        assert layers is not None
        for p in list(self._peers.values()):
            if p.state is not _State.READY or p.conn is None:
                continue
            batch = b"".join(p.conn.send_hash_request(r) for r in layers.requests_for(p.addr, now))
            if batch:
                self._send(p, batch)
        waiting = (_State.QUEUED, _State.CONNECTING, _State.HANDSHAKE, _State.WAITING)
        if (
            not layers.done
            and not layers.in_flight
            and self.metadata is not None
            and not any(p.state in waiting for p in self._peers.values())
        ):
            # Nobody left who may answer (gone, or refused what is missing): the metadata
            # alone now, rather than a wait for peers that may never come (the caller
            # says the .torrent lacks its layers).
            self._resolved(self.metadata, now)

    def _request_more(self, now: float) -> None:
        """Hand out missing pieces: spread over ready peers, at most ``requests_per_peer`` each.

        A piece goes to one peer at a time; once every missing piece is out, an idle peer
        may ask for one already out elsewhere (the end game), so one slow peer cannot hold
        up the last piece.
        """
        if self.result is not None or self.layers is not None:
            return
        ready = [p for p in self._peers.values() if p.state is _State.READY]
        for size, assembler in self._assemblers.items():
            peers = [p for p in ready if p.size == size]
            if not peers:
                continue
            out: dict[int, int] = {}
            for p in peers:
                for piece in p.requested:
                    out[piece] = out.get(piece, 0) + 1
            for p in sorted(peers, key=lambda q: len(q.requested)):
                room = self.requests_per_peer - len(p.requested)
                if room <= 0:
                    continue
                wanted = [i for i in assembler.wanted(p.addr) if i not in p.requested]
                fresh = [i for i in wanted if i not in out]
                if not fresh and not p.requested:
                    fresh = sorted(wanted, key=lambda i: out.get(i, 0))[:1]  # end game
                conn = p.conn
                assert conn is not None
                batch = b""
                for piece in fresh[:room]:
                    try:
                        batch += conn.send_metadata_request(piece)
                    except LocalProtocolError:
                        break
                    p.requested[piece] = now
                    out[piece] = out.get(piece, 0) + 1
                if batch:
                    if len(p.requested) == len(fresh[:room]):
                        p.deadline = now + self.request_timeout
                    self._send(p, batch)

    # --- explaining ------------------------------------------------------------------------

    def pieces_total(self) -> int:
        sizes = list(self._assemblers)
        return piece_count(sizes[0]) if len(sizes) == 1 else 0

    def explain(self) -> str:
        """Why there is no result yet, in one line (for the peer side of a failure)."""
        st = self.stats
        assert st.failures is not None
        reasons = ", ".join(f"{n} {why}" for why, n in st.failures.most_common(4))
        if st.known == 0:
            if st.refused:
                return (
                    f"no peers found ({st.refused} on private or loopback addresses refused;"
                    " allow_private opts in)"
                )
            return "no peers found"
        if st.connected == 0:
            return f"{st.known} peers found, none could be connected ({reasons or 'still trying'})"
        if st.with_metadata == 0:
            return (
                f"{st.connected} of {st.known} peers connected, none offers the metadata"
                f" ({reasons or 'still waiting'})"
            )
        return (
            f"{st.with_metadata} of {st.known} peers offered the metadata, none delivered a"
            f" verified copy ({reasons or 'still waiting'})"
        )
