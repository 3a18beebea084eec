"""BEP 52 Merkle trees: pieces roots, piece layers and the proofs of hash requests.

Owns the arithmetic of the per-file SHA-256 trees of BitTorrent v2 (BEP 52, "pieces root",
"piece layers" and the `hash request` / `hashes` messages): leaf hashes of 16 KiB blocks,
padding to a power of two, the root of a file, its piece layer for a piece length, checking
a received piece layer against the root, and which hashes answer a hash request and how
they prove themselves. Pure functions over bytes and ints: no I/O, no clock. The wire form
of the messages lives in `magnet.hashmsgs`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BLOCK_SIZE",
    "HASH_SIZE",
    "MAX_REQUEST_LENGTH",
    "MAX_TREE_HEIGHT",
    "HashRange",
    "MerkleError",
    "MerkleTree",
    "block_hashes",
    "fold_proof",
    "has_piece_layer",
    "is_power_of_two",
    "layer_root",
    "next_power_of_two",
    "pad_hash",
    "piece_count",
    "piece_layer",
    "piece_layer_from_leaves",
    "piece_layer_height",
    "piece_layer_requests",
    "pieces_root",
    "root_from_layer",
    "split_hashes",
    "tree_height",
    "verify_hashes",
    "verify_piece_layer",
]

# Theory of operation
# -------------------
# A file is cut into 16 KiB blocks (the last one may be short); each block's SHA-256 is a
# leaf. The leaves are padded with 32 zero bytes up to a power of two, and every node above
# is SHA-256(left || right). Layers are numbered from the leaves up, as BEP 52's "base
# layer" is: layer 0 holds the leaves and the root sits at layer `tree_height(file_length)`.
# A pad subtree needs no data: its node at layer n is `pad_hash(n)`, the zero leaf hashed up
# n times, so padding any layer means appending that layer's pad hash.
#
# With pieces of 2**h blocks, layer h is the "piece layer": one node per piece. The .torrent
# stores it only for files larger than one piece, and only the nodes that cover file data;
# the nodes that cover nothing but padding are implied (they are `pad_hash(h)`).
#
# A hash request names a range of one layer: `length` nodes from `index` in `base_layer`,
# `length` a power of two and `index` a multiple of it, so the range is the bottom of one
# whole subtree whose top is at layer base_layer + log2(length). To tie that subtree to a
# node the requester already trusts, the answer appends "uncle" hashes: the sibling of each
# ancestor of the subtree's top, bottom-up. `proof_layers` counts ancestor layers from the
# base layer, and the first log2(length) - 1 of them need no uncle (the range already holds
# both children), so a `hashes` message carries `length + max(0, proof_layers + 1 -
# log2(length))` hashes and proves the node at layer base_layer + max(log2(length),
# proof_layers + 1). A requester that knows only the pieces root asks for
# proof_layers = tree_height - base_layer - 1, which reaches the root.

#: Bytes per leaf (BEP 52: 16 KiB blocks, the last one of a file may be shorter).
BLOCK_SIZE: Final = 16 * 1024
#: Bytes of one SHA-256 hash.
HASH_SIZE: Final = 32
#: Tallest tree there is: a file of at most 2**63 bytes has at most 2**49 leaves.
MAX_TREE_HEIGHT: Final = 63 - 14
#: Hashes per request when fetching a piece layer: BEP 52 says a length SHOULD NOT exceed
#: 512, and libtorrent asks for piece hashes in chunks of 512 (hash_picker.cpp).
MAX_REQUEST_LENGTH: Final = 512

_ZERO_HASH: Final = bytes(HASH_SIZE)


class MerkleError(ValueError):
    """Hashes, lengths or a request that do not fit a BEP 52 tree; the message says why."""


def _sha256(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def _pads() -> tuple[bytes, ...]:
    pads = [_ZERO_HASH]
    for _ in range(MAX_TREE_HEIGHT):
        pads.append(_sha256(pads[-1] + pads[-1]))
    return tuple(pads)


# Every pad hash a tree can need, computed once: 50 SHA-256 calls at import.
_PADS: Final = _pads()


def pad_hash(layer: int) -> bytes:
    """Node at ``layer`` of a subtree that covers only padding (layer 0: 32 zero bytes).

    Raises:
        MerkleError: ``layer`` is negative or above `MAX_TREE_HEIGHT`.
    """
    if not 0 <= layer <= MAX_TREE_HEIGHT:
        raise MerkleError(f"layer {layer} is outside 0..{MAX_TREE_HEIGHT}")
    return _PADS[layer]


def is_power_of_two(n: int) -> bool:
    """True for 1, 2, 4, 8...; false for zero and negatives."""
    return n > 0 and n & (n - 1) == 0


def next_power_of_two(n: int) -> int:
    """Smallest power of two >= ``n`` (1 for ``n`` <= 1)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def _log2(n: int) -> int:
    """Exponent of a power of two (the caller has checked that it is one)."""
    return n.bit_length() - 1


