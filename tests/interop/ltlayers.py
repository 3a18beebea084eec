"""v2 and hybrid torrents with piece layers, and libtorrent fetching them (BEP 52).

Shared by ``test_piece_layers_lt.py`` and ``scripts/bench_layers.py``: `make_layered`
writes files several pieces long (one over 512 pieces, so its layer takes two requests)
and makes the torrent with libtorrent; `lt_fetch_layers` has a libtorrent session resolve
a magnet and then its piece layers (every file at priority 0: no payload is downloaded)
and returns the complete .torrent as libtorrent writes it; `piece_layers_value` cuts the
raw ``piece layers`` value out of a .torrent, to compare byte for byte.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libtorrent as lt

from magnet.bencode_spans import value_end
from tests.interop.ltswarm import PIECE_16K, LtNode, TorrentSpec, TorrentVersion, _spec

#: File sizes: 514 pieces (2**9 + 2: two requests, the second of 2), 4 pieces from 3 and a
#: bit (padded), exactly 2**2 pieces, one piece exactly (no layer), a small and an empty one.
LAYERED_SIZES = {
    "big.bin": 513 * PIECE_16K + 100,
    "mid.bin": 3 * PIECE_16K + 5,
    "sub/four.bin": 4 * PIECE_16K,
    "sub/one.bin": PIECE_16K,
    "small.txt": 1000,
    "empty.dat": 0,
}


def make_layered(
    workdir: Path, version: TorrentVersion, *, seed: int | None = None, name: str | None = None
) -> TorrentSpec:
    """A v2 or hybrid torrent of `LAYERED_SIZES` in 16 KiB pieces, data under ``workdir``."""
    rng = random.Random(seed)
    name = name or f"layers-{version}-{rng.randbytes(4).hex()}"
    save_path = Path(tempfile.mkdtemp(prefix="layers-", dir=workdir))
    root = save_path / name
    for rel, size in LAYERED_SIZES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    flags = {"v1": lt.create_torrent.v1_only, "hybrid": 0, "v2": lt.create_torrent.v2_only}
    ct = lt.create_torrent(lt.list_files(str(root)), PIECE_16K, flags[version])
    ct.set_creator("magnetar ltlayers")
    lt.set_piece_hashes(ct, str(save_path))
    return _spec(lt.bencode(ct.generate()), name, root, save_path)


def piece_layers_value(torrent: bytes) -> bytes:
    """The raw bencoded ``piece layers`` value of a .torrent (its top-level key, found by
    walking the outer dict's keys; b"" when it has none)."""
    pos = 1
    while torrent[pos : pos + 1] != b"e":
        key_end = value_end(torrent, pos)
        key = torrent[torrent.index(b":", pos) + 1 : key_end]
        end = value_end(torrent, key_end)
        if key == b"piece layers":
            return torrent[key_end:end]
        pos = end
    return b""


def no_download_settings() -> dict[str, Any]:
    """What a libtorrent client needs to fetch piece layers without payload (shared/README)."""
    return {"close_redundant_connections": False}


def lt_fetch_layers(
    node: LtNode,
    magnet: str,
    timeout: float,
    *,
    peer: tuple[str, int] | None = None,
    on_metadata: Callable[[float], None] | None = None,
) -> tuple[bytes, float]:
    """libtorrent resolves ``magnet`` and fetches its piece layers; returns (the .torrent
    libtorrent writes, seconds from adding the magnet to the layers complete).

    Every file at priority 0, so only hashes move. ``peer`` is dialled at once (no DHT
    needed); the DHT is kicked every 0.5 s until the metadata arrives. ``on_metadata``
    gets the seconds to the metadata. The layers are complete when the .torrent libtorrent
    writes from its resume data holds an entry for every file over one piece (polled: a
    resume-data save about every millisecond, so the time is late by up to one poll).
    """
    atp = lt.parse_magnet_uri(magnet)
    atp.save_path = str(node.workdir)
    atp.flags &= ~(lt.torrent_flags.paused | lt.torrent_flags.auto_managed)
    atp.flags |= lt.torrent_flags.default_dont_download
    ses = node.session
    start = time.monotonic()
    handle = ses.add_torrent(atp)
    deadline = start + timeout
    try:
        if peer is not None:
            handle.connect_peer(peer)
        kick = 0.0
        while not handle.status().has_metadata:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"libtorrent: no metadata after {timeout} s: {node.recent()}")
            if now >= kick and peer is None:
                handle.force_dht_announce()
                kick = now + 0.5
            node.pump(0.01)
        if on_metadata is not None:
            on_metadata(time.monotonic() - start)
        wanted = _layer_count(handle.torrent_file())
        while True:
            handle.save_resume_data(lt.save_resume_flags_t.save_info_dict)
            params = _resume_params(node, deadline)
            torrent: Any
            try:
                torrent = lt.write_torrent_file(params)
            except RuntimeError:  # "a piece layer is invalid": some still missing
                torrent = {}
            if len(torrent.get(b"piece layers", {})) >= wanted:
                return bytes(lt.bencode(torrent)), time.monotonic() - start
            if time.monotonic() > deadline:
                raise TimeoutError(f"libtorrent: piece layers incomplete after {timeout} s")
            node.pump(0.001)  # ~1 ms between polls: the finer, the truer the time
    finally:
        ses.remove_torrent(handle)


def _layer_count(ti: Any) -> int:
    files = ti.layout()
    return len(
        {
            files.root(i).to_bytes()
            for i in range(files.num_files())
            if files.file_size(i) > ti.piece_length()
            and not files.file_flags(i) & lt.file_storage.flag_pad_file
        }
    )


def _resume_params(node: LtNode, deadline: float) -> Any:
    while time.monotonic() < deadline:
        for alert in node._pop(0.05):
            if isinstance(alert, lt.save_resume_data_alert):
                return alert.params
            if isinstance(alert, lt.save_resume_data_failed_alert):
                raise RuntimeError(alert.message())
    raise TimeoutError("libtorrent: no resume data")
