"""Routing tables stay healthy while nodes come and go (the 24-hour run is scripts/sim_churn.py)."""

from __future__ import annotations

import pytest

from scripts.sim_churn import run


@pytest.mark.slow
def test_tables_stay_healthy_under_churn() -> None:
    # 1,000 nodes, 2% replaced every 10 minutes (12% an hour), for 3 simulated hours.
    checkpoints = run(1000, hours=3.0, churn=0.02, every_h=1.5, lookups=40, report=False)
    for cp in checkpoints:
        assert cp.alive == 1000
        assert cp.table_alive >= 0.8, cp
        assert cp.lookups_found >= 0.95, cp
    assert checkpoints[-1].lookups_exact >= 0.85, checkpoints[-1]
