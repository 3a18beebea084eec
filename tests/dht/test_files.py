"""write_atomic: the whole new content or the old one, no temp files left, stale ones swept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dht.io.files import STALE_TEMP_S, write_atomic


def test_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    write_atomic(path, b"new content")
    assert path.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # temp removed


def test_only_old_temps_of_the_same_file_are_swept(tmp_path: Path) -> None:
    stale = tmp_path / ".a.torrent.x1.tmp"
    fresh = tmp_path / ".a.torrent.x2.tmp"
    other = tmp_path / ".b.torrent.x3.tmp"
    for p in (stale, fresh, other):
        p.write_bytes(b"half")
    old = time.time() - STALE_TEMP_S - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    write_atomic(tmp_path / "a.torrent", b"d4:infod1:xi1eee")
    assert not stale.exists() and fresh.exists() and other.exists()
