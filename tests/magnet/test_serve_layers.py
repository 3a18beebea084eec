"""Serving piece layers (BEP 52 hash requests) from a .torrent, and writing/reading them."""

from __future__ import annotations

import hashlib
import os
import struct

import pytest

from magnet.hashmsgs import Hashes, HashReject, HashRequest
from magnet.merkle import HashRange, tree_height, verify_hashes
from magnet.peerwire import (
    NEED_DATA,
    ExtHandshake,
    HandshakeReceived,
    Ignored,
    PeerConnection,
    PeerEvent,
)
from magnet.service import MAX_HASH_BYTES_PER_READ, MetadataService, PeerState
from magnet.torrentfile import TorrentError, build_torrent, parse_torrent
from tests.magnet.test_resolution_layers import SIZES, make_v2

BIG = SIZES[b"big.bin"]


def served(hybrid: bool = False, *, layers: bool = True, bad: bool = False) -> MetadataService:
    info, piece_layers = make_v2(hybrid=hybrid)
    if bad:  # one hash of one layer flipped: it no longer proves to its root
        root = min(piece_layers)
        piece_layers[root] = bytes(32) + piece_layers[root][32:]
    torrent = build_torrent(info, piece_layers=piece_layers if layers else None)
    return MetadataService([parse_torrent(torrent)], os.urandom(20))


def big_root() -> bytes:
    _, layers = make_v2()
    return next(r for r, blob in layers.items() if len(blob) == 600 * 32)


def connect(
    service: MetadataService, *, hybrid_v1: bool = False, fast: bool = True
) -> tuple[PeerConnection, PeerState, list[PeerEvent], PeerConnection]:
    info, _ = make_v2(hybrid=hybrid_v1)
    key = hashlib.sha1(info).digest() if hybrid_v1 else hashlib.sha256(info).digest()[:20]
    v2 = hashlib.sha256(info).digest()[:20]
    client = PeerConnection(key, os.urandom(20), v2=True, fast=fast, alt_info_hash=v2)
    server = service.new_connection()
    state = PeerState()
    hello = client.send_handshake() + client.send_ext_handshake()
    out, why = service.handle(server, hello, state)
    assert why is None
    return client, state, events(client, out), server


def events(client: PeerConnection, data: bytes) -> list[PeerEvent]:
    client.receive_data(data)
    found = []
    while (ev := client.next_event()) is not NEED_DATA:
        found.append(ev)
    return found


def test_a_v2_peer_gets_the_bit_have_all_and_proven_hashes() -> None:
    service = served()
    client, state, hello, server = connect(service)
    assert isinstance(hello[0], HandshakeReceived) and hello[0].supports_v2
    assert isinstance(hello[1], ExtHandshake)
    assert hello[2:] == [Ignored("have-all")]  # hash requests go to peers with pieces
    root = big_root()
    height = tree_height(BIG)
    request = HashRequest(root, 0, 0, 512, height - 1)
    out, why = service.handle(server, client.send_hash_request(request), state)
    assert why is None
    (answer,) = events(client, out)
    assert isinstance(answer, Hashes)
    assert verify_hashes(answer.hash_range, answer.hashes, root, height)


