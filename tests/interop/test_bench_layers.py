"""scripts/bench_layers.py runs end to end: every tool succeeds and the table is printed."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]


def test_bench_layers_one_run() -> None:
    pytest.importorskip("libtorrent")
    proc = subprocess.run(
        [sys.executable, "scripts/bench_layers.py", "--runs", "1", "--version", "hybrid"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for tool in ("magnetar", "magnetar-info", "libtorrent"):
        assert any(line.split()[:2] == [tool, "1/1"] for line in lines), proc.stdout
    assert "complete / info-only" in proc.stdout
