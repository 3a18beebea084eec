"""scripts/bench_resolve.py runs end to end, checks what the tools wrote and bounds them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scripts.bench_resolve import Runner, Sample, Target, run_timed, summarize
from tests.interop.conftest import LIBTORRENT_MISSING

pytestmark = [pytest.mark.interop, pytest.mark.timeout(150)]

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--runs", "1", "--warmup", "0", "--baseline-runs", "1", "--timeout", "20", "--json"]


def bench(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_resolve.py"), *QUICK, *args],
        capture_output=True,
        text=True,
        timeout=140,
        cwd="/",  # the script finds the repository itself
    )
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def good_samples(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A scenario's samples by tool: one each of magnetar and libtorrent, both good."""
    samples = {s["tool"]: s for s in result["samples"]}
    assert set(samples) == {"magnetar", "libtorrent"}
    for s in samples.values():
        assert s["ok"], s
    return samples


def test_dht_single_both_tools_resolve_byte_exact() -> None:
    pytest.importorskip("libtorrent", reason=LIBTORRENT_MISSING)
    doc = bench(
        "--scenario", "dht-single", "--tools", "magnetar,libtorrent", "--magnetar-src", str(ROOT)
    )
    assert str(ROOT / "magnet") in doc["tools"]["magnetar"]  # this checkout was measured
    assert set(doc["baselines"]) == {
        "python -c pass",
        "python -c 'import libtorrent'",
        "magnetar version",
    }
    result = doc["scenarios"]["dht-single"]
    samples = good_samples(result)
    for s in samples.values():
        assert 0 < s["in_process"] < s["wall"]
    assert samples["magnetar"]["source"] == "dht"
    assert samples["magnetar"]["trace"][-1]["phase"] == "metadata verified"
    assert "metadata received" in samples["libtorrent"]["marks"]
    summary = result["summary"]
    assert summary["ratio_magnetar_libtorrent"] == pytest.approx(
        summary["magnetar"]["wall"]["median"] / summary["libtorrent"]["wall"]["median"], 1e-2
    )


def test_tracker_udp_scenario() -> None:
    pytest.importorskip("libtorrent", reason=LIBTORRENT_MISSING)
    from tests.interop.opentracker import find_opentracker

    if find_opentracker() is None:
        pytest.skip("opentracker not installed (apt-get install -y opentracker)")
    doc = bench("--scenario", "tracker-udp", "--tools", "magnetar,libtorrent")
    samples = doc["scenarios"]["tracker-udp"]["samples"]
    assert [s["ok"] for s in samples] == [True, True], samples
    (mg,) = [s for s in samples if s["tool"] == "magnetar"]
    assert mg["source"].startswith("tracker udp://127.0.0.1:")


def test_a_tool_over_its_time_is_killed() -> None:
    start = time.monotonic()
    t = run_timed(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        timeout=0.5,
        cwd=Path("/"),
        env={},
    )
    assert t.returncode is None
    assert 0.5 <= t.wall < 5 and time.monotonic() - start < 10


def test_a_wrong_info_dict_is_a_failure(tmp_path: Path) -> None:
    runner = Runner([], {}, None, 1.0, tmp_path)
    target = Target("magnet:?xt=urn:btih:" + "0" * 40, b"d4:name1:ae", b"\0" * 20, ("", 0), ("", 0))
    out = tmp_path / "o.torrent"
    out.write_bytes(b"d4:infod4:name1:bee")
    timed = run_timed([sys.executable, "-c", "pass"], timeout=10, cwd=tmp_path, env={})
    sample = runner._check(Sample("x", 0, timed.wall, False), out, target, timed)
    assert not sample.ok and sample.error == "info dict differs from the seed's"
    out.write_bytes(b"d4:info" + target.info + b"e")
    assert runner._check(Sample("x", 0, timed.wall, False), out, target, timed).ok
    summary = summarize([sample], ["x"])
    assert summary["x"]["failures"] == 1 and summary["x"]["wall"] is None


def test_bulk_both_tools_resolve_every_magnet_byte_exact() -> None:
    pytest.importorskip("libtorrent", reason=LIBTORRENT_MISSING)
    tools = ["--tools", "magnetar,libtorrent", "--magnetar-src", str(ROOT)]
    doc = bench("--scenario", "bulk", "--bulk-count", "5", *tools, "--baseline-runs", "0")
    result = doc["scenarios"]["bulk"]
    samples = good_samples(result)
    for s in samples.values():
        assert s["verified"] == s["magnets"] == 5
    assert samples["libtorrent"]["resolved"] == 5
    summary = result["summary"]
    for tool in ("magnetar", "libtorrent"):
        rate = summary[tool]["magnets_per_s"]["median"]
        assert rate == pytest.approx(5 / summary[tool]["wall"]["median"], 1e-2)


def test_bulk_check_needs_every_file_byte_exact(tmp_path: Path) -> None:
    import hashlib

    runner = Runner([], {}, None, 1.0, tmp_path)
    infos = [b"d4:name1:ae", b"d4:name1:be"]
    targets = [Target("", i, hashlib.sha1(i).digest(), ("", 0), ("", 0)) for i in infos]
    timed = run_timed([sys.executable, "-c", "pass"], timeout=10, cwd=tmp_path, env={})
    (tmp_path / "any-name.torrent").write_bytes(b"d4:info" + infos[0] + b"e")
    sample = runner._check_bulk(Sample("x", 0, timed.wall, False), tmp_path, targets, timed)
    assert not sample.ok and sample.detail["verified"] == 1
    (tmp_path / "other.torrent").write_bytes(b"d4:info" + infos[1] + b"e")
    sample = runner._check_bulk(Sample("x", 0, timed.wall, False), tmp_path, targets, timed)
    assert sample.ok and sample.detail == {"verified": 2, "magnets": 2}
