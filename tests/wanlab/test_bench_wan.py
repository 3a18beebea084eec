"""``scripts/bench_resolve.py --wan`` end to end, tiny (1 round, 10 nodes), so it cannot rot.

It builds its own lab under ``unshare -n`` (root, TUN) and needs libtorrent; skipped, with
the reason, when either is missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import LIBTORRENT_MISSING
from tests.wanlab.test_lab import lab_unavailable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


def test_bench_wan_runs_both_tools_and_reports_the_ratio() -> None:
    reason = lab_unavailable()
    if reason is not None:
        pytest.skip(reason)
    pytest.importorskip("libtorrent", reason=LIBTORRENT_MISSING)
    argv = [sys.executable, str(ROOT / "scripts" / "bench_resolve.py"), "--wan"]
    argv += ["--rounds", "1", "--nodes", "10", "--dead", "3", "--timeout", "20", "--json"]
    argv += ["--loss", "0"]  # this test is about the script, not about loss
    out = subprocess.run(argv, capture_output=True, text=True, timeout=280, cwd="/")
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    summary = doc["summary"]
    for tool in ("magnetar", "libtorrent"):
        assert summary[tool]["runs"] == 1
        assert summary[tool]["ok"] == 1, summary[tool]
    assert summary["ratio_magnetar_libtorrent"] > 0
    assert {s["tool"] for s in doc["samples"]} == {"magnetar", "libtorrent"}
    assert doc["lab"]["released"] > 0  # the traffic went through the emulator
    assert "dead entries in live tables" in out.stderr
