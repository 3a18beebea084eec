"""Metadata exchange bookkeeping: cutting an info dict into pieces and putting it back together.

BEP 9 moves the raw info dictionary in 16 KiB pieces (all full-size but the last); the
receiver checks the whole against the magnet's info-hash: SHA-1 for v1 (BEP 3), SHA-256
for v2 (BEP 52). `MetadataAssembler` collects pieces, possibly from several peers, and
verifies them; `MetadataSource` serves an info dict we already hold. Pure bookkeeping: no
sockets, no clock, no peer wire (that is `magnet.peerwire`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable

__all__ = [
    "METADATA_PIECE",
    "MetadataAssembler",
    "MetadataError",
    "MetadataSource",
    "piece_count",
    "piece_length",
]

#: Size of one ut_metadata piece in bytes (BEP 9); only the last piece may be shorter.
METADATA_PIECE = 16384


class MetadataError(ValueError):
    """A metadata size, piece index or piece length that cannot be right."""


def piece_count(size: int) -> int:
    """Number of BEP 9 pieces an info dict of ``size`` bytes is cut into (ceil(size / 16 KiB))."""
    return -(-size // METADATA_PIECE)


def piece_length(size: int, piece: int) -> int | None:
    """Exact length of piece ``piece`` of an info dict of ``size`` bytes.

    Returns:
        16384 for every piece but the last, the remainder for the last, and None when
        ``piece`` is not a piece of such a dict (negative, or at/after the end).
    """
    offset = piece * METADATA_PIECE
    if piece < 0 or offset >= size:
        return None
    return min(METADATA_PIECE, size - offset)


# What to do when the assembled dict fails its hash check.
#
# A piece's hash cannot be checked on its own: only the whole dict can. When every piece came
# from one peer, that peer lied (or is broken) and the verdict is clear. When pieces came
# from several peers, any one of them may be the liar and there is no way to tell which.
# Trying combinations would cost up to 2^n hash checks and keeping suspects' pieces invites
# repeat poisoning, so the assembler does the simple thing: it drops everything, remembers
# who took part (`last_failure`), and runs the next round in *single-source mode*: the first
# source to deliver a piece claims the round and `wanted()` offers pieces to nobody else.
# If that round fails too, the claiming peer is proven to be lying; if it succeeds, we are
# done. A claimant that goes away (`discard`) releases the round to the next peer.
# Single-source mode costs parallelism only after an attack or a broken peer, which is rare.


class MetadataAssembler:
    """Collects the pieces of one info dict and checks them against the known info-hash(es).

    Args:
        info_hash_v1: 20-byte SHA-1 info-hash (btih), or None for a v2-only magnet.
        info_hash_v2: 32-byte SHA-256 info-hash (btmh), or None for a v1-only magnet.
        size: total size announced by the peer (``metadata_size`` / ``total_size``).
        max_size: the largest info dict we are willing to hold.

    Raises:
        ValueError: neither hash given, or a hash of the wrong length.
        MetadataError: ``size`` is not in ``1..max_size``.

    When both hashes are given, both must match: a hybrid torrent's info dict satisfies
    both, and checking SHA-256 too closes the door on SHA-1 collisions.
    """

    __slots__ = (
        "_claimant",
        "_hashes",
        "_pieces",
        "_received",
        "_single_source",
        "_sources",
        "last_failure",
        "size",
    )

    def __init__(
        self,
        info_hash_v1: bytes | None,
        info_hash_v2: bytes | None,
        size: int,
        max_size: int,
    ) -> None:
        if info_hash_v1 is None and info_hash_v2 is None:
            raise ValueError("need a v1 or a v2 info-hash to verify against")
        if info_hash_v1 is not None and len(info_hash_v1) != 20:
            raise ValueError("a v1 info-hash is 20 bytes")
        if info_hash_v2 is not None and len(info_hash_v2) != 32:
            raise ValueError("a v2 info-hash is 32 bytes")
        if not 0 < size <= max_size:
            raise MetadataError(f"metadata size {size} is not in 1..{max_size}")
        self._hashes: list[tuple[str, bytes]] = []
        if info_hash_v1 is not None:
            self._hashes.append(("sha1", info_hash_v1))
        if info_hash_v2 is not None:
            self._hashes.append(("sha256", info_hash_v2))
        self.size = size
        self._pieces: list[bytes | None] = [None] * piece_count(size)
        self._sources: list[Hashable] = [None] * len(self._pieces)
        self._received = 0
        self._single_source = False
        self._claimant: Hashable = None
        #: Sources whose pieces made up the last assembly that failed its hash check
        #: (empty until one fails). A single member is the proven liar.
        self.last_failure: frozenset[Hashable] = frozenset()

    @property
    def pieces_total(self) -> int:
        """How many pieces make up the info dict."""
        return len(self._pieces)

    @property
    def complete(self) -> bool:
        """Every piece is present (not yet verified)."""
        return self._received == len(self._pieces)

    @property
    def single_source(self) -> bool:
        """True after a failed multi-source assembly: the next round takes one peer's pieces."""
        return self._single_source

    def missing(self) -> list[int]:
        """Indices of the pieces not received yet, ascending."""
        return [i for i, p in enumerate(self._pieces) if p is None]

    def wanted(self, source: Hashable = None) -> list[int]:
        """Pieces that ``source`` may deliver now.

        All missing pieces, except in single-source mode once another source has claimed
        the round: then nothing.
        """
        if self._single_source and self._claimant is not None and self._claimant != source:
            return []
        return self.missing()

    def add(self, piece: int, data: bytes, source: Hashable = None) -> None:
        """Store one piece as delivered by ``source`` (any hashable peer key).

        A piece received twice keeps the later copy and its source.

        Raises:
            MetadataError: bad index, wrong length, or (single-source mode) the round
                already belongs to another source.
        """
        expected = piece_length(self.size, piece)
        if expected is None:
            raise MetadataError(f"piece {piece} is out of range (0..{self.pieces_total - 1})")
        if len(data) != expected:
            raise MetadataError(f"piece {piece} is {len(data)} bytes, expected {expected}")
        if self._single_source:
            if self._claimant is None:
                self._claimant = source
            elif self._claimant != source:
                raise MetadataError(f"this round takes pieces from {self._claimant!r} only")
        if self._pieces[piece] is None:
            self._received += 1
        self._pieces[piece] = bytes(data)
        self._sources[piece] = source

    def discard(self, source: Hashable) -> int:
        """Forget every piece ``source`` delivered (it went away or was caught lying).

        Returns:
            How many pieces were dropped.
        """
        dropped = 0
        for i, s in enumerate(self._sources):
            if s == source and self._pieces[i] is not None:
                self._pieces[i] = None
                self._sources[i] = None
                dropped += 1
        self._received -= dropped
        if self._claimant == source:
            self._claimant = None
        return dropped

    def verify(self) -> bytes | None:
        """Check the assembled dict against the info-hash(es).

        Returns:
            The raw info dict if every given hash matches. Otherwise None, after recording
            the sources in `last_failure`, dropping all pieces and switching to
            single-source mode if more than one source took part (see the essay above).

        Raises:
            MetadataError: not every piece is present yet.
        """
        if not self.complete:
            raise MetadataError(f"{len(self.missing())} of {self.pieces_total} pieces missing")
        info = b"".join(p for p in self._pieces if p is not None)
        if all(hashlib.new(name, info).digest() == want for name, want in self._hashes):
            return info
        self.last_failure = frozenset(self._sources)
        self._single_source = len(self.last_failure) > 1 or self._single_source
        self._claimant = None
        self._pieces = [None] * len(self._pieces)
        self._sources = [None] * len(self._pieces)
        self._received = 0
        return None


class MetadataSource:
    """Serves the pieces of an info dict we hold (the `serve` side of BEP 9)."""

    __slots__ = ("_info",)

    def __init__(self, info: bytes) -> None:
        if not info:
            raise MetadataError("an info dict is never empty")
        self._info = bytes(info)

    @property
    def size(self) -> int:
        """The ``metadata_size`` to advertise in the BEP 10 handshake."""
        return len(self._info)

    @property
    def pieces_total(self) -> int:
        """How many pieces the dict is cut into."""
        return piece_count(len(self._info))

    def piece(self, piece: int) -> bytes | None:
        """Bytes of piece ``piece``, or None when there is no such piece (send a reject)."""
        length = piece_length(len(self._info), piece)
        if length is None:
            return None
        start = piece * METADATA_PIECE
        return self._info[start : start + length]
