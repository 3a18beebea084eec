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
    # In this tiny lab the libtorrent nodes sometimes store no node's announce at all (each
    # of the three seeders the script tries reaches fewer than 3 nodes; cause not found):
    # then there is nothing to find and the round measures nothing. The script must still
    # run and report; only a seeded round says whether the tools resolve.
    if out.stderr.count("reached fewer than 3 nodes") < 3:
        for tool in ("magnetar", "libtorrent"):
            assert summary[tool]["ok"] == 1, summary[tool]
        assert summary["ratio_magnetar_libtorrent"] > 0
    else:
        for tool in ("magnetar", "libtorrent"):  # failed with an explanation, not a crash
            for error in summary[tool].get("errors", []):
                assert "Traceback" not in error and "Error:" not in error, error
    assert {s["tool"] for s in doc["samples"]} == {"magnetar", "libtorrent"}
    assert doc["lab"]["released"] > 0  # the traffic went through the emulator
    assert "dead entries in live tables" in out.stderr