def block_hashes(data: bytes) -> list[bytes]:
    """Leaf hashes of a file: SHA-256 of each 16 KiB block, the last one possibly short.

    An empty file has no leaves. A caller hashing a file in chunks may call this per chunk
    and concatenate, as long as every chunk but the last is a multiple of `BLOCK_SIZE`.
    """
    view = memoryview(data)
    return [_sha256(view[i : i + BLOCK_SIZE]) for i in range(0, len(view), BLOCK_SIZE)]


def _parents(nodes: list[bytes], pad: bytes) -> list[bytes]:
    """The layer above ``nodes``, with ``pad`` standing in for a missing right child."""
    if len(nodes) % 2:
        nodes = [*nodes, pad]
    return [_sha256(nodes[i] + nodes[i + 1]) for i in range(0, len(nodes), 2)]


def _check_hashes(hashes: Sequence[bytes], what: str) -> None:
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise MerkleError(f"{what}: hash {i} is {len(h)} bytes, not {HASH_SIZE}")


def layer_root(hashes: Sequence[bytes], layer: int = 0, width: int | None = None) -> bytes:
    """Root over the nodes of one layer, padded with ``pad_hash(layer)`` to ``width`` nodes.

    Args:
        hashes: the layer's nodes that cover data, left to right.
        layer: which layer they are (0 for leaves), which fixes the pad hash.
        width: nodes in the full layer, a power of two >= ``len(hashes)``; by default the
            smallest such power (the width of a file's own tree).

    Raises:
        MerkleError: no hashes, a hash that is not 32 bytes, or a bad ``width``.
    """
    if not hashes:
        raise MerkleError("no hashes: an empty file has no Merkle root")
    if width is None:
        width = next_power_of_two(len(hashes))
    if not is_power_of_two(width) or width < len(hashes):
        raise MerkleError(f"width {width} is not a power of two >= {len(hashes)} hashes")
    if layer + _log2(width) > MAX_TREE_HEIGHT:
        raise MerkleError(f"a tree {_log2(width)} layers above layer {layer} is too tall")
    _check_hashes(hashes, "layer")
    nodes = list(hashes)
    while width > 1:
        nodes = _parents(nodes, _PADS[layer])
        layer += 1
        width //= 2
    return nodes[0]


def pieces_root(data: bytes) -> bytes | None:
    """BEP 52 ``pieces root`` of a file's contents; None for an empty file (it has none)."""
    leaves = block_hashes(data)
    return layer_root(leaves) if leaves else None


