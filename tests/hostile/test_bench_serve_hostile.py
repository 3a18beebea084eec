"""scripts/bench_serve_hostile.py runs every attack against a real serve and reports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_every_attack_is_reported_with_the_client_served() -> None:
    out = subprocess.run(
        [sys.executable, "scripts/bench_serve_hostile.py", "--seconds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=True,
    ).stdout
    lines = [line for line in out.splitlines() if "client served" in line]
    assert len(lines) == 4, out
    for line in lines:
        served, tries = map(int, re.search(r"served (\d+)/(\d+)", line).groups())  # type: ignore[union-attr]
        assert tries > 0 and served >= tries - 1, line  # a fetch may straddle the attack's start
