"""magnetar resolve against aria2 1.36 seeding on loopback (Debian's ``aria2`` package).

aria2 bans a peer whose BEP 10 extension handshake arrives in the same segment as its
BitTorrent handshake ("More than BtHandshakeMessage::MESSAGE_LENGTH bytes are buffered"):
before the resolver held its extension handshake back until the peer's handshake, a seed
that was all aria2 could not be resolved with default options. Skipped, with the reason,
when ``aria2c`` is not installed (``apt-get install aria2``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import bencode2
import pytest

from magnet.torrentfile import build_torrent, info_span

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
PIECE = 16 * 1024
START_TIMEOUT_S = 20.0


def _aria2c() -> str:
    path = shutil.which("aria2c")
    if path is None:
        pytest.skip("aria2c is not installed: apt-get install aria2")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _make_torrent(root: Path, kind: str) -> tuple[bytes, bytes]:
    """Data under ``root`` and its v1 torrent; returns (torrent, info dict)."""
    rng = os.urandom
    if kind == "single":
        files = {"single.bin": rng(200 * 1024 + 123)}
    else:
        files = {"a.bin": rng(64 * 1024), "b.txt": rng(1000), "sub/c.dat": rng(40 * 1024 + 7)}
    name = f"{kind}-{rng(4).hex()}"
    blob = b"".join(files.values())
    pieces = b"".join(
        hashlib.sha1(blob[i : i + PIECE]).digest() for i in range(0, len(blob), PIECE)
    )
    info: dict[bytes, object] = {b"name": name.encode(), b"piece length": PIECE, b"pieces": pieces}
    if kind == "single":
        (root / name).write_bytes(blob)
        info[b"length"] = len(blob)
    else:
        info[b"files"] = [
            {b"length": len(data), b"path": [p.encode() for p in rel.split("/")]}
            for rel, data in files.items()
        ]
        for rel, data in files.items():
            path = root / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    raw = bencode2.bencode(info)
    return build_torrent(raw, creation_date=0), raw


@pytest.fixture
def aria2_seed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, bytes]]:
    """aria2c seeding a fresh torrent on 127.0.0.1 (its DHT, LPD and PEX off); yields the
    magnet link with the seed as ``x.pe`` and the info dict."""
    aria2c = _aria2c()
    kind = getattr(request, "param", "single")
    torrent, info = _make_torrent(tmp_path, kind)
    (tmp_path / "t.torrent").write_bytes(torrent)
    port = _free_port()
    log = tmp_path / "aria2.log"
    proc = subprocess.Popen(
        [
            "timeout",
            "120",
            aria2c,
            "--no-conf",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--disable-ipv6",
            f"--interface={HOST}",
            f"--listen-port={port}",
            "--seed-ratio=0.0",  # seed whatever the ratio
            "--check-integrity=true",  # hash the data present: it is complete, so seed it
            f"--dir={tmp_path}",
            f"--log={log}",
            "--log-level=info",
            "--console-log-level=error",
            "--summary-interval=0",
            str(tmp_path / "t.torrent"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        # Seeding starts once the integrity check is over; the choker then runs.
        while b"Seeder state" not in (log.read_bytes() if log.exists() else b""):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"aria2c did not start seeding: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        ih = hashlib.sha1(info).hexdigest()
        yield f"magnet:?xt=urn:btih:{ih}&x.pe={HOST}:{port}", info
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _resolve(magnet: str, out: Path, *extra: str) -> dict[str, object]:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "magnet", "resolve", magnet, "--no-dht", "-o", str(out)),
            *("--json", "--timeout", "20", *extra),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record: dict[str, object] = json.loads(proc.stdout)
    return record


@pytest.mark.parametrize("aria2_seed", ["single", "multi"], indirect=True)
def test_resolve_from_aria2_seed_with_default_options(
    aria2_seed: tuple[str, bytes], tmp_path: Path
) -> None:
    magnet, info = aria2_seed
    out = tmp_path / "resolved.torrent"
    record = _resolve(magnet, out)
    data = out.read_bytes()
    assert data[info_span(data)] == info
    assert record["source"] == "x.pe"


@pytest.mark.parametrize("encryption", ["prefer", "require", "off"])
def test_resolve_from_aria2_seed_under_each_encryption_policy(
    aria2_seed: tuple[str, bytes], tmp_path: Path, encryption: str
) -> None:
    magnet, info = aria2_seed
    out = tmp_path / "resolved.torrent"
    _resolve(magnet, out, "--encryption", encryption)
    data = out.read_bytes()
    assert data[info_span(data)] == info