def tree_height(file_length: int) -> int:
    """Layer of the root of a ``file_length``-byte file's tree (0: one block, root = leaf).

    Raises:
        MerkleError: ``file_length`` is not positive (an empty file has no tree) or too big.
    """
    if file_length <= 0:
        raise MerkleError(f"a {file_length}-byte file has no Merkle tree")
    blocks = -(-file_length // BLOCK_SIZE)
    height = _log2(next_power_of_two(blocks))
    if height > MAX_TREE_HEIGHT:
        raise MerkleError(f"a {file_length}-byte file is too big for a BEP 52 tree")
    return height


def piece_layer_height(piece_length: int) -> int:
    """Layer whose nodes each cover one piece: log2(piece_length / 16 KiB).

    Raises:
        MerkleError: ``piece_length`` is not a power of two of at least 16 KiB (BEP 52).
    """
    if not is_power_of_two(piece_length) or piece_length < BLOCK_SIZE:
        raise MerkleError(f"piece length {piece_length} is not a power of two >= 16 KiB")
    height = _log2(piece_length // BLOCK_SIZE)
    if height > MAX_TREE_HEIGHT:
        raise MerkleError(f"piece length {piece_length} is too big")
    return height


def has_piece_layer(file_length: int, piece_length: int) -> bool:
    """Whether ``piece layers`` holds an entry for this file: only if larger than a piece."""
    piece_layer_height(piece_length)
    return file_length > piece_length


def piece_count(file_length: int, piece_length: int) -> int:
    """Pieces a file spans in v2 (each file starts on a piece boundary); 0 if empty."""
    piece_layer_height(piece_length)
    return -(-max(file_length, 0) // piece_length)


def piece_layer_from_leaves(leaves: Sequence[bytes], piece_length: int) -> list[bytes]:
    """Piece layer of a file from its leaf hashes: one node per piece, none for padding.

    Raises:
        MerkleError: the file is one piece or less (no piece layer), or a bad piece length.
    """
    height = piece_layer_height(piece_length)
    per_piece = 1 << height
    if len(leaves) <= per_piece:
        raise MerkleError("a file of one piece or less has no piece layer")
    _check_hashes(leaves, "leaves")
    layer = []
    for i in range(0, len(leaves), per_piece):
        # The last piece of a file may be short: its subtree is padded with zero leaves.
        layer.append(layer_root(leaves[i : i + per_piece], 0, per_piece))
    return layer


def piece_layer(data: bytes, piece_length: int) -> list[bytes]:
    """Piece layer of a file's contents, as BEP 52's ``piece layers`` stores it (split).

    Raises:
        MerkleError: the file is one piece or less (no piece layer), or a bad piece length.
    """
    if len(data) <= piece_length:
        piece_layer_height(piece_length)
        raise MerkleError("a file of one piece or less has no piece layer")
    return piece_layer_from_leaves(block_hashes(data), piece_length)


def root_from_layer(layer_hashes: Sequence[bytes], piece_length: int, file_length: int) -> bytes:
    """Pieces root implied by a file's piece layer (pad nodes are ``pad_hash`` of its layer).

    Raises:
        MerkleError: the file has no piece layer (one piece or less), or the layer holds the
            wrong number of hashes for the file, or a hash is not 32 bytes.
    """
    height = piece_layer_height(piece_length)
    if file_length <= piece_length:
        raise MerkleError("a file of one piece or less has no piece layer")
    expected = piece_count(file_length, piece_length)
    if len(layer_hashes) != expected:
        raise MerkleError(
            f"piece layer has {len(layer_hashes)} hashes; a {file_length}-byte file in "
            f"{piece_length}-byte pieces has {expected}"
        )
    return layer_root(layer_hashes, height, next_power_of_two(expected))


def split_hashes(blob: bytes) -> list[bytes]:
    """Cut concatenated hashes (a ``piece layers`` value) into 32-byte hashes.

    Raises:
        MerkleError: the length is not a multiple of 32.
    """
    if len(blob) % HASH_SIZE:
        raise MerkleError(f"{len(blob)} bytes is not a whole number of {HASH_SIZE}-byte hashes")
    return [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


def verify_piece_layer(
    blob: bytes, root: bytes, piece_length: int, file_length: int
) -> list[bytes]:
    """Check a received piece layer (hashes concatenated) against the file's pieces root.

    Returns:
        The piece hashes, one per piece of the file.

    Raises:
        MerkleError: the layer is malformed, has the wrong length, or hashes to another root.
    """
    hashes = split_hashes(blob)
    if root_from_layer(hashes, piece_length, file_length) != root:
        raise MerkleError("piece layer does not hash to the pieces root")
    return hashes


@dataclass(frozen=True, slots=True)
class HashRange:
    """What a hash request asks for (BEP 52): nodes of one layer, plus proof layers.

    ``length`` nodes from ``index`` in layer ``base_layer`` (0: leaves), and uncle hashes
    for ``proof_layers`` layers above the base layer. Construction checks the shape that
    holds in any tree; `check_fits` checks it against one file's tree.

    Raises:
        MerkleError: a negative field, ``length`` not a power of two, ``index`` not a
            multiple of ``length``, or layers beyond the tallest possible tree.
    """

    base_layer: int
    index: int
    length: int
    proof_layers: int

    def __post_init__(self) -> None:
        if not 0 <= self.base_layer < MAX_TREE_HEIGHT:
            raise MerkleError(f"base layer {self.base_layer} is outside 0..{MAX_TREE_HEIGHT - 1}")
        if not 0 <= self.proof_layers < MAX_TREE_HEIGHT:
            raise MerkleError(
                f"proof layers {self.proof_layers} is outside 0..{MAX_TREE_HEIGHT - 1}"
            )
        if not is_power_of_two(self.length):
            raise MerkleError(f"length {self.length} is not a power of two")
        if self.index < 0 or self.index % self.length:
            raise MerkleError(f"index {self.index} is not a multiple of length {self.length}")
        self.check_fits(MAX_TREE_HEIGHT)

    @property
    def uncle_count(self) -> int:
        """Uncle hashes a `hashes` message appends after the ``length`` base hashes."""
        return max(0, self.proof_layers + 1 - _log2(self.length))

    @property
    def hash_count(self) -> int:
        """Hashes in the `hashes` message that answers this range."""
        return self.length + self.uncle_count

    @property
    def top_layer(self) -> int:
        """Layer of the node the answer proves (compare it with a node already trusted)."""
        return self.base_layer + max(_log2(self.length), self.proof_layers + 1)

    @property
    def top_index(self) -> int:
        """Index, within `top_layer`, of the node the answer proves."""
        return self.index >> (self.top_layer - self.base_layer)

    def check_fits(self, height: int) -> None:
        """Check the range against a tree whose root is at layer ``height``.

        Raises:
            MerkleError: the base layer is the root's or above, the range runs past the end
                of its (padded) layer, or the proof would climb past the root.
        """
        if self.base_layer >= height:
            raise MerkleError(
                f"base layer {self.base_layer} is not below the root (layer {height})"
            )
        width = 1 << (height - self.base_layer)
        if self.index + self.length > width:
            raise MerkleError(
                f"hashes {self.index}..{self.index + self.length - 1} run past the "
                f"{width} nodes of layer {self.base_layer}"
            )
        if self.top_layer > height:
            raise MerkleError(
                f"{self.proof_layers} proof layers above layer {self.base_layer} climb past "
                f"the root (layer {height})"
            )

    @classmethod
    def to_root(cls, height: int, base_layer: int, index: int, length: int) -> HashRange:
        """The range whose proof reaches the root of a tree of ``height``: what a requester
        that trusts only the pieces root asks for.

        Raises:
            MerkleError: the range does not fit the tree.
        """
        hash_range = cls(base_layer, index, length, max(0, height - base_layer - 1))
        hash_range.check_fits(height)
        return hash_range


def fold_proof(hash_range: HashRange, hashes: Sequence[bytes]) -> bytes:
    """Hash a `hashes` answer up to the node it proves (at ``top_layer``, ``top_index``).

    Raises:
        MerkleError: the wrong number of hashes for the range, or one not 32 bytes.
    """
    if len(hashes) != hash_range.hash_count:
        raise MerkleError(
            f"{len(hashes)} hashes; length {hash_range.length} with {hash_range.proof_layers} "
            f"proof layers needs {hash_range.hash_count}"
        )
    _check_hashes(hashes, "hashes")
    # The base range is a whole subtree: no padding is implied, pad nodes come as hashes.
    nodes = list(hashes[: hash_range.length])
    while len(nodes) > 1:
        nodes = _parents(nodes, _ZERO_HASH)
    node = nodes[0]
    position = hash_range.index >> _log2(hash_range.length)
    for uncle in hashes[hash_range.length :]:
        node = _sha256(node + uncle if position % 2 == 0 else uncle + node)
        position >>= 1
    return node


def verify_hashes(
    hash_range: HashRange, hashes: Sequence[bytes], root: bytes, height: int
) -> list[bytes]:
    """Check a `hashes` answer whose proof reaches the root against the pieces root.

    Args:
        hash_range: what was asked for (and what the answer says it holds).
        hashes: the answer's hashes: the base range, then the uncles bottom-up.
        root: the file's pieces root.
        height: layer of the root, `tree_height(file_length)`.

    Returns:
        The ``length`` hashes of the base layer, now proven.

    Raises:
        MerkleError: the range does not fit the tree, its proof stops below the root, or the
            hashes do not prove to ``root``.
    """
    hash_range.check_fits(height)
    if hash_range.top_layer != height:
        raise MerkleError(
            f"the proof stops at layer {hash_range.top_layer}, below the root (layer "
            f"{height}): check it with fold_proof against a node already trusted"
        )
    if fold_proof(hash_range, hashes) != root:
        raise MerkleError("hashes do not prove to the pieces root")
    return list(hashes[: hash_range.length])


def piece_layer_requests(file_length: int, piece_length: int) -> list[HashRange]:
    """Requests that fetch a file's whole piece layer, each proven up to the pieces root.

    Chunks of `MAX_REQUEST_LENGTH` nodes (fewer, a power of two, when the padded layer is
    narrower); the last chunk may reach into padding, whose nodes come back as pad hashes.
    A file of one piece or less needs none.

    Raises:
        MerkleError: a bad piece length or file length.
    """
    if not has_piece_layer(file_length, piece_length):
        return []
    base = piece_layer_height(piece_length)
    height = tree_height(file_length)
    count = piece_count(file_length, piece_length)
    length = min(MAX_REQUEST_LENGTH, next_power_of_two(count))
    return [HashRange.to_root(height, base, i, length) for i in range(0, count, length)]


class MerkleTree:
    """Every node of one file's tree from some layer up to the root, padding included.

    Built from the file's data (all layers) or from its piece layer (what a .torrent holds,
    enough to answer hash requests for piece hashes); answers `hashes` for a `HashRange`.
    """

    __slots__ = ("_base_layer", "_layers")

    def __init__(self, hashes: Sequence[bytes], *, layer: int, height: int) -> None:
        """Build the tree above the data-covering nodes ``hashes`` of layer ``layer``.

        Raises:
            MerkleError: no hashes, more than the layer holds, or a hash not 32 bytes.
        """
        if not 0 <= layer <= height <= MAX_TREE_HEIGHT:
            raise MerkleError(f"layer {layer} of a tree of height {height} does not exist")
        width = 1 << (height - layer)
        if not 0 < len(hashes) <= width:
            raise MerkleError(f"{len(hashes)} hashes for layer {layer} of {width} nodes")
        _check_hashes(hashes, "layer")
        nodes = list(hashes) + [_PADS[layer]] * (width - len(hashes))
        layers = [nodes]
        for above in range(layer + 1, height + 1):
            nodes = _parents(nodes, _PADS[above - 1])
            layers.append(nodes)
        self._base_layer = layer
        self._layers = layers

    @classmethod
    def from_data(cls, data: bytes) -> MerkleTree:
        """The full tree of a non-empty file's contents.

        Raises:
            MerkleError: the file is empty.
        """
        return cls(block_hashes(data), layer=0, height=tree_height(len(data)))

    @classmethod
    def from_piece_layer(
        cls, layer_hashes: Sequence[bytes], piece_length: int, file_length: int
    ) -> MerkleTree:
        """The tree from the piece layer up, as a seed that has only the .torrent knows it.

        Raises:
            MerkleError: as `root_from_layer` does.
        """
        root_from_layer(layer_hashes, piece_length, file_length)  # checks the count
        return cls(
            layer_hashes, layer=piece_layer_height(piece_length), height=tree_height(file_length)
        )

    @property
    def root(self) -> bytes:
        """The pieces root."""
        return self._layers[-1][0]

    @property
    def height(self) -> int:
        """Layer of the root."""
        return self._base_layer + len(self._layers) - 1

    @property
    def base_layer(self) -> int:
        """Lowest layer held."""
        return self._base_layer

    def layer(self, layer: int) -> list[bytes]:
        """All nodes of ``layer``, padding included.

        Raises:
            MerkleError: the layer is not held.
        """
        if not self._base_layer <= layer <= self.height:
            raise MerkleError(
                f"layer {layer} is not held (layers {self._base_layer}..{self.height})"
            )
        return list(self._layers[layer - self._base_layer])

    def hashes(self, hash_range: HashRange) -> list[bytes]:
        """What a `hashes` message answering ``hash_range`` carries: the range, then uncles.

        Raises:
            MerkleError: the range does not fit the tree, or reaches below the layers held
                (answer with a hash reject).
        """
        hash_range.check_fits(self.height)
        if hash_range.base_layer < self._base_layer:
            raise MerkleError(
                f"layer {hash_range.base_layer} is below the lowest held ({self._base_layer})"
            )
        base = hash_range.base_layer
        nodes = self._layers[base - self._base_layer]
        out = nodes[hash_range.index : hash_range.index + hash_range.length]
        first_uncle_layer = hash_range.top_layer - hash_range.uncle_count
        for layer in range(first_uncle_layer, hash_range.top_layer):
            position = hash_range.index >> (layer - base)
            out.append(self._layers[layer - self._base_layer][position ^ 1])
        return out
