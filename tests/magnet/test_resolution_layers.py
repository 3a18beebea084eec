"""The piece layers phase of a resolution (BEP 52), in memory on a fake clock.

Peers serve a v2 info dict and answer hash requests from the torrent's piece layers
(`MerkleTree.from_piece_layer`, as a seed with only the .torrent would); the bad ones forge
a proof, reject, stall or send what nobody asked. The resolution must end with the exact
layers, taken only from proofs that reach each file's pieces root.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import ClassVar

import bencode2
import pytest

from magnet.hashmsgs import Hashes, HashRequest
from magnet.merkle import HASH_SIZE, MerkleTree, piece_count, root_from_layer
from magnet.peerwire import (
    NEED_DATA,
    ConnectionClosed,
    HandshakeReceived,
    MetadataRequest,
    Violation,
)
from magnet.resolution import Action, MetadataVerified, Resolution, Resolved
from tests.magnet.fakepeers import Behaviour
from tests.magnet.test_resolution import Swarm, addr

PIECE = 16 * 1024
# 600 pieces (two requests: 512 and 128 of which 88 cover data), 3 pieces (padded to 4),
# and one piece exactly (no layer).
SIZES = {b"big.bin": 600 * PIECE - 7, b"mid.bin": 2 * PIECE + 1, b"one.bin": PIECE}


def make_v2(seed: int = 52, hybrid: bool = False) -> tuple[bytes, dict[bytes, bytes]]:
    """A v2 (or hybrid) info dict and its piece layers, from random piece hashes."""
    rng = random.Random(seed)
    tree: dict[bytes, object] = {}
    layers: dict[bytes, bytes] = {}
    for name, size in SIZES.items():
        if size > PIECE:
            layer = [rng.randbytes(HASH_SIZE) for _ in range(piece_count(size, PIECE))]
            root = root_from_layer(layer, PIECE, size)
            layers[root] = b"".join(layer)
        else:
            root = rng.randbytes(HASH_SIZE)  # one piece: the root is the piece's hash
        tree[name] = {b"": {b"length": size, b"pieces root": root}}
    info: dict[bytes, object] = {
        b"file tree": tree,
        b"meta version": 2,
        b"name": b"layered",
        b"piece length": PIECE,
    }
    if hybrid:  # enough for parse_info: v1 piece hashes of the right shape
        info[b"pieces"] = bytes(20)
        info[b"length"] = 1
    return bencode2.bencode(info), layers


class LayerSeed(Behaviour):
    """Serves the metadata and answers hash requests from the piece layers."""

    layers: ClassVar[dict[bytes, bytes]] = {}

    def __init__(self, info: bytes) -> None:
        super().__init__(info)
        self.trees = {
            root: MerkleTree.from_piece_layer(
                [blob[i : i + 32] for i in range(0, len(blob), 32)], PIECE, _size(info, root)
            )
            for root, blob in self.layers.items()
        }
        self.hash_requests: list[HashRequest] = []

    def answer(self, request: HashRequest) -> bytes:
        hashes = self.trees[request.pieces_root].hashes(request.hash_range)
        fields = (request.base_layer, request.index, request.length, request.proof_layers)
        return self.conn.send_hashes(Hashes(request.pieces_root, *fields, tuple(hashes)))

    def feed(self, data: bytes) -> bytes:
        out = b""
        self.conn.receive_data(data)
        while (ev := self.conn.next_event()) is not NEED_DATA:
            if isinstance(ev, HandshakeReceived):
                out += self.conn.send_handshake()
                out += self.conn.send_ext_handshake(metadata_size=self.advertised_size())
            elif isinstance(ev, MetadataRequest):
                out += self.on_request(ev)
            elif isinstance(ev, HashRequest):
                self.hash_requests.append(ev)
                out += self.answer(ev)
            elif isinstance(ev, Violation | ConnectionClosed):
                self.closed = True
                break
        return out


def _size(info: bytes, root: bytes) -> int:
    tree = bencode2.bdecode(info)[b"file tree"]
    return next(int(e[b""][b"length"]) for e in tree.values() if e[b""][b"pieces root"] == root)


class Forger(LayerSeed):
    """Answers with the last uncle altered: the proof no longer reaches the root."""

    def answer(self, request: HashRequest) -> bytes:
        hashes = self.trees[request.pieces_root].hashes(request.hash_range)
        hashes[-1] = hashlib.sha256(hashes[-1]).digest()
        fields = (request.base_layer, request.index, request.length, request.proof_layers)
        return self.conn.send_hashes(Hashes(request.pieces_root, *fields, tuple(hashes)))


class HashRejecter(LayerSeed):
    def answer(self, request: HashRequest) -> bytes:
        return self.conn.send_hash_reject(request.reject())


class HashStaller(LayerSeed):
    def answer(self, request: HashRequest) -> bytes:
        return b""


class Unasked(LayerSeed):
    """Answers the request, then sends proven hashes for a range nobody asked for."""

    def answer(self, request: HashRequest) -> bytes:
        tree = self.trees[request.pieces_root]
        other = HashRequest(request.pieces_root, request.base_layer, 0, 2, 0)
        hashes = tree.hashes(other.hash_range)
        return self.conn.send_hashes(Hashes(request.pieces_root, *_fields(other), tuple(hashes)))


def _fields(r: HashRequest) -> tuple[int, int, int, int]:
    return (r.base_layer, r.index, r.length, r.proof_layers)


def layered(behaviour: type[LayerSeed], layers: dict[bytes, bytes]) -> type[LayerSeed]:
    """``behaviour`` bound to ``layers`` (the Swarm makes peers from the info alone)."""
    return type(behaviour.__name__, (behaviour,), {"layers": layers})


def v2_resolution(info: bytes, **kw: object) -> Resolution:
    v2 = hashlib.sha256(info).digest()
    kw.setdefault("randbytes", random.Random(0).randbytes)
    kw.setdefault("piece_layers", True)
    return Resolution(v2[:20], peer_id=os.urandom(20), info_hash_v2=v2, **kw)  # type: ignore[arg-type]


def test_honest_seed_gives_every_layer_proven() -> None:
    info, layers = make_v2()
    seed = layered(LayerSeed, layers)(info)
    swarm = Swarm(v2_resolution(info), {addr(1): seed})
    swarm.res.add_peers([addr(1)], "dht", 0.0)
    result = swarm.run()
    assert result is not None
    assert result.info == info
    assert result.piece_layers == layers
    assert result.layer_peers == (addr(1),)
    # big: two chunks of 512 (the second mostly padding); mid: one of 4 (3 pieces padded).
    # one.bin (one piece) is never asked about.
    assert len(seed.hash_requests) == 3
    assert {(r.index, r.length) for r in seed.hash_requests} == {(0, 512), (512, 512), (0, 4)}


def test_metadata_verified_comes_before_the_layers() -> None:
    info, layers = make_v2()
    swarm = Swarm(v2_resolution(info), {addr(1): layered(LayerSeed, layers)(info)})
    swarm.res.add_peers([addr(1)], "dht", 0.0)
    seen: list[object] = []
    res = swarm.res
    original = res.next_action

    def spy() -> Action | None:
        action = original()
        if isinstance(action, MetadataVerified | Resolved):
            seen.append(action)
        return action

    res.next_action = spy  # type: ignore[method-assign]  # a spy on the actions
    swarm.run()
    assert [type(a) for a in seen] == [MetadataVerified, Resolved]
    first = seen[0]
    assert isinstance(first, MetadataVerified)
    assert first.result.piece_layers is None and first.result.info == info


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (Forger, "sent hashes that do not prove to the pieces root"),
        (HashRejecter, "rejected hash requests"),
        (Unasked, "sent hashes it was not asked for"),
    ],
)
def test_a_bad_hash_peer_is_dropped_and_an_honest_one_finishes(
    bad: type[LayerSeed], reason: str
) -> None:
    info, layers = make_v2()
    liar = layered(bad, layers)(info)
    honest = layered(LayerSeed, layers)(info)
    swarm = Swarm(v2_resolution(info), {addr(1): liar, addr(2): honest})
    swarm.res.add_peers([addr(1), addr(2)], "dht", 0.0)
    result = swarm.run()
    assert result is not None
    assert result.piece_layers == layers  # nothing the bad peer said was kept
    assert result.layer_peers == (addr(2),)
    assert swarm.closes[addr(1)] == reason
    failures = swarm.res.stats.failures
    assert failures is not None and failures[reason] == 1
    assert liar.hash_requests, "the bad peer was never asked"


def test_a_forger_alone_ends_with_the_metadata_and_no_layers() -> None:
    info, layers = make_v2()
    swarm = Swarm(v2_resolution(info), {addr(1): layered(Forger, layers)(info)})
    swarm.res.add_peers([addr(1)], "dht", 0.0)
    result = swarm.run()
    # Nobody left to ask: the verified info dict alone, at once (not at the timeout).
    assert result is not None
    assert result.info == info
    assert result.piece_layers is None
    assert swarm.now == 0.0


def test_piece_layers_off_ends_at_the_metadata() -> None:
    info, layers = make_v2()
    seed = layered(LayerSeed, layers)(info)
    swarm = Swarm(v2_resolution(info, piece_layers=False), {addr(1): seed})
    swarm.res.add_peers([addr(1)], "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.piece_layers is None
    assert seed.hash_requests == []


def test_the_work_is_spread_over_the_seeds() -> None:
    info, layers = make_v2()
    seeds = {addr(i): layered(LayerSeed, layers)(info) for i in range(3)}
    swarm = Swarm(v2_resolution(info), seeds)
    swarm.res.add_peers(list(seeds), "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.piece_layers == layers
    asked = [len(s.hash_requests) for s in seeds.values()]
    assert all(asked), f"three chunks, three seeds, yet one was never asked: {asked}"
    for s in seeds.values():  # the end game may repeat a chunk elsewhere, never to one seed
        assert len(set(s.hash_requests)) == len(s.hash_requests)


def test_a_staller_is_dropped_at_the_request_timeout() -> None:
    info, layers = make_v2()
    staller = layered(HashStaller, layers)(info)
    swarm = Swarm(v2_resolution(info, request_timeout=5.0), {addr(1): staller})
    swarm.res.add_peers([addr(1)], "dht", 0.0)
    result = swarm.run()
    assert swarm.closes[addr(1)] == "stalled on a hash request"
    assert swarm.now == 5.0
    assert result is not None and result.piece_layers is None  # nobody left: metadata alone


def test_hybrid_peer_that_upgrades_to_the_v2_hash_is_accepted() -> None:
    info, layers = make_v2(hybrid=True)
    v1 = hashlib.sha1(info).digest()
    v2 = hashlib.sha256(info).digest()

    class Upgrader(layered(LayerSeed, layers)):  # type: ignore[misc]
        """Answers a v1 handshake that carries the v2 bit with the v2 hash (libtorrent)."""

        def feed(self, data: bytes) -> bytes:
            if not self.conn.v2:
                assert data[27] & 0x10, "no BEP 52 bit in the resolver's handshake"
                self.conn.v2 = True
                self.conn.receive_data(data[:68])
                assert isinstance(self.conn.next_event(), HandshakeReceived)
                out: bytes = self.conn.send_handshake(v2[:20])
                out += self.conn.send_ext_handshake(metadata_size=len(self.info))
                # Our handshake now comes alone (the extension handshake waits for theirs):
                # feeding b"" would mean end of stream.
                rest: bytes = super().feed(data[68:]) if len(data) > 68 else b""
                return out + rest
            reply: bytes = super().feed(data)
            return reply

    res = Resolution(
        v1,
        peer_id=os.urandom(20),
        info_hash_v1=v1,
        info_hash_v2=v2,
        piece_layers=True,
        randbytes=random.Random(0).randbytes,
    )
    seed = Upgrader(info)
    swarm = Swarm(res, {addr(1): seed})
    res.add_peers([addr(1)], "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.piece_layers == layers


def test_a_v1_resolution_never_sets_the_v2_bit() -> None:
    info, _ = make_v2(hybrid=True)
    v1 = hashlib.sha1(info).digest()
    res = Resolution(v1, peer_id=os.urandom(20), piece_layers=True, randbytes=os.urandom)
    res.add_peers([addr(1)], "dht", 0.0)
    res.next_action()  # Connect
    res.connection_made(addr(1), 0.0)
    hello = res.next_action()
    assert hello is not None and hasattr(hello, "data")
    assert not hello.data[27] & 0x10


def test_a_torrent_claiming_too_many_pieces_ends_at_the_metadata() -> None:
    """The attack: the info dict (it hashes to the link) claims a file of 2**60 bytes; its
    layer would be 2**46 hashes. No layers phase at all: the metadata, at once."""
    root = b"r" * 32
    info = bencode2.bencode(
        {
            b"file tree": {b"huge": {b"": {b"length": 1 << 60, b"pieces root": root}}},
            b"meta version": 2,
            b"name": b"huge",
            b"piece length": PIECE,
        }
    )
    seed = layered(LayerSeed, {})(info)
    swarm = Swarm(v2_resolution(info), {addr(1): seed})
    swarm.res.add_peers([addr(1)], "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.info == info and result.piece_layers is None
    assert seed.hash_requests == [] and swarm.res.layers is None


def test_a_peer_asking_us_for_hashes_gets_a_reject() -> None:
    info, layers = make_v2()

    class Asker(layered(LayerSeed, layers)):  # type: ignore[misc]
        """Sends a hash request of its own with its handshake; records what comes back."""

        answers: ClassVar[list[object]] = []

        def feed(self, data: bytes) -> bytes:
            out: bytes = super().feed(data)
            if self.conn.info_hash is not None and not self.answers:
                self.answers.append("asked")
                ask: bytes = self.conn.send_hash_request(HashRequest(b"q" * 32, 0, 0, 2, 0))
                return out + ask
            return out

    seed = Asker(info)
    swarm = Swarm(v2_resolution(info), {addr(1): seed})
    swarm.res.add_peers([addr(1)], "dht", 0.0)
    sent: list[bytes] = []
    original = seed.feed

    def spy(data: bytes) -> bytes:
        sent.append(data)
        return original(data)

    seed.feed = spy  # type: ignore[method-assign]
    result = swarm.run()
    assert result is not None and result.piece_layers == layers
    reject = HashRequest(b"q" * 32, 0, 0, 2, 0).reject()
    from magnet.hashmsgs import encode_hash_reject

    assert any(encode_hash_reject(reject) in data for data in sent)


def test_a_peer_with_another_metadata_size_is_not_asked_for_hashes() -> None:
    info, layers = make_v2()

    class OtherSize(layered(LayerSeed, layers)):  # type: ignore[misc]
        def advertised_size(self) -> int:
            return len(self.info) + 1

    staller = layered(HashStaller, layers)(info)  # holds the layers phase open
    other = OtherSize(info)
    honest = layered(LayerSeed, layers)(info)
    peers: dict[tuple[str, int], Behaviour] = {addr(1): staller, addr(2): other, addr(3): honest}
    swarm = Swarm(v2_resolution(info), peers)
    swarm.res.add_peers([addr(1)], "dht", 0.0)
    swarm.pump()
    assert swarm.res.layers is not None and swarm.result is None
    swarm.res.add_peers([addr(2)], "dht", 0.0)
    swarm.pump()
    assert swarm.closes[addr(2)] == "claims another metadata size"
    assert other.hash_requests == []
    swarm.res.add_peers([addr(3)], "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.piece_layers == layers
    assert result.layer_peers == (addr(3),)


class Partial(LayerSeed):
    """Lacks the layer of the 3-piece file: rejects that request, answers the others."""

    def answer(self, request: HashRequest) -> bytes:
        if request.length == 4:
            return self.conn.send_hash_reject(request.reject())
        return super().answer(request)


def test_a_peer_lacking_one_layer_is_kept_for_the_others_and_the_gap_filled() -> None:
    info, layers = make_v2()
    partial = layered(Partial, layers)(info)
    honest = layered(LayerSeed, layers)(info)
    swarm = Swarm(v2_resolution(info), {addr(1): partial, addr(2): honest})
    swarm.res.add_peers([addr(1), addr(2)], "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.piece_layers == layers
    assert addr(1) not in swarm.closes or swarm.closes[addr(1)] == "done"


def test_when_the_last_peer_refused_what_is_missing_the_metadata_comes_at_once() -> None:
    info, layers = make_v2()
    swarm = Swarm(v2_resolution(info), {addr(1): layered(Partial, layers)(info)})
    swarm.res.add_peers([addr(1)], "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.info == info and result.piece_layers is None
    assert swarm.now == 0.0  # not at a timeout: nobody could answer any more
