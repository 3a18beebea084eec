"""The piece-layer fetcher (magnet.layers) alone: peers are names, time is a number."""

from __future__ import annotations

import hashlib
import random

import pytest

from magnet.hashmsgs import Hashes, HashRequest
from magnet.layers import LayerFetcher, LayerFile, layer_files
from magnet.merkle import HASH_SIZE, MerkleTree, piece_count, root_from_layer
from magnet.torrentfile import TorrentFile, TorrentMeta

PIECE = 16 * 1024


def make_file(pieces: int, extra: int = 0, seed: int = 1) -> tuple[LayerFile, MerkleTree]:
    rng = random.Random(seed)
    length = (pieces - 1) * PIECE + (extra or PIECE)
    layer = [rng.randbytes(HASH_SIZE) for _ in range(piece_count(length, PIECE))]
    tree = MerkleTree.from_piece_layer(layer, PIECE, length)
    assert tree.root == root_from_layer(layer, PIECE, length)
    return LayerFile(tree.root, length), tree


def answer(tree: MerkleTree, request: HashRequest, *, forge: bool = False) -> Hashes:
    hashes = tree.hashes(request.hash_range)
    if forge:
        hashes[0] = hashlib.sha256(hashes[0]).digest()
    fields = (request.base_layer, request.index, request.length, request.proof_layers)
    return Hashes(request.pieces_root, *fields, tuple(hashes))


def meta(files: list[TorrentFile], v2: bool = True, piece_length: int = PIECE) -> TorrentMeta:
    return TorrentMeta(
        info=b"d4:name1:xe",
        info_hash_v1=None,
        info_hash_v2=bytes(32) if v2 else None,
        name="x",
        piece_length=piece_length,
        files=tuple(files),
    )


def test_layer_files_are_the_v2_files_over_one_piece_each_root_once() -> None:
    r1, r2, r3 = (bytes([i]) * 32 for i in range(1, 4))
    files = [
        TorrentFile(("t", "big"), 3 * PIECE, r1),
        TorrentFile(("t", "copy"), 3 * PIECE, r1),  # the same contents, the same root
        TorrentFile(("t", "one"), PIECE, r2),  # exactly one piece: no layer
        TorrentFile(("t", "two"), PIECE + 1, r3),
        TorrentFile(("t", "empty"), 0, None),
        TorrentFile(("t", "rootless"), 5 * PIECE, None),  # cannot be checked: left out
    ]
    assert layer_files(meta(files)) == [LayerFile(r1, 3 * PIECE), LayerFile(r3, PIECE + 1)]
    assert layer_files(meta(files, v2=False)) == []
    assert layer_files(meta(files, piece_length=1000)) == []  # not a BEP 52 piece length


