"""Fetching a v2 torrent's piece layers from peers over BEP 52 hash requests, sans IO.

Owns the decisions of the phase that follows the metadata of a v2 or hybrid magnet: which
files need a piece layer (those larger than one piece: BEP 52 ``piece layers`` holds no
entry for the others), the requests that fetch each layer (`magnet.merkle.
piece_layer_requests`: chunks of at most 512 piece hashes, each proven up to the file's
``pieces root``), which peer asks for which chunk, checking every answer against the root
before it is kept, and which peers to give up on. It never touches a connection: the caller
(`magnet.resolution`) sends the `HashRequest`s it hands out, feeds back the `Hashes` and
`HashReject`s that arrive, asks for the deadline and drops the peers it names.

Peers are keys (any hashable, an address in practice). Everything is bounded: requests in
flight per peer; pieces, at `MAX_PIECES` over all files (a verified info dict can still
claim an exabyte file in a few bytes; libtorrent's default limit), so chunks and layer
bytes too; the work per event, which touches the chunks in flight and a few more, not all
of them. A peer that sends hashes that do not prove, sends hashes it was not asked for,
stalls, or refuses `MAX_REJECTS` requests is named once and never asked again.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from magnet.hashmsgs import Hashes, HashReject, HashRequest
from magnet.merkle import (
    MerkleError,
    has_piece_layer,
    piece_count,
    piece_layer_height,
    piece_layer_requests,
    tree_height,
    verify_hashes,
)
from magnet.torrentfile import TorrentError, TorrentMeta, parse_info

__all__ = [
    "MAX_PIECES",
    "MAX_REJECTS",
    "REQUESTS_PER_PEER",
    "LayerFetcher",
    "LayerFile",
    "fetcher_for",
    "layer_files",
]

#: Hash requests in flight per peer: libtorrent answers each at once, and a 512-hash chunk
#: is ~17 KiB, so a few keep the pipe full without one slow peer holding much of the work.
REQUESTS_PER_PEER: Final = 4
#: Rejects a peer may send before it is asked nothing more (a seed that lacks a layer
#: refuses each of its chunks; one that refuses everything is no source at all).
MAX_REJECTS: Final = 2
#: Most pieces, over all the files, whose layers are fetched: libtorrent's max_pieces
#: (load_torrent_limits, 0x200000). 64 MiB of hashes at most.
MAX_PIECES: Final = 0x200000

P = TypeVar("P", bound=Hashable)


@dataclass(frozen=True, slots=True)
class LayerFile:
    """One file whose piece layer the .torrent must hold."""

    root: bytes
    length: int


def layer_files(meta: TorrentMeta) -> list[LayerFile]:
    """The files of a v2 or hybrid torrent that have a piece layer, each root once.

    Files of one piece or less have none; a file without a 32-byte ``pieces root`` cannot
    be checked, so it is left out (libtorrent refuses such a torrent anyway). Identical
    files share a root and a layer: one entry.
    """
    if meta.info_hash_v2 is None:
        return []
    try:
        piece_layer_height(meta.piece_length)
    except MerkleError:
        return []
    seen: dict[bytes, LayerFile] = {}
    for f in meta.files:
        if f.pieces_root is not None and has_piece_layer(f.length, meta.piece_length):
            seen.setdefault(f.pieces_root, LayerFile(f.pieces_root, f.length))
    return list(seen.values())


def fetcher_for(info: bytes, request_timeout: float) -> LayerFetcher[Any] | None:
    """A fetcher for the piece layers of the torrent of this verified info dict; None when
    there is nothing to fetch (v1, no file over one piece, an info dict that is no use:
    its caller says so) or too much (over `MAX_PIECES`)."""
    try:
        meta = parse_info(info)
        files = layer_files(meta)
        if files:
            return LayerFetcher(files, meta.piece_length, request_timeout=request_timeout)
    except (TorrentError, MerkleError):
        pass
    return None


@dataclass(slots=True)
class _Chunk:
    request: HashRequest
    height: int  # layer of the file's root
    pieces: int  # hashes of this chunk that cover the file (the rest are padding)
    hashes: list[bytes] | None = None  # once proven
    asked: int = 0  # peers with it in flight now
    refused_by: set[Hashable] = field(default_factory=set)


@dataclass(slots=True)
class _PeerState:
    in_flight: dict[HashRequest, float] = field(default_factory=dict)  # -> deadline
    late: set[HashRequest] = field(default_factory=set)  # answered elsewhere meanwhile
    rejects: int = 0


class LayerFetcher(Generic[P]):
    """The piece layers of ``files``, fetched from the peers added. See the module docstring.

    Args:
        files: the files that need a layer (`layer_files`).
        piece_length: the torrent's piece length (a power of two >= 16 KiB).
        requests_per_peer: hash requests in flight per peer.
        request_timeout: seconds a peer has to answer a request before it is dropped.
        max_rejects: rejects after which a peer is asked nothing more.

    Raises:
        MerkleError: a bad piece length or file length, or more than `MAX_PIECES` pieces.
    """

    def __init__(
        self,
        files: Iterable[LayerFile],
        piece_length: int,
        *,
        requests_per_peer: int = REQUESTS_PER_PEER,
        request_timeout: float = 5.0,
        max_rejects: int = MAX_REJECTS,
    ) -> None:
        self.piece_length = piece_length
        self.requests_per_peer = requests_per_peer
        self.request_timeout = request_timeout
        self.max_rejects = max_rejects
        self._chunks: dict[HashRequest, _Chunk] = {}
        self._order: list[bytes] = []
        files = list(files)
        pieces = sum(piece_count(f.length, piece_length) for f in files)
        if pieces > MAX_PIECES:
            raise MerkleError(f"{pieces} pieces: over the {MAX_PIECES} whose layers we fetch")
        for f in files:
            self._order.append(f.root)
            height = tree_height(f.length)
            left = piece_count(f.length, piece_length)
            for r in piece_layer_requests(f.length, piece_length):
                request = HashRequest(f.root, r.base_layer, r.index, r.length, r.proof_layers)
                self._chunks[request] = _Chunk(request, height, min(r.length, left - r.index))
        self._peers: dict[P, _PeerState] = {}
        # The chunks not proven yet, in order (proven ones leave), and how many of those
        # nobody is asking for: what keeps `requests_for` from walking every chunk.
        self._open = dict(self._chunks)
        self._unasked = len(self._chunks)
        #: Peers that supplied at least one proven chunk, in the order they first did.
        self.sources: list[P] = []
        self.rejected = 0  # rejects received, over all peers

    # --- what the caller asks --------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Every layer fetched and proven."""
        return not self._open

    @property
    def chunks(self) -> int:
        """Requests the whole job takes (one per 512 pieces of each file)."""
        return len(self._chunks)

    @property
    def peers(self) -> int:
        """Peers that may still be asked."""
        return len(self._peers)

    @property
    def in_flight(self) -> int:
        """Requests out now, over all peers (none while layers are missing: stuck, unless
        new peers come)."""
        return sum(len(s.in_flight) for s in self._peers.values())

    def layers(self) -> dict[bytes, bytes]:
        """``piece layers`` as a .torrent holds it: root -> the file's piece hashes joined.

        Raises:
            RuntimeError: not `done`.
        """
        if not self.done:
            raise RuntimeError("piece layers are not all fetched")
        out: dict[bytes, list[bytes]] = {root: [] for root in self._order}
        for chunk in self._chunks.values():  # in request order: each file's chunks in turn
            assert chunk.hashes is not None
            out[chunk.request.pieces_root] += chunk.hashes[: chunk.pieces]
        return {root: b"".join(hashes) for root, hashes in out.items()}

    def deadline(self) -> float | None:
        """When the oldest request in flight times out (`expired` then names its peer)."""
        deadlines = [d for p in self._peers.values() for d in p.in_flight.values()]
        return min(deadlines) if deadlines else None

    # --- peers -----------------------------------------------------------------------------

    def add_peer(self, peer: P) -> None:
        """A peer that has the torrent (it offered the verified metadata) may be asked."""
        self._peers.setdefault(peer, _PeerState())

    def drop_peer(self, peer: P) -> None:
        """Ask ``peer`` nothing more (it went away); its requests go back to the others."""
        state = self._peers.pop(peer, None)
        if state is not None:
            for request in state.in_flight:
                self._unask(self._chunks[request])

    def _ask(self, chunk: _Chunk) -> None:
        chunk.asked += 1
        if chunk.asked == 1:
            self._unasked -= 1

    def _unask(self, chunk: _Chunk) -> None:
        chunk.asked -= 1
        if chunk.asked == 0 and chunk.hashes is None:
            self._unasked += 1

    def requests_for(self, peer: P, now: float) -> list[HashRequest]:
        """Requests to send ``peer`` now, marked in flight; [] when it has enough out.

        Chunks nobody is asking for go first; once every missing chunk is out, an idle peer
        asks for the least-asked one again (the end game), so one slow peer cannot hold up
        the last chunk.
        """
        state = self._peers.get(peer)
        if state is None or self.done:
            return []
        room = self.requests_per_peer - len(state.in_flight)
        if room <= 0:
            return []
        # A fair share of the unasked chunks, so that peers ready at once split the work.
        with_room = sum(
            1 for s in self._peers.values() if len(s.in_flight) < self.requests_per_peer
        )
        room = min(room, max(1, -(-self._unasked // max(1, with_room))))
        picked: list[_Chunk] = []
        if self._unasked:
            # Unasked chunks sit behind the ones in flight (handed out in order) and the
            # few this peer refused: the walk stops after ``room`` of them.
            for chunk in self._open.values():
                if chunk.asked == 0 and peer not in chunk.refused_by:
                    picked.append(chunk)
                    if len(picked) == room:
                        break
        if not picked and not state.in_flight:
            # Everything is out (so few chunks are open): repeat the least-asked one.
            candidates = [
                c
                for c in self._open.values()
                if c.request not in state.in_flight and peer not in c.refused_by
            ]
            picked = sorted(candidates, key=lambda c: c.asked)[:1]
        for chunk in picked:
            self._ask(chunk)
            state.in_flight[chunk.request] = now + self.request_timeout
        return [c.request for c in picked]

    def expired(self, now: float) -> list[tuple[P, str]]:
        """Peers with a request unanswered past its deadline, and why: drop each of them."""
        return [
            (peer, "stalled on a hash request")
            for peer, state in self._peers.items()
            if any(d <= now for d in state.in_flight.values())
        ]

    # --- answers ---------------------------------------------------------------------------

    def on_hashes(self, peer: P, msg: Hashes) -> str | None:
        """A `hashes` from ``peer``. Returns why to drop the peer, or None.

        Kept only if it answers a request in flight to this peer, field for field, and its
        proof reaches the file's pieces root (`magnet.merkle.verify_hashes`).
        """
        state = self._peers.get(peer)
        if state is None:
            return None  # dropped already; nothing it says counts
        request = msg.request
        chunk = self._chunks.get(request)
        if request in state.late:
            state.late.discard(request)
            return None  # the end game's second answer: the chunk is proven already
        if chunk is None or request not in state.in_flight:
            return "sent hashes it was not asked for"
        del state.in_flight[request]
        try:
            hashes = verify_hashes(msg.hash_range, msg.hashes, request.pieces_root, chunk.height)
        except MerkleError:
            self._unask(chunk)
            return "sent hashes that do not prove to the pieces root"
        chunk.hashes = hashes  # (it was open: an answer to a proven chunk is a late one)
        del self._open[request]
        chunk.asked -= 1
        if peer not in self.sources:
            self.sources.append(peer)
        for other, other_state in self._peers.items():
            if other != peer and other_state.in_flight.pop(request, None) is not None:
                chunk.asked -= 1
                other_state.late.add(request)
        return None

    def on_reject(self, peer: P, msg: HashReject) -> str | None:
        """A `hash reject` from ``peer``. Returns why to drop the peer, or None.

        The peer is not asked for that chunk again; after `max_rejects` it is dropped.
        A reject of a request it no longer has in flight changes nothing.
        """
        state = self._peers.get(peer)
        request = msg.request
        if state is None or request not in state.in_flight:
            if state is not None:
                state.late.discard(request)
            return None
        del state.in_flight[request]
        chunk = self._chunks[request]
        self._unask(chunk)
        chunk.refused_by.add(peer)
        state.rejects += 1
        self.rejected += 1
        if state.rejects >= self.max_rejects:
            return "rejected hash requests"
        return None
