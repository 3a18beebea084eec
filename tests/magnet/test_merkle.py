"""Tests for magnet.merkle: BEP 52 trees by hand, proofs of hash requests, libtorrent agrees."""

from __future__ import annotations

import hashlib
import random
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magnet.merkle import (
    BLOCK_SIZE,
    MAX_TREE_HEIGHT,
    HashRange,
    MerkleError,
    MerkleTree,
    block_hashes,
    fold_proof,
    has_piece_layer,
    is_power_of_two,
    layer_root,
    next_power_of_two,
    pad_hash,
    piece_count,
    piece_layer,
    piece_layer_from_leaves,
    piece_layer_height,
    piece_layer_requests,
    pieces_root,
    root_from_layer,
    split_hashes,
    tree_height,
    verify_hashes,
    verify_piece_layer,
)

KIB = 1024
ZERO = bytes(32)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def pair(left: bytes, right: bytes) -> bytes:
    return sha(left + right)


def blocks(n: int, tail: int = BLOCK_SIZE, seed: int = 7) -> bytes:
    """A file of ``n`` blocks whose last block is ``tail`` bytes long."""
    rng = random.Random(seed)
    return rng.randbytes((n - 1) * BLOCK_SIZE + tail)


def leaves_of(data: bytes) -> list[bytes]:
    """Leaf hashes the slow, obvious way."""
    return [sha(data[i : i + BLOCK_SIZE]) for i in range(0, len(data), BLOCK_SIZE)]


# --- pad hashes and small helpers ---------------------------------------------------------


def test_pad_hashes_are_zero_leaves_hashed_up() -> None:
    assert pad_hash(0) == ZERO
    assert pad_hash(1) == pair(ZERO, ZERO)
    assert pad_hash(2) == pair(pair(ZERO, ZERO), pair(ZERO, ZERO))
    for n in range(MAX_TREE_HEIGHT):
        assert pad_hash(n + 1) == pair(pad_hash(n), pad_hash(n))
    for bad in (-1, MAX_TREE_HEIGHT + 1):
        with pytest.raises(MerkleError):
            pad_hash(bad)


def test_powers_of_two() -> None:
    assert [n for n in range(-2, 20) if is_power_of_two(n)] == [1, 2, 4, 8, 16]
    assert [next_power_of_two(n) for n in range(0, 10)] == [1, 1, 2, 4, 4, 8, 8, 8, 8, 16]


def test_block_hashes_cut_16_kib_blocks_with_a_short_last_one() -> None:
    assert block_hashes(b"") == []
    assert block_hashes(b"x") == [sha(b"x")]
    data = blocks(3, tail=5)
    assert len(data) == 2 * BLOCK_SIZE + 5
    assert block_hashes(data) == [
        sha(data[:BLOCK_SIZE]),
        sha(data[BLOCK_SIZE : 2 * BLOCK_SIZE]),
        sha(data[-5:]),
    ]
    exact = blocks(2)
    assert len(block_hashes(exact)) == 2


# --- pieces roots built by hand -----------------------------------------------------------


def test_empty_file_has_no_root_and_no_tree() -> None:
    assert pieces_root(b"") is None
    with pytest.raises(MerkleError, match="no Merkle tree"):
        tree_height(0)
    with pytest.raises(MerkleError):
        MerkleTree.from_data(b"")
    with pytest.raises(MerkleError, match="empty file"):
        layer_root([])
    assert piece_count(0, 16 * KIB) == 0
    assert not has_piece_layer(0, 16 * KIB)
    assert piece_layer_requests(0, 16 * KIB) == []


