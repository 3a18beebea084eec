"""BEP 52 hash exchange against libtorrent 2.1.1 on loopback, in both directions.

We fetch: a libtorrent seed answers the requests of `magnet.merkle.piece_layer_requests`,
sent and read through `magnet.hashmsgs`; each answer must prove to its file's pieces root
(`verify_hashes`) and the layers put together must equal the .torrent's `piece layers`.

We serve: libtorrent holds a v2 torrent without its piece layers (the info dict alone, as after a
magnet) and connects to a small seed of ours on 127.0.0.1: a blocking socket in a thread
that answers `hash request` through `magnet.hashmsgs` and `magnet.merkle.MerkleTree` (built
from the .torrent's piece layers, as a seed that has only the .torrent would) and `request`
with the files' bytes. libtorrent finishing the download means every hash we sent proved to
its pieces root and every piece checked against those hashes; one forged uncle makes it
drop us. Files: 513 pieces (2**9 + 1: libtorrent asks for the last one with length 1),
3 pieces (padded to 4), and one smaller than a piece (never asked about).
"""

from __future__ import annotations

import hashlib
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from magnet.hashmsgs import (
    HASH_REJECT,
    HASH_REQUEST,
    HASHES,
    Hashes,
    HashMessageError,
    HashRequest,
    encode_hash_reject,
    encode_hash_request,
    encode_hashes,
    parse_hash_message,
    parse_hash_request,
)
from magnet.merkle import (
    MerkleError,
    MerkleTree,
    pad_hash,
    piece_count,
    piece_layer_requests,
    split_hashes,
    tree_height,
    verify_hashes,
)

lt: Any = pytest.importorskip("libtorrent")

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

PIECE = 32 * 1024
STEP_S = 30.0  # bound on any single wait for libtorrent (generous: the machine is shared)
SIZES = {"a.bin": 512 * PIECE + 100, "b.bin": 2 * PIECE + 5, "c.bin": 1000}

MSG_UNCHOKE = 1
MSG_REQUEST = 6
MSG_PIECE = 7
MSG_HAVE_ALL = 14
# BEP 10 extension protocol and BEP 6 fast extension (for have-all).
RESERVED = bytes([0, 0, 0, 0, 0, 0x10, 0, 0x04])


@dataclass
class V2Torrent:
    info: bytes
    info_hash: bytes
    #: The torrent's piece space: every file at its offset, pad gaps zero.
    space: bytes
    #: Trees from the piece layers, by pieces root, for the files larger than a piece.
    trees: dict[bytes, MerkleTree]
    #: The whole .torrent as libtorrent made it, and where its files are.
    metainfo: bytes
    save_path: Path
    #: (pieces root, file length) of every file larger than a piece.
    big_files: list[tuple[bytes, int]]
    piece_layers: dict[bytes, bytes]


def make_v2(root: Path) -> V2Torrent:
    payload = root / "payload"
    payload.mkdir()
    rng = random.Random(52)
    for name, size in SIZES.items():
        (payload / name).write_bytes(rng.randbytes(size))
    ct = lt.create_torrent(lt.list_files(str(payload)), PIECE, lt.create_torrent.v2_only)
    lt.set_piece_hashes(ct, str(root))
    generated = ct.generate()
    info = bytes(lt.bencode(generated[b"info"]))
    layout = lt.torrent_info(lt.bencode(generated)).layout()
    space = bytearray(layout.total_size())
    for i in range(layout.num_files()):
        if layout.file_flags(i) & lt.file_storage.flag_pad_file:
            continue
        data = (root / layout.file_path(i)).read_bytes()
        space[layout.file_offset(i) : layout.file_offset(i) + len(data)] = data
    trees = {}
    big_files = []
    for name, size in SIZES.items():
        entry = generated[b"info"][b"file tree"][name.encode()][b""]
        layer = generated[b"piece layers"].get(entry[b"pieces root"])
        if layer is not None:
            tree = MerkleTree.from_piece_layer(split_hashes(layer), PIECE, size)
            assert tree.root == entry[b"pieces root"]
            trees[tree.root] = tree
            big_files.append((tree.root, size))
    assert len(trees) == 2
    return V2Torrent(
        info=info,
        info_hash=hashlib.sha256(info).digest(),
        space=bytes(space),
        trees=trees,
        metainfo=bytes(lt.bencode(generated)),
        save_path=root,
        big_files=big_files,
        piece_layers=dict(generated[b"piece layers"]),
    )


