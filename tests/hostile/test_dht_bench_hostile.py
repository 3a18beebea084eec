"""scripts/bench_hostile.py runs every attack and reports what it says it reports."""

from __future__ import annotations

import re

import pytest

from scripts.bench_hostile import main


def test_every_attack_leaves_the_client_served(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seconds", "1", "--rate", "2000"]) == 0
    out = capsys.readouterr().out
    served = re.findall(r"(\S[^:\n]*): client served ([\d.]+)%", out)
    assert [name.strip() for name, _ in served] == ["garbage flood", "query flood", "sybil inserts"]
    assert all(float(rate) == 100.0 for _, rate in served), out
    entries = re.search(r"sybil inserts.*attacker's table entries (\d+)/", out)
    assert entries is not None and int(entries.group(1)) <= 1, out
    worst = re.search(r"worst answer/query size ratio: ([\d.]+)", out)
    assert worst is not None and float(worst.group(1)) < 9.0, out