@pytest.mark.parametrize("size", [1, 100, BLOCK_SIZE - 1, BLOCK_SIZE])
def test_one_block_file_root_is_the_block_hash_unpadded(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"\x01" * (size % 256)
    assert pieces_root(data) == sha(data)
    assert tree_height(size) == 0


def test_three_blocks_pad_one_zero_leaf() -> None:
    data = blocks(3, tail=1000)
    b0, b1, b2 = leaves_of(data)
    assert pieces_root(data) == pair(pair(b0, b1), pair(b2, ZERO))
    assert tree_height(len(data)) == 2


def test_four_blocks_need_no_padding() -> None:
    data = blocks(4)
    b0, b1, b2, b3 = leaves_of(data)
    assert pieces_root(data) == pair(pair(b0, b1), pair(b2, b3))


def test_five_blocks_pad_to_eight_with_pad_subtrees() -> None:
    data = blocks(5, tail=1)
    b = leaves_of(data)
    left = pair(pair(b[0], b[1]), pair(b[2], b[3]))
    # Leaves 5..7 are zero: the right half is (b4, 0), (0, 0): the second is pad_hash(1).
    right = pair(pair(b[4], ZERO), pair(ZERO, ZERO))
    assert pieces_root(data) == pair(left, right)
    assert tree_height(len(data)) == 3


def test_layer_root_pads_with_the_layers_own_pad_hash() -> None:
    x, y, z = sha(b"x"), sha(b"y"), sha(b"z")
    assert layer_root([x]) == x
    assert layer_root([x], width=2) == pair(x, ZERO)
    assert layer_root([x, y, z], layer=2) == pair(pair(x, y), pair(z, pad_hash(2)))
    assert layer_root([x], layer=1, width=4) == pair(pair(x, pad_hash(1)), pad_hash(2))
    with pytest.raises(MerkleError, match="width"):
        layer_root([x, y, z], width=2)
    with pytest.raises(MerkleError, match="width"):
        layer_root([x], width=3)
    with pytest.raises(MerkleError, match="not 32"):
        layer_root([x, b"short"])
    with pytest.raises(MerkleError, match="too tall"):
        layer_root([x], layer=MAX_TREE_HEIGHT, width=2)


# --- piece layers built by hand -----------------------------------------------------------


def test_piece_length_must_be_a_power_of_two_of_16_kib_or_more() -> None:
    assert piece_layer_height(16 * KIB) == 0
    assert piece_layer_height(32 * KIB) == 1
    assert piece_layer_height(4 * 1024 * KIB) == 8
    for bad in (0, 8 * KIB, 48 * KIB, 16 * KIB + 1, -16 * KIB):
        with pytest.raises(MerkleError, match="power of two"):
            piece_layer_height(bad)
        with pytest.raises(MerkleError):
            has_piece_layer(100 * KIB, bad)


@pytest.mark.parametrize("size", [1, 32 * KIB - 1, 32 * KIB])
def test_file_of_one_piece_or_less_has_no_piece_layer(size: int) -> None:
    data = b"\x05" * size
    assert not has_piece_layer(size, 32 * KIB)
    assert piece_layer_requests(size, 32 * KIB) == []
    with pytest.raises(MerkleError, match="one piece or less"):
        piece_layer(data, 32 * KIB)
    with pytest.raises(MerkleError, match="one piece or less"):
        piece_layer_from_leaves(block_hashes(data), 32 * KIB)
    with pytest.raises(MerkleError, match="one piece or less"):
        root_from_layer([sha(data)], 32 * KIB, size)


def test_piece_layer_of_three_pieces_of_two_blocks() -> None:
    # 32 KiB pieces = 2 blocks; 5 blocks = 3 pieces, the last one half a piece.
    data = blocks(5, tail=300)
    b = leaves_of(data)
    layer = piece_layer(data, 32 * KIB)
    assert layer == [pair(b[0], b[1]), pair(b[2], b[3]), pair(b[4], ZERO)]
    assert piece_count(len(data), 32 * KIB) == 3
    # The fourth piece is pure padding: the pad hash of layer 1, omitted from the layer.
    root = pair(pair(layer[0], layer[1]), pair(layer[2], pad_hash(1)))
    assert pieces_root(data) == root
    assert root_from_layer(layer, 32 * KIB, len(data)) == root
    assert verify_piece_layer(b"".join(layer), root, 32 * KIB, len(data)) == layer


def test_one_piece_and_one_byte_makes_two_pieces() -> None:
    data = blocks(3, tail=1)  # 32 KiB + 1 byte in 32 KiB pieces
    b = leaves_of(data)
    layer = piece_layer(data, 32 * KIB)
    assert layer == [pair(b[0], b[1]), pair(b[2], ZERO)]
    assert root_from_layer(layer, 32 * KIB, len(data)) == pieces_root(data)


def test_exactly_a_power_of_two_pieces_needs_no_padding() -> None:
    data = blocks(8)  # 4 pieces of 32 KiB
    b = leaves_of(data)
    layer = piece_layer(data, 32 * KIB)
    assert layer == [pair(b[i], b[i + 1]) for i in range(0, 8, 2)]
    assert root_from_layer(layer, 32 * KIB, len(data)) == pair(
        pair(layer[0], layer[1]), pair(layer[2], layer[3])
    )
    # 16 KiB pieces: the piece layer is the leaf layer.
    assert piece_layer(data, 16 * KIB) == b


def test_a_power_of_two_plus_one_pieces_doubles_the_width() -> None:
    data = blocks(9, tail=2)  # 16 KiB pieces: 9 pieces, padded to 16
    b = leaves_of(data)
    layer = piece_layer(data, 16 * KIB)
    assert layer == b
    left = layer_root(b[:8])
    right = pair(pair(pair(b[8], ZERO), pad_hash(1)), pad_hash(2))
    assert root_from_layer(layer, 16 * KIB, len(data)) == pair(left, right)
    assert pieces_root(data) == pair(left, right)
    assert tree_height(len(data)) == 4


def test_root_from_layer_refuses_a_wrong_layer() -> None:
    data = blocks(5)
    layer = piece_layer(data, 32 * KIB)
    size = len(data)
    with pytest.raises(MerkleError, match="has 3"):
        root_from_layer(layer[:2], 32 * KIB, size)
    with pytest.raises(MerkleError, match="has 3"):
        root_from_layer([*layer, layer[0]], 32 * KIB, size)
    with pytest.raises(MerkleError, match="not 32"):
        root_from_layer([layer[0], layer[1], layer[2][:31]], 32 * KIB, size)
    root = pieces_root(data)
    assert root is not None
    blob = b"".join(layer)
    with pytest.raises(MerkleError, match="whole number"):
        verify_piece_layer(blob[:-1], root, 32 * KIB, size)
    swapped = layer[1] + layer[0] + layer[2]
    with pytest.raises(MerkleError, match="does not hash"):
        verify_piece_layer(swapped, root, 32 * KIB, size)
    # The right hashes under the wrong piece length name another tree.
    with pytest.raises(MerkleError):
        verify_piece_layer(blob, root, 16 * KIB, size)


def test_split_hashes() -> None:
    assert split_hashes(b"") == []
    assert split_hashes(b"a" * 32 + b"b" * 32) == [b"a" * 32, b"b" * 32]
    with pytest.raises(MerkleError):
        split_hashes(b"a" * 33)


@settings(max_examples=60, deadline=None)
@given(
    leaves=st.integers(min_value=2, max_value=70),
    per_piece_log=st.integers(min_value=0, max_value=4),
    tail=st.integers(min_value=1, max_value=BLOCK_SIZE),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_piece_layer_always_hashes_to_the_root(
    leaves: int, per_piece_log: int, tail: int, seed: int
) -> None:
    """Any file and piece length: the piece layer hashes up to the root of the leaves."""
    rng = random.Random(seed)
    hashes = [rng.randbytes(32) for _ in range(leaves)]
    file_length = (leaves - 1) * BLOCK_SIZE + tail
    piece_length = BLOCK_SIZE << per_piece_log
    root = layer_root(hashes)
    if file_length <= piece_length:
        assert not has_piece_layer(file_length, piece_length)
        return
    layer = piece_layer_from_leaves(hashes, piece_length)
    assert len(layer) == piece_count(file_length, piece_length)
    assert root_from_layer(layer, piece_length, file_length) == root
    tree = MerkleTree(hashes, layer=0, height=tree_height(file_length))
    assert tree.root == root
    assert tree.layer(per_piece_log)[: len(layer)] == layer
    upper = MerkleTree.from_piece_layer(layer, piece_length, file_length)
    assert upper.root == root
    assert upper.base_layer == per_piece_log
    assert upper.layer(upper.height) == [root]


# --- hash ranges and proofs ---------------------------------------------------------------


def test_hash_range_shape_rules() -> None:
    HashRange(0, 0, 2, 0)
    HashRange(3, 8, 4, 5)
    HashRange(0, 7, 1, 0)  # length one is a power of two; hashmsgs decides if it is sent
    for bad in [
        (0, 0, 3, 0),  # not a power of two
        (0, 0, 0, 0),
        (0, 2, 4, 0),  # index not a multiple of length
        (-1, 0, 2, 0),
        (0, -2, 2, 0),
        (0, 0, 2, -1),
        (MAX_TREE_HEIGHT, 0, 2, 0),  # no tree is that tall
        (0, 0, 2, MAX_TREE_HEIGHT),
        (40, 0, 2, 10),  # proof climbs past the tallest tree
        (40, 1 << 9, 1 << 9, 0),  # runs past the widest layer 40 can have
    ]:
        with pytest.raises(MerkleError):
            HashRange(*bad)


@pytest.mark.parametrize(
    ("length", "proof_layers", "uncles", "top"),
    [
        # BEP 52: the first log2(length) - 1 proof layers need no uncle.
        (512, 0, 0, 9),
        (512, 8, 0, 9),
        (512, 9, 1, 10),
        (512, 12, 4, 13),
        (2, 0, 0, 1),
        (2, 1, 1, 2),
        (4, 1, 0, 2),
        (4, 2, 1, 3),
        # A single node: its own sibling is the first uncle (libtorrent sends length 1).
        (1, 0, 1, 1),
        (1, 3, 4, 4),
    ],
)
def test_uncle_count_and_the_node_a_proof_reaches(
    length: int, proof_layers: int, uncles: int, top: int
) -> None:
    r = HashRange(2, 3 * length, length, proof_layers)
    assert r.uncle_count == uncles
    assert r.hash_count == length + uncles
    assert r.top_layer == 2 + top
    assert r.top_index == (3 * length) >> top


def test_check_fits_a_tree() -> None:
    HashRange(0, 6, 2, 2).check_fits(3)  # to the root of 8 leaves
    with pytest.raises(MerkleError, match="not below the root"):
        HashRange(3, 0, 1, 0).check_fits(3)
    with pytest.raises(MerkleError, match="run past"):
        HashRange(0, 8, 2, 0).check_fits(3)
    with pytest.raises(MerkleError, match="run past"):
        HashRange(1, 0, 8, 0).check_fits(3)
    with pytest.raises(MerkleError, match="climb past"):
        HashRange(0, 6, 2, 3).check_fits(3)
    assert HashRange.to_root(3, 0, 6, 2) == HashRange(0, 6, 2, 2)
    assert HashRange.to_root(3, 1, 0, 4).uncle_count == 0
    with pytest.raises(MerkleError):
        HashRange.to_root(3, 3, 0, 2)


def test_hashes_for_a_hand_built_tree() -> None:
    data = blocks(5)
    b = leaves_of(data)
    tree = MerkleTree.from_data(data)
    assert tree.height == 3
    n01, n23, n4p = pair(b[0], b[1]), pair(b[2], b[3]), pair(b[4], ZERO)
    left = pair(n01, n23)
    right = pair(n4p, pad_hash(1))
    assert tree.root == pair(left, right) == pieces_root(data)
    # Leaves 4..5 with proof to the root: siblings of (4,5)'s parent, then of its parent.
    r = HashRange(0, 4, 2, 2)
    assert tree.hashes(r) == [b[4], ZERO, pad_hash(1), left]
    assert verify_hashes(r, tree.hashes(r), tree.root, tree.height) == [b[4], ZERO]
    # A single leaf, libtorrent style: its sibling is the first uncle.
    one = HashRange(0, 2, 1, 2)
    assert tree.hashes(one) == [b[2], b[3], n01, right]
    # Layer 1 (32 KiB pieces), the whole layer: no uncle at all.
    whole = HashRange(1, 0, 4, 1)
    assert tree.hashes(whole) == [n01, n23, n4p, pad_hash(1)]
    assert fold_proof(whole, tree.hashes(whole)) == tree.root
    # A partial proof reaches the node above the range, not the root.
    part = HashRange(0, 0, 2, 1)
    assert tree.hashes(part) == [b[0], b[1], n23]
    assert (part.top_layer, part.top_index) == (2, 0)
    assert fold_proof(part, tree.hashes(part)) == left
    with pytest.raises(MerkleError, match="below the root"):
        verify_hashes(part, tree.hashes(part), tree.root, tree.height)


def all_ranges(height: int) -> list[HashRange]:
    out = []
    for base in range(height):
        width = 1 << (height - base)
        length = 1
        while length <= width:
            for index in range(0, width, length):
                for proof in range(height - base):
                    out.append(HashRange(base, index, length, proof))
            length *= 2
    return out


@pytest.mark.parametrize("n_blocks", [2, 3, 4, 5, 8, 9])
def test_every_request_of_a_small_tree_proves_and_tampering_fails(n_blocks: int) -> None:
    """Exhaustive over small trees: served answers fold to the node named by the range, and
    any one hash changed (a range hash or an uncle) breaks the proof."""
    data = blocks(n_blocks, tail=77)
    tree = MerkleTree.from_data(data)
    checked = 0
    for r in all_ranges(tree.height):
        answer = tree.hashes(r)
        assert len(answer) == r.hash_count
        assert answer[: r.length] == tree.layer(r.base_layer)[r.index : r.index + r.length]
        assert fold_proof(r, answer) == tree.layer(r.top_layer)[r.top_index]
        if r.top_layer == tree.height:
            assert verify_hashes(r, answer, tree.root, tree.height) == answer[: r.length]
            for i in range(len(answer)):
                bad = list(answer)
                bad[i] = sha(bad[i])
                with pytest.raises(MerkleError, match="do not prove"):
                    verify_hashes(r, bad, tree.root, tree.height)
            checked += 1
    assert checked > 0


def test_verify_hashes_refuses_a_wrong_count_or_size() -> None:
    tree = MerkleTree.from_data(blocks(4))
    r = HashRange(0, 0, 2, 1)
    good = tree.hashes(r)
    with pytest.raises(MerkleError, match="needs 3"):
        verify_hashes(r, good[:-1], tree.root, tree.height)
    with pytest.raises(MerkleError, match="needs 3"):
        fold_proof(r, [*good, good[0]])
    with pytest.raises(MerkleError, match="not 32"):
        fold_proof(r, [good[0], good[1], good[2][:5]])
    with pytest.raises(MerkleError, match="run past"):
        verify_hashes(HashRange(0, 4, 4, 1), good, tree.root, tree.height)


def test_tree_from_piece_layer_answers_piece_requests_but_not_below() -> None:
    data = blocks(11, tail=5)  # 6 pieces of 32 KiB, padded to 8
    layer = piece_layer(data, 32 * KIB)
    full = MerkleTree.from_data(data)
    seed = MerkleTree.from_piece_layer(layer, 32 * KIB, len(data))
    assert seed.root == full.root
    assert seed.height == full.height == 4
    assert seed.base_layer == 1
    assert seed.layer(1) == [*layer, pad_hash(1), pad_hash(1)]
    r = HashRange(1, 4, 4, 2)
    assert seed.hashes(r) == full.hashes(r)
    with pytest.raises(MerkleError, match="below the lowest"):
        seed.hashes(HashRange(0, 0, 2, 3))
    with pytest.raises(MerkleError, match="not held"):
        seed.layer(0)
    with pytest.raises(MerkleError, match="has 6"):
        MerkleTree.from_piece_layer(layer[:5], 32 * KIB, len(data))
    with pytest.raises(MerkleError):
        MerkleTree([ZERO] * 3, layer=1, height=2)
    with pytest.raises(MerkleError):
        MerkleTree([ZERO], layer=3, height=2)


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (2, [(0, 2)]),
        (3, [(0, 4)]),
        (512, [(0, 512)]),
        # 2^n + 1: a second request of 512 reaching into padding.
        (513, [(0, 512), (512, 512)]),
        (1500, [(0, 512), (512, 512), (1024, 512)]),
    ],
)
def test_piece_layer_requests_cover_every_piece_with_proof_to_the_root(
    pieces: int, expected: list[tuple[int, int]]
) -> None:
    piece_length = 64 * KIB
    file_length = (pieces - 1) * piece_length + 1
    height = tree_height(file_length)
    requests = piece_layer_requests(file_length, piece_length)
    assert [(r.index, r.length) for r in requests] == expected
    for r in requests:
        assert r.base_layer == 2
        assert r.top_layer == height
        r.check_fits(height)