def test_have_all_or_bitfield_follows_the_handshake() -> None:
    service = served()
    info, _ = make_v2()
    pieces = 600 + 3 + 1
    for fast, tail in [(True, struct.pack(">IB", 1, 0x0E)), (False, None)]:
        key = hashlib.sha256(info).digest()[:20]
        client = PeerConnection(key, os.urandom(20), v2=True, fast=fast)
        server = service.new_connection()
        out, _ = service.handle(server, client.send_handshake(), PeerState())
        if tail is not None:
            assert out.endswith(tail)
        else:
            bitfield = struct.pack(">IB", 1 + (pieces + 7) // 8, 5)
            assert bitfield in out
            assert out.endswith(b"\xff" * (pieces // 8) + bytes([0xF0]))


@pytest.mark.parametrize(
    "request_",
    [
        HashRequest(b"?" * 32, 0, 0, 2, 0),  # no such file
        HashRequest(big_root(), 10, 0, 2, 0),  # the root's layer (600 pieces: height 10)
        HashRequest(big_root(), 0, 1024, 512, 0),  # past the end of the padded layer
        HashRequest(big_root(), 0, 0, 2, 10),  # a proof climbing past the root
    ],
)
def test_what_the_tree_cannot_answer_is_rejected(request_: HashRequest) -> None:
    # (Below the piece layer is MerkleTree's refusal, tested in test_merkle: with 16 KiB
    # pieces the piece layer is the leaves, and nothing is below.)
    service = served()
    client, state, _, server = connect(service)
    out, why = service.handle(server, client.send_hash_request(request_), state)
    assert why is None
    assert events(client, out) == [request_.reject()]


def test_a_flood_of_hash_requests_is_cut_off() -> None:
    service = served()
    client, state, _, server = connect(service)
    request = HashRequest(big_root(), 0, 0, 2, 0)
    burst = client.send_hash_request(request) * 4097
    _, why = service.handle(server, burst, state)
    assert why == "too many hash requests"


def test_one_read_of_requests_gets_at_most_a_mebibyte_of_hashes() -> None:
    """The attack: one read of big requests to make us queue many MiB of replies."""
    service = served()
    client, state, _, server = connect(service)
    root = big_root()
    request = HashRequest(root, 0, 0, 1024, 0)  # the whole padded layer: 32 KiB
    out, why = service.handle(server, client.send_hash_request(request) * 64, state)
    assert why is None
    answers = events(client, out)
    answered = [a for a in answers if isinstance(a, Hashes)]
    assert len(answers) == 64
    assert 0 < len(answered) * 1024 * 32 <= MAX_HASH_BYTES_PER_READ
    assert all(isinstance(a, HashReject) for a in answers[len(answered) :])


@pytest.mark.parametrize("case", ["no layers", "bad layers"])
def test_without_good_layers_there_is_no_bit_and_every_request_is_rejected(case: str) -> None:
    service = served(layers=case == "bad layers", bad=case == "bad layers")
    client, state, hello, server = connect(service)
    assert isinstance(hello[0], HandshakeReceived) and not hello[0].supports_v2
    request = HashRequest(big_root(), 0, 0, 2, tree_height(BIG) - 1)
    out, _ = service.handle(server, client.send_hash_request(request), state)
    assert events(client, out) == [request.reject()]


def test_a_hybrid_dialled_by_v1_with_the_v2_bit_is_upgraded() -> None:
    service = served(hybrid=True)
    client, _, hello, _ = connect(service, hybrid_v1=True)
    info, _ = make_v2(hybrid=True)
    assert isinstance(hello[0], HandshakeReceived)
    assert hello[0].info_hash == hashlib.sha256(info).digest()[:20]
    assert client.info_hash == hashlib.sha256(info).digest()[:20]


# --- the .torrent's piece layers ---------------------------------------------------------


def test_piece_layers_are_written_sorted_and_read_back() -> None:
    info, layers = make_v2()
    torrent = build_torrent(info, piece_layers=layers, creation_date=1)
    meta = parse_torrent(torrent)
    assert meta.piece_layers == layers
    keys = sorted(layers)
    start = torrent.index(b"12:piece layersd") + len(b"12:piece layersd")
    expected = b"".join(b"32:" + k + b"%d:" % len(layers[k]) + layers[k] for k in keys)
    assert torrent[start : start + len(expected)] == expected
    assert torrent.index(b"4:info") < torrent.index(b"12:piece layers")
    assert build_torrent(info, piece_layers={}) == build_torrent(info)


@pytest.mark.parametrize(
    "layers",
    [{b"short": b"x" * 32}, {b"r" * 32: b"x" * 33}, {b"r" * 32: b""}],
)
def test_malformed_piece_layers_are_refused(layers: dict[bytes, bytes]) -> None:
    info, _ = make_v2()
    with pytest.raises(TorrentError):
        build_torrent(info, piece_layers=layers)
    good = build_torrent(info, piece_layers={b"r" * 32: b"x" * 32})
    bad = good.replace(b"32:" + b"r" * 32 + b"32:" + b"x" * 32, b"1:a1:b")
    with pytest.raises(TorrentError):
        parse_torrent(bad)


def test_hash_range_of_the_served_answers() -> None:
    # A request whose proof stops below the root still answers (libtorrent asks that way
    # when it already holds the upper nodes); we answer what the tree holds.
    service = served()
    client, state, _, server = connect(service)
    request = HashRequest(big_root(), 0, 512, 512, 0)
    out, _ = service.handle(server, client.send_hash_request(request), state)
    (answer,) = events(client, out)
    assert isinstance(answer, Hashes)
    assert answer.hash_range == HashRange(0, 512, 512, 0)
    assert len(answer.hashes) == 512


def test_a_v1_peer_of_a_hybrid_is_not_told_it_may_have_pieces() -> None:
    service = served(hybrid=True)
    info, _ = make_v2(hybrid=True)
    client = PeerConnection(hashlib.sha1(info).digest(), os.urandom(20))  # no v2 bit
    server = service.new_connection()
    hello = client.send_handshake() + client.send_ext_handshake()
    out, why = service.handle(server, hello, PeerState())
    assert why is None
    got = events(client, out)
    assert [type(e) for e in got] == [HandshakeReceived, ExtHandshake]  # no have-all
    assert client.info_hash == hashlib.sha1(info).digest()  # and no upgrade