class Stream:
    """Length-prefixed peer messages over a blocking socket, every read bounded by a deadline."""

    def __init__(self, conn: socket.socket, deadline: float, stop: threading.Event) -> None:
        self.conn = conn
        self.deadline = deadline
        self.stop = stop
        self.buf = bytearray()
        conn.settimeout(0.2)

    def take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.stop.is_set() or time.monotonic() > self.deadline:
                raise EOFError("stopped or out of time")
            try:
                chunk = self.conn.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                raise EOFError("peer closed")
            self.buf.extend(chunk)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def handshake(self, info_hash: bytes, peer_id: bytes) -> None:
        """Send ours, read theirs; theirs must name the same (truncated v2) info-hash."""
        self.conn.sendall(b"\x13BitTorrent protocol" + RESERVED + info_hash[:20] + peer_id)
        assert self.take(68)[28:48] == info_hash[:20]

    def message(self) -> bytes:
        """The next non-keepalive message: id byte, then body."""
        while True:
            (size,) = struct.unpack(">I", self.take(4))
            if size:
                return self.take(size)


@dataclass
class HashSeed:
    """Our side: a one-connection seed that answers hash requests and block requests."""

    torrent: V2Torrent
    forge: bool = False
    server: socket.socket = field(init=False)
    requests: list[HashRequest] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)

    @property
    def port(self) -> int:
        return int(self.server.getsockname()[1])

    def run(self) -> None:
        try:
            conn = self._accept()
            if conn is not None:
                with conn:
                    self._serve(conn)
        except (OSError, EOFError):
            pass  # libtorrent hung up (as it must after a forged proof) or we stopped
        except (HashMessageError, MerkleError, AssertionError) as exc:
            self.failures.append(exc)
        finally:
            self.server.close()

    def _accept(self) -> socket.socket | None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            return conn
        return None

    def _serve(self, conn: socket.socket) -> None:
        stream = Stream(conn, time.monotonic() + 2 * STEP_S, self.stop)
        stream.handshake(self.torrent.info_hash, b"-MG0001-hashseed0000")
        conn.sendall(struct.pack(">IB", 1, MSG_HAVE_ALL) + struct.pack(">IB", 1, MSG_UNCHOKE))
        while True:
            body = stream.message()
            if body[0] == HASH_REQUEST:
                conn.sendall(self._answer(parse_hash_request(body[1:])))
            elif body[0] == MSG_REQUEST:
                index, begin, length = struct.unpack(">III", body[1:])
                start = index * PIECE + begin
                block = self.torrent.space[start : start + length]
                header = struct.pack(">IBII", 9 + len(block), MSG_PIECE, index, begin)
                conn.sendall(header + block)

    def _answer(self, request: HashRequest) -> bytes:
        self.requests.append(request)
        tree = self.torrent.trees.get(request.pieces_root)
        if tree is None:
            return encode_hash_reject(request.reject())
        hashes = tree.hashes(request.hash_range)
        if self.forge:
            hashes[-1] = hashlib.sha256(hashes[-1]).digest()
        fields = (request.base_layer, request.index, request.length, request.proof_layers)
        return encode_hashes(Hashes(request.pieces_root, *fields, tuple(hashes)))


def session() -> Any:
    """A libtorrent session that only ever talks to 127.0.0.1, over plain TCP."""
    ses = lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "outgoing_interfaces": "127.0.0.1",
            "enable_dht": False,
            "dht_bootstrap_nodes": "",
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_ip_notifier": False,
            "out_enc_policy": int(lt.enc_policy.disabled),
            "in_enc_policy": int(lt.enc_policy.disabled),
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "alert_mask": int(lt.alert.category_t.error_notification)
            | int(lt.alert.category_t.peer_notification)
            | int(lt.alert.category_t.status_notification),
        }
    )
    ip_filter = lt.ip_filter()
    ip_filter.add_rule("0.0.0.0", "255.255.255.255", 1)
    ip_filter.add_rule("127.0.0.0", "127.255.255.255", 0)
    ses.set_ip_filter(ip_filter)
    return ses


@dataclass
class Run:
    seed: HashSeed
    finished: bool
    dropped: list[str]