def test_fetch_from_one_peer_rebuilds_the_layers() -> None:
    (big, big_tree), (small, small_tree) = make_file(513, 7), make_file(2, seed=2)
    trees = {big.root: big_tree, small.root: small_tree}
    fetcher: LayerFetcher[str] = LayerFetcher([big, small], PIECE, requests_per_peer=8)
    assert fetcher.chunks == 3
    fetcher.add_peer("a")
    requests = fetcher.requests_for("a", 0.0)
    assert len(requests) == 3
    assert fetcher.requests_for("a", 0.0) == []  # all out already
    with pytest.raises(RuntimeError):
        fetcher.layers()
    for r in requests:
        assert fetcher.on_hashes("a", answer(trees[r.pieces_root], r)) is None
    assert fetcher.done
    layers = fetcher.layers()
    assert list(layers) == [big.root, small.root]
    for root, tree in trees.items():
        assert layers[root] == b"".join(tree.layer(tree.base_layer)[: len(layers[root]) // 32])
    assert len(layers[big.root]) == 513 * 32 and len(layers[small.root]) == 2 * 32
    assert fetcher.sources == ["a"]


def test_requests_in_flight_per_peer_are_bounded() -> None:
    f, _ = make_file(512 * 6)
    fetcher: LayerFetcher[str] = LayerFetcher([f], PIECE, requests_per_peer=4)
    fetcher.add_peer("a")
    assert len(fetcher.requests_for("a", 0.0)) == 4
    assert fetcher.requests_for("a", 0.0) == []


def test_peers_ready_together_split_the_work() -> None:
    f, _ = make_file(512 * 4)
    fetcher: LayerFetcher[str] = LayerFetcher([f], PIECE)
    for p in "abcd":
        fetcher.add_peer(p)
    assert [len(fetcher.requests_for(p, 0.0)) for p in "abcd"] == [1, 1, 1, 1]


def test_a_forged_proof_drops_the_liar_and_the_chunk_goes_to_another() -> None:
    f, tree = make_file(5)
    fetcher: LayerFetcher[str] = LayerFetcher([f], PIECE)
    fetcher.add_peer("liar")
    (request,) = fetcher.requests_for("liar", 0.0)
    fetcher.add_peer("honest")
    assert fetcher.requests_for("honest", 0.0) == [request]  # the end game: asked twice
    why = fetcher.on_hashes("liar", answer(tree, request, forge=True))
    assert why == "sent hashes that do not prove to the pieces root"
    fetcher.drop_peer("liar")
    assert not fetcher.done
    assert fetcher.on_hashes("honest", answer(tree, request)) is None
    assert fetcher.done and fetcher.sources == ["honest"]


def test_hashes_nobody_asked_for_drop_the_sender() -> None:
    f, tree = make_file(5)
    fetcher: LayerFetcher[str] = LayerFetcher([f], PIECE)
    fetcher.add_peer("a")
    fetcher.add_peer("b")
    (request,) = fetcher.requests_for("a", 0.0)
    assert fetcher.on_hashes("b", answer(tree, request)) == "sent hashes it was not asked for"
    # The right root and range but other proof layers: not what was asked either.
    other = HashRequest(f.root, request.base_layer, 0, 2, 0)
    assert fetcher.on_hashes("a", answer(tree, other)) == "sent hashes it was not asked for"


def test_a_late_answer_after_the_end_game_is_harmless() -> None:
    f, tree = make_file(5)
    fetcher: LayerFetcher[str] = LayerFetcher([f], PIECE)
    fetcher.add_peer("a")
    (request,) = fetcher.requests_for("a", 0.0)
    fetcher.add_peer("b")
    assert fetcher.requests_for("b", 0.0) == [request]
    assert fetcher.on_hashes("a", answer(tree, request)) is None
    assert fetcher.deadline() is None  # b's request no longer counts against it
    assert fetcher.on_hashes("b", answer(tree, request)) is None
    assert fetcher.on_hashes("b", answer(tree, request)) == "sent hashes it was not asked for"


def test_rejects_are_not_asked_again_and_repeated_ones_drop_the_peer() -> None:
    files = [make_file(5, seed=i)[0] for i in range(3)]
    fetcher: LayerFetcher[str] = LayerFetcher(files, PIECE, max_rejects=2)
    fetcher.add_peer("a")
    first, second, _third = fetcher.requests_for("a", 0.0)
    assert fetcher.on_reject("a", first.reject()) is None
    assert first not in fetcher.requests_for("a", 0.0)  # never asked again of "a"
    assert fetcher.on_reject("a", second.reject()) == "rejected hash requests"
    assert fetcher.rejected == 2
    assert fetcher.on_reject("a", first.reject()) is None  # not in flight: no count


def test_a_peer_past_its_deadline_expires() -> None:
    f, _ = make_file(5)
    fetcher: LayerFetcher[str] = LayerFetcher([f], PIECE, request_timeout=3.0)
    fetcher.add_peer("slow")
    fetcher.requests_for("slow", 10.0)
    assert fetcher.deadline() == 13.0
    assert fetcher.expired(12.9) == []
    assert fetcher.expired(13.0) == [("slow", "stalled on a hash request")]
    fetcher.drop_peer("slow")
    assert fetcher.deadline() is None and fetcher.peers == 0
    fetcher.add_peer("fresh")
    assert len(fetcher.requests_for("fresh", 14.0)) == 1  # the chunk is free again


def test_a_dropped_peer_is_not_heard() -> None:
    f, tree = make_file(5)
    fetcher: LayerFetcher[str] = LayerFetcher([f], PIECE)
    fetcher.add_peer("a")
    (request,) = fetcher.requests_for("a", 0.0)
    fetcher.drop_peer("a")
    assert fetcher.on_hashes("a", answer(tree, request)) is None
    assert not fetcher.done
    assert fetcher.requests_for("a", 0.0) == []  # unknown peers get nothing


def test_more_pieces_than_the_cap_are_refused_before_any_work() -> None:
    """The attack: a verified info dict that claims an exabyte file in a few bytes, so that
    a resolver would plan billions of requests. Refused from the piece count alone."""
    from magnet.layers import MAX_PIECES
    from magnet.merkle import MerkleError

    huge = LayerFile(b"r" * 32, 1 << 60)
    with pytest.raises(MerkleError, match="pieces"):
        LayerFetcher([huge], PIECE)
    at_cap = LayerFile(b"r" * 32, MAX_PIECES * PIECE)
    assert LayerFetcher([at_cap], PIECE).chunks == MAX_PIECES // 512


def test_many_chunks_and_peers_are_all_handed_out_once() -> None:
    f, tree = make_file(512 * 64 + 1)  # 65 chunks, 20 peers of 4 requests each
    fetcher: LayerFetcher[int] = LayerFetcher([f], PIECE)
    for p in range(20):
        fetcher.add_peer(p)
    asked = [(p, r) for p in range(20) for r in fetcher.requests_for(p, 0.0)]
    requests = [r for _, r in asked]
    # A fair share each (the first peers more, none above 4), no chunk twice, none idle.
    assert len(set(requests)) == len(requests) <= 65
    assert {p for p, _ in asked} == set(range(20))
    rounds = 0
    while asked:
        rounds += 1
        for p, request in asked:
            assert fetcher.on_hashes(p, answer(tree, request)) is None  # repeats come late
        asked = [(p, r) for p in range(20) for r in fetcher.requests_for(p, 0.0)]
    assert fetcher.done and rounds <= 3