def test_fetching_a_piece_layer_by_requests_rebuilds_it() -> None:
    """What the resolver will do: request, check each answer against the root, join."""
    rng = random.Random(3)
    leaves = [rng.randbytes(32) for _ in range(1030)]  # 1030 pieces at 16 KiB
    file_length = 1029 * BLOCK_SIZE + 9
    piece_length = 16 * KIB
    layer = piece_layer_from_leaves(leaves, piece_length)
    seed = MerkleTree.from_piece_layer(layer, piece_length, file_length)
    got: list[bytes] = []
    for r in piece_layer_requests(file_length, piece_length):
        got += verify_hashes(r, seed.hashes(r), seed.root, tree_height(file_length))
    count = piece_count(file_length, piece_length)
    assert got[:count] == layer
    assert got[count:] == [pad_hash(0)] * (len(got) - count)
    assert verify_piece_layer(b"".join(got[:count]), seed.root, piece_length, file_length)


# --- libtorrent agrees --------------------------------------------------------------------

PIECE = 16 * KIB


def oracle_sizes(piece_length: int) -> list[int]:
    """Sizes around every edge: empty, one block, one piece, 2^n pieces, 2^n + 1 pieces."""
    return sorted(
        {
            0,
            1,
            BLOCK_SIZE - 1,
            BLOCK_SIZE,
            BLOCK_SIZE + 1,
            piece_length - 1,
            piece_length,
            piece_length + 1,
            2 * piece_length,
            3 * piece_length - 7,
            4 * piece_length,
            4 * piece_length + 1,
            5 * piece_length - 1,
            8 * piece_length + BLOCK_SIZE,
            100_000,
        }
    )


