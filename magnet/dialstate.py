"""Each peer a resolve dials (``magnet.resolution``): its state, redials and MSE, sans IO.

``DialPeer`` is one peer's life in a resolve (queued, connecting, in the handshakes, ready,
waiting to be redialled, done); ``redial_delay`` is the redial policy after a failed
handshake, ``encrypted_dial`` wraps our first handshake in MSE/PE (``magnet.mse``), and
``PeerHost`` is what the phases of a resolve (metadata, piece layers) share of its
coordinator: the peer table, the queue of actions and the way a peer is let go.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from magnet.resolution_actions import Action, Addr, ResolutionStats, Resolved, Send

if TYPE_CHECKING:
    from magnet.encrypted_stream import EncryptedStream
    from magnet.peerwire import PeerConnection

__all__ = [
    "ACTIVE",
    "ENCRYPTION_POLICIES",
    "REDIALS",
    "REDIAL_BACKOFF_S",
    "DialPeer",
    "DialState",
    "PeerHost",
    "encrypted_dial",
    "redial_delay",
]

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


class DialState(enum.Enum):
    QUEUED = 0
    CONNECTING = 1
    HANDSHAKE = 2  # connected, waiting for its handshakes
    READY = 3  # has metadata, requesting
    DONE = 4
    WAITING = 5  # a dial failed: redialled at ``deadline``


ACTIVE = (DialState.CONNECTING, DialState.HANDSHAKE, DialState.READY)


class DialPeer:
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
        self.state = DialState.QUEUED
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


def redial_delay(peer: DialPeer, encryption: str) -> float | None:
    """A dial of ``peer`` failed before the peer wire was up: how long until it is dialled
    again (its connection forgotten, the way of dialling updated), or None for never.

    A peer that hung up before its handshake may refuse the way we dialled: under
    ``auto``/``prefer`` the first such failure is redialled at once the other way. Any
    other handshake failure (and a second one) waits ``REDIAL_BACKOFF_S``, doubling, for
    at most ``REDIALS`` more attempts. The way of dialling changes only while the peer
    never spoke BitTorrent to us (once it did, that way works), and never back to
    plaintext once the peer hung up on a plaintext handshake."""
    conn = peer.conn
    spoke = conn is not None and conn.remote_peer_id is not None
    other_way = encryption in ("auto", "prefer") and not spoke
    if other_way and not peer.redialled:
        peer.redialled = True
        delay = 0.0
    elif peer.redials < REDIALS:
        delay = REDIAL_BACKOFF_S * 2**peer.redials
        peer.redials += 1
    else:
        return None
    if other_way:
        # A peer that hung up on a plaintext handshake refuses plaintext: keep to MSE.
        peer.plain_refused = peer.plain_refused or not peer.encrypt
        peer.encrypt = peer.plain_refused or not peer.encrypt
    peer.conn = None
    peer.stream = None
    peer.requested.clear()
    return delay


def encrypted_dial(
    info_hash: bytes, hello: bytes, encryption: str, randbytes: Callable[[int], bytes]
) -> EncryptedStream:
    """The MSE/PE initiator for one dial, our BitTorrent handshake ``hello`` inside it."""
    from magnet.encrypted_stream import EncryptedStream
    from magnet.mse import CryptoMethod, MseInitiator

    methods = CryptoMethod.RC4
    if encryption != "require":
        methods |= CryptoMethod.PLAINTEXT
    # Our BitTorrent handshake rides in the MSE initial payload (no extra round trip);
    # libtorrent hangs up on an initial payload longer than the 68-byte handshake.
    return EncryptedStream(
        MseInitiator(info_hash, provide=methods, initial_payload=hello, randbytes=randbytes)
    )


class PeerHost:
    """What the phases of a resolve share of their coordinator (``Resolution``)."""

    _peers: dict[Addr, DialPeer]
    _actions: deque[Action]
    stats: ResolutionStats
    result: Resolved | None
    request_timeout: float

    def _send(self, peer: DialPeer, data: bytes) -> None:
        if peer.stream is not None:
            peer.stream.send(data)
            data = peer.stream.data_to_send()
        if data:
            self._actions.append(Send(peer.addr, data))

    def _finish(self, peer: DialPeer, why: str | None, now: float, *, close: bool = True) -> None:
        """Done with ``peer``: count why, close, try the next one (the coordinator's)."""
        raise NotImplementedError

    def _resolved(self, result: Resolved, now: float) -> None:
        """The resolve is over with ``result`` (the coordinator's)."""
        raise NotImplementedError
