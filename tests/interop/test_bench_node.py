"""scripts/bench_node.py runs end to end: every target measured, a failing node skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import LIBTORRENT_MISSING

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["--seconds", "0.3", "--warmup", "0.1", "--sources", "50", "--swarm", "2", "--json"]


def bench(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_node.py"), *SHORT, *args],
        capture_output=True,
        text=True,
        timeout=80,
        cwd="/",  # the script finds the repository itself
    )
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def test_all_targets_are_flooded_and_compared() -> None:
    pytest.importorskip("libtorrent", reason=LIBTORRENT_MISSING)
    ours = f"{sys.executable} {ROOT / 'scripts' / 'krpc_load.py'} serve {{host}} {{port}}"
    doc = bench(
        "--target", "trivial", "--target", "libtorrent", "--target", "ours", "--ours-cmd", ours
    )
    rates = {r["target"]: r["answered_per_s"] for r in doc["results"]}
    assert set(rates) == {"trivial", "libtorrent", "ours"}
    assert all(rate > 1000 for rate in rates.values()), rates
    assert doc["ratio_ours_libtorrent"] == pytest.approx(rates["ours"] / rates["libtorrent"], 1e-2)


def test_a_node_that_does_not_start_is_skipped() -> None:
    failing = f"{sys.executable} -c 'import sys; sys.exit(3)'"
    doc = bench("--target", "ours", "--swarm", "0", "--ours-cmd", failing)
    (ours,) = doc["results"]
    assert ours["answered_per_s"] is None
    assert "exited" in ours["skipped"]
    assert doc["ratio_ours_libtorrent"] is None