def libtorrent_v2(lt: Any, root: Path, sizes: list[int], piece_length: int) -> dict[str, Any]:
    """Write files of ``sizes`` and let libtorrent make a v2-only torrent of them."""
    folder = root / "payload"
    folder.mkdir()
    contents = {}
    rng = random.Random(piece_length)
    for i, size in enumerate(sizes):
        name = f"f{i:03d}"
        contents[name] = rng.randbytes(size)
        (folder / name).write_bytes(contents[name])
    ct = lt.create_torrent(lt.list_files(str(folder)), piece_length, lt.create_torrent.v2_only)
    lt.set_piece_hashes(ct, str(root))
    generated = ct.generate()
    ti = lt.torrent_info(lt.bencode(generated))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        layout = ti.layout()
    lt_roots = {}
    for i in range(layout.num_files()):
        if layout.file_flags(i) & lt.file_storage.flag_pad_file:
            continue
        name = Path(layout.file_path(i)).name
        lt_roots[name] = bytes.fromhex(str(layout.root(i)))
    return {
        "contents": contents,
        "roots": lt_roots,
        "tree": generated[b"info"][b"file tree"],
        "layers": generated[b"piece layers"],
    }


def check_against_libtorrent(made: dict[str, Any], piece_length: int) -> int:
    """Our roots and layers equal libtorrent's; returns how many piece layers matched."""
    matched = 0
    layers = made["layers"]
    for name, data in made["contents"].items():
        ours = pieces_root(data)
        entry = made["tree"][name.encode()][b""]
        assert entry[b"length"] == len(data)
        assert entry.get(b"pieces root") == ours, (name, len(data))
        # libtorrent reports an empty file's root as 32 zero bytes; it stores none.
        assert made["roots"][name] == (ours if ours is not None else ZERO)
        if ours is None or not has_piece_layer(len(data), piece_length):
            assert ours not in layers
            continue
        ours_layer = piece_layer(data, piece_length)
        assert layers[ours] == b"".join(ours_layer), (name, len(data))
        assert verify_piece_layer(layers[ours], ours, piece_length, len(data)) == ours_layer
        tree = MerkleTree.from_piece_layer(ours_layer, piece_length, len(data))
        assert tree.root == ours
        matched += 1
    assert matched == len(layers)
    return matched


