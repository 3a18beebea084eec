"""`RttEstimator`: BEP 29's smoothing, the 500 ms floor, back-off."""

from __future__ import annotations

import pytest

from magnet.utp.rtt import MAX_RTO_S, RttEstimator


def test_rtt_smoothing_floor_and_backoff() -> None:
    rtt = RttEstimator(initial_rto=1.0, min_rto=0.5)
    assert rtt.rto == 1.0 and rtt.backoff(2) == 4.0
    rtt.sample(0.2)
    assert rtt.rtt == pytest.approx(0.2) and rtt.rto == pytest.approx(0.6)  # 0.2 + 4 * 0.1
    rtt.sample(0.2)
    assert rtt.rtt_var == pytest.approx(0.075) and rtt.rto == pytest.approx(0.5)  # floored
    assert rtt.backoff(1) == pytest.approx(1.0)
    assert rtt.backoff(40) == MAX_RTO_S