def fetch_from_us(root: Path, torrent: V2Torrent, *, forge: bool) -> Run:
    """libtorrent downloads ``torrent`` from our seed until done, dropped, or STEP_S."""
    seed = HashSeed(torrent, forge=forge)
    worker = threading.Thread(target=seed.run, daemon=True)
    worker.start()
    holder = [session()]
    ses = holder[0]
    dropped: list[str] = []
    try:
        params = lt.add_torrent_params()
        # The info dict alone: libtorrent must fetch every piece layer from us.
        params.ti = lt.torrent_info(lt.bencode({b"info": lt.bdecode(torrent.info)}))
        params.save_path = str(root / "download")
        handle = ses.add_torrent(params)
        handle.connect_peer(("127.0.0.1", seed.port))
        deadline = time.monotonic() + STEP_S
        while time.monotonic() < deadline and not handle.status().is_seeding and not dropped:
            ses.wait_for_alert(100)
            for alert in ses.pop_alerts():
                if isinstance(alert, lt.peer_disconnected_alert | lt.peer_error_alert):
                    dropped.append(alert.message())
        return Run(seed, bool(handle.status().is_seeding), dropped)
    finally:
        seed.stop.set()
        worker.join(10)
        ses.pause()
        closer = threading.Thread(target=holder.clear, daemon=True)
        closer.start()
        closer.join(10)


@pytest.fixture(scope="module")
def torrent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[V2Torrent]:
    yield make_v2(tmp_path_factory.mktemp("v2"))


def test_libtorrent_takes_our_piece_hashes_and_completes(
    torrent: V2Torrent, tmp_path: Path
) -> None:
    run = fetch_from_us(tmp_path, torrent, forge=False)
    assert not run.seed.failures
    assert run.finished, f"not complete after {STEP_S} s; dropped: {run.dropped}"
    asked = {(r.pieces_root, r.base_layer, r.index, r.length) for r in run.seed.requests}
    big, small = sorted(torrent.trees.values(), key=lambda t: t.height, reverse=True)
    # 32 KiB pieces: the piece layer is layer 1. The 513-piece file comes in two requests,
    # the second for its one last piece with length 1; the 3-piece one in one request of 4.
    assert (big.root, 1, 0, 512) in asked
    assert (big.root, 1, 512, 1) in asked
    assert (small.root, 1, 0, 4) in asked
    assert {r.pieces_root for r in run.seed.requests} == set(torrent.trees)


def test_libtorrent_drops_us_for_a_forged_uncle(torrent: V2Torrent, tmp_path: Path) -> None:
    run = fetch_from_us(tmp_path, torrent, forge=True)
    assert not run.seed.failures
    assert run.seed.requests, "libtorrent asked for no hashes"
    assert not run.finished
    assert run.dropped, f"libtorrent kept a peer that forged a proof for {STEP_S} s"
    assert "invalid hashes" in run.dropped[0]


def test_our_requests_fetch_every_piece_layer_from_a_libtorrent_seed(
    torrent: V2Torrent,
) -> None:
    holder = [session()]
    ses = holder[0]
    try:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(torrent.metainfo)
        params.save_path = str(torrent.save_path)
        # seed_mode alone: not auto-managed and not paused, so it accepts peers at once.
        params.flags = lt.torrent_flags.seed_mode
        ses.add_torrent(params)
        heights = {root: tree_height(size) for root, size in torrent.big_files}
        requests = [
            HashRequest(root, r.base_layer, r.index, r.length, r.proof_layers)
            for root, size in torrent.big_files
            for r in piece_layer_requests(size, PIECE)
        ]
        # 513 pieces: two requests of 512 (the second mostly padding); 3 pieces: one of 4.
        assert [(r.index, r.length) for r in requests] == [(0, 512), (512, 512), (0, 4)]
        with socket.create_connection(("127.0.0.1", ses.listen_port()), timeout=STEP_S) as conn:
            stream = Stream(conn, time.monotonic() + STEP_S, threading.Event())
            stream.handshake(torrent.info_hash, b"-MG0001-hashclient00")
            # BEP 52: hash requests need no unchoke; send them all at once.
            conn.sendall(b"".join(encode_hash_request(r) for r in requests))
            answers: dict[HashRequest, Hashes] = {}
            while len(answers) < len(requests):
                body = stream.message()
                if body[0] in (HASHES, HASH_REJECT):
                    msg = parse_hash_message(body[0], body[1:])
                    assert isinstance(msg, Hashes), f"libtorrent refused {msg}"
                    answers[msg.request] = msg
        assert set(answers) == set(requests)
        for root, size in torrent.big_files:
            proven: list[bytes] = []
            for request in requests:
                if request.pieces_root == root:
                    msg = answers[request]
                    proven += verify_hashes(msg.hash_range, msg.hashes, root, heights[root])
            count = piece_count(size, PIECE)
            assert b"".join(proven[:count]) == torrent.piece_layers[root]
            assert proven[count:] == [pad_hash(1)] * (len(proven) - count)
    finally:
        ses.pause()
        closer = threading.Thread(target=holder.clear, daemon=True)
        closer.start()
        closer.join(10)