@pytest.mark.parametrize("piece_length", [16 * KIB, 32 * KIB, 64 * KIB, 256 * KIB])
def test_roots_and_piece_layers_equal_libtorrents(tmp_path: Path, piece_length: int) -> None:
    lt = pytest.importorskip("libtorrent")
    made = libtorrent_v2(lt, tmp_path, oracle_sizes(piece_length), piece_length)
    assert check_against_libtorrent(made, piece_length) >= 6


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=600_000), min_size=1, max_size=4).filter(any),
    piece_log=st.integers(min_value=0, max_value=4),
)
def test_random_files_equal_libtorrents(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], piece_log: int
) -> None:
    lt = pytest.importorskip("libtorrent")
    piece_length = PIECE << piece_log
    made = libtorrent_v2(lt, tmp_path_factory.mktemp("lt"), sizes, piece_length)
    check_against_libtorrent(made, piece_length)


# --- hash requests over hand-built trees (the resolver's piece-layer fetch) ---------------


@pytest.mark.parametrize("size", [0, 1, 32 * KIB - 1, 32 * KIB])
def test_files_of_one_piece_or_empty_need_no_request(size: int) -> None:
    assert piece_layer_requests(size, 32 * KIB) == []


def test_proof_for_the_padded_half_of_a_two_to_the_n_plus_one_file_by_hand() -> None:
    """5 pieces of 32 KiB (2**2 + 1), padded to 8: every node computed here by hand.

    Pieces p0..p4 (each the pair of its two leaves), pad pieces z = pad_hash(1). A request
    for the right half of the piece layer (index 4, length 4) with the proof to the root
    carries p4, z, z, z and one uncle: the left half's root.
    """
    data = blocks(9, tail=5)  # 8 full blocks and 5 bytes: 5 pieces of 2 blocks
    b = leaves_of(data)
    p = [pair(b[0], b[1]), pair(b[2], b[3]), pair(b[4], b[5]), pair(b[6], b[7]), pair(b[8], ZERO)]
    z = pad_hash(1)
    assert z == pair(ZERO, ZERO)
    left = pair(pair(p[0], p[1]), pair(p[2], p[3]))
    right = pair(pair(p[4], z), pair(z, z))
    root = pair(left, right)
    assert pieces_root(data) == root
    tree = MerkleTree.from_piece_layer(p, 32 * KIB, len(data))
    height = tree_height(len(data))
    assert height == 4  # 9 leaves pad to 16
    request = HashRange.to_root(height, 1, 4, 4)
    assert request.proof_layers == 2 and request.uncle_count == 1
    answer = tree.hashes(request)
    assert answer == [p[4], z, z, z, left]
    assert verify_hashes(request, answer, root, height) == [p[4], z, z, z]
    for i in range(len(answer)):  # any one hash changed, the proof fails
        forged = list(answer)
        forged[i] = sha(forged[i])
        with pytest.raises(MerkleError):
            verify_hashes(request, forged, root, height)
    # The whole layer in one request (what piece_layer_requests asks for): no uncles.
    (whole,) = piece_layer_requests(len(data), 32 * KIB)
    assert (whole.index, whole.length, whole.uncle_count) == (0, 8, 0)
    assert tree.hashes(whole) == [*p, z, z, z]
