"""The piece layers phase of a resolve (BEP 52), on the connections of the metadata, sans IO.

``LayersPhase`` is the part of ``magnet.resolution.Resolution`` that runs once a v2 or
hybrid info dict is verified: it hands the ready peers to a ``magnet.layers.LayerFetcher``,
sends the hash requests that fetcher picks, feeds back the answers, refuses requests for
hashes we do not hold, and ends the resolve when the layers are proven or nobody is left
who may send them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magnet.dialstate import DialPeer, DialState, PeerHost
from magnet.metadata import MetadataAssembler
from magnet.peerwire import Hashes, HashReject, HashRequest
from magnet.resolution_actions import Addr, MetadataVerified, Resolved

if TYPE_CHECKING:
    from magnet.layers import LayerFetcher

__all__ = ["LayersPhase"]


class LayersPhase(PeerHost):
    """Fetches the piece layers after the metadata (a part of ``Resolution``)."""

    piece_layers: bool
    metadata: Resolved | None
    layers: LayerFetcher[Addr] | None
    _assemblers: dict[int, MetadataAssembler]

    def _verified(self, result: Resolved, now: float) -> None:
        """The metadata is in: done, or on to the piece layers of a v2 torrent."""
        layers: LayerFetcher[Addr] | None = None
        if self.piece_layers:  # a v2 or hybrid link: only then is magnet.layers imported
            from magnet.layers import fetcher_for

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
            if p.state is DialState.READY and p.size == len(result.info):
                self.layers.add_peer(p.addr)
            elif p.state is DialState.READY:
                self._finish(p, "claimed another metadata size", now)
        self._request_layers(now)

    def _layers_offered(self, peer: DialPeer, size: int, now: float) -> None:
        """In the layers phase, a peer with this very torrent may be asked for hashes."""
        assert self.metadata is not None and self.layers is not None
        if size != len(self.metadata.info):
            self._finish(peer, "claims another metadata size", now)
            return
        self.stats.with_metadata += 1
        peer.size = size
        peer.state = DialState.READY
        self.layers.add_peer(peer.addr)

    def _on_hash_message(
        self, peer: DialPeer, msg: Hashes | HashReject | HashRequest, now: float
    ) -> None:
        conn = peer.conn
        assert conn is not None
        if isinstance(msg, HashRequest):
            # We hold no hashes to give while resolving: refuse, as BEP 52 asks.
            self._send(peer, conn.send_hash_reject(msg.reject()))
            return
        layers = self.layers
        if layers is None or peer.state is not DialState.READY:
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
            if p.state is not DialState.READY or p.conn is None:
                continue
            batch = b"".join(p.conn.send_hash_request(r) for r in layers.requests_for(p.addr, now))
            if batch:
                self._send(p, batch)
        waiting = (DialState.QUEUED, DialState.CONNECTING, DialState.HANDSHAKE, DialState.WAITING)
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
