"""The metadata phase of a resolve (BEP 9): pieces spread over peers, sizes bounded, sans IO.

``MetadataPhase`` is the part of ``magnet.resolution.Resolution`` that collects the info
dict: one ``MetadataAssembler`` per size peers claim (at most ``MAX_SIZES``, all within a
memory budget), requests spread over the ready peers with an end game for the last pieces,
and a peer dropped when its data alone fails the info-hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magnet.dialstate import DialPeer, DialState, PeerHost
from magnet.metadata import MetadataAssembler, MetadataError, piece_count
from magnet.peerwire import LocalProtocolError, MetadataData
from magnet.resolution_actions import Addr, Resolved

if TYPE_CHECKING:
    from magnet.layers import LayerFetcher

__all__ = ["MAX_METADATA_SIZE", "MAX_SIZES", "METADATA_BUDGET_SLACK", "MetadataPhase"]

MAX_METADATA_SIZE = 32 * 1024 * 1024
MAX_SIZES = 4  # distinct metadata sizes claimed before further claimants are dropped
METADATA_BUDGET_SLACK = 2 * 1024 * 1024  # bytes beyond max_metadata_size, over all sizes


class MetadataPhase(PeerHost):
    """Collects and verifies the info dict (a part of ``Resolution``)."""

    _v1: bytes | None
    _v2: bytes | None
    _assemblers: dict[int, MetadataAssembler]
    max_metadata_size: int
    metadata_budget: int
    requests_per_peer: int
    layers: LayerFetcher[Addr] | None

    def _open_assembler(self, size: int) -> bool:
        """Collect metadata of ``size`` bytes if the memory budget has room for it.

        Every size claimed at once is held in memory as its pieces arrive, so the sum of the
        sizes being collected is bounded (``metadata_budget``), not just each one: four
        liars claiming 32 MiB each no longer cost 128 MiB.
        """
        if sum(self._assemblers) + size > self.metadata_budget:
            return False
        self._assemblers[size] = MetadataAssembler(self._v1, self._v2, size, self.max_metadata_size)
        return True

    def _release_sizes(self) -> None:
        """Give up sizes no connected peer claims any more, then let waiting sizes in."""
        live = {p.size for p in self._peers.values() if p.state is DialState.READY}
        for size in [s for s in self._assemblers if s not in live]:
            del self._assemblers[size]
        for size in sorted(live - self._assemblers.keys()):
            self._open_assembler(size)

    def _metadata_offered(self, peer: DialPeer, size: int, now: float) -> None:
        """``peer`` offers metadata of ``size`` bytes: ask it, or say why not."""
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
        peer.state = DialState.READY
        peer.deadline = now + self.request_timeout

    def _on_piece(self, peer: DialPeer, ev: MetadataData, now: float) -> Resolved | None:
        """A piece arrived; the verified info dict when it was the last one."""
        if peer.state is not DialState.READY or ev.total_size != peer.size:
            self._finish(peer, "sent a piece of another size of metadata", now)
            return None
        asked = peer.requested.pop(ev.piece, None)
        if asked is None:
            return None  # unasked (or a duplicate after we moved on): ignore, it costs nothing
        self.stats.metadata_bytes += len(ev.data)
        peer.deadline = now + self.request_timeout
        assembler = self._assemblers[peer.size]
        try:
            assembler.add(ev.piece, ev.data, source=peer.addr)
        except MetadataError:
            return None  # another peer owns this round (after a failed verify): not its fault
        if not assembler.complete:
            return None
        info = assembler.verify()
        if info is not None:
            return Resolved(info, peer.addr, peer.source)
        liars = assembler.last_failure
        if len(liars) == 1:
            (liar,) = liars
            bad = next((p for a, p in self._peers.items() if a == liar), None)
            if bad is not None:
                self._finish(bad, "sent metadata that does not match the info-hash", now)
        elif len(self._assemblers) == 1 and peer.size:
            assert self.stats.failures is not None
            self.stats.failures["metadata from several peers did not verify"] += 1
        return None

    def _request_more(self, now: float) -> None:
        """Hand out missing pieces: spread over ready peers, at most ``requests_per_peer`` each.

        A piece goes to one peer at a time; once every missing piece is out, an idle peer
        may ask for one already out elsewhere (the end game), so one slow peer cannot hold
        up the last piece.
        """
        if self.result is not None or self.layers is not None:
            return
        ready = [p for p in self._peers.values() if p.state is DialState.READY]
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

    def pieces_total(self) -> int:
        sizes = list(self._assemblers)
        return piece_count(sizes[0]) if len(sizes) == 1 else 0

    @property
    def collecting_bytes(self) -> int:
        """The sizes of the metadata being collected at once (bounded by ``metadata_budget``)."""
        return sum(self._assemblers)
