"""LEDBAT (BEP 29 congestion control) as a unit: base delay, gain, loss, timeout."""

from __future__ import annotations

from magnet.utp.ledbat import (
    CCONTROL_TARGET_US,
    MAX_CWND_BYTES,
    MAX_CWND_INCREASE_BYTES_PER_RTT,
    DelayHistory,
    Ledbat,
)


def test_base_delay_is_the_minimum_and_delay_is_relative_to_it() -> None:
    history = DelayHistory()
    assert history.add(5_000_000, 0.0) == 0
    assert history.add(5_030_000, 1.0) == 30_000
    assert history.add(4_990_000, 2.0) == 0  # a new minimum
    assert history.base == 4_990_000
    assert history.add(5_000_000, 3.0) == 10_000


def test_base_delay_forgets_after_minutes() -> None:
    history = DelayHistory()
    history.add(1_000, 0.0)  # a low sample that must age out (clock drift, a route change)
    for minute in range(1, 4):
        history.add(50_000, minute * 60.0 + 1)
    assert history.base == 50_000


def test_timestamp_differences_wrap_at_32_bits() -> None:
    history = DelayHistory()
    history.add(0xFFFF_FF00, 0.0)
    assert history.add(0x0000_0100, 1.0) == 0x200  # past the wrap, 512 us more


def window_after(delay_us: int, rounds: int = 20) -> float:
    cc = Ledbat(mss=1000)
    cc.slow_start = False
    cc.cwnd = 20_000.0
    for _ in range(rounds):
        cc.on_ack(int(cc.cwnd), delay_us, in_flight_before=int(cc.cwnd))
    return cc.cwnd


def test_window_grows_under_target_and_shrinks_over_it() -> None:
    assert window_after(0) > 20_000
    assert window_after(CCONTROL_TARGET_US * 2) < 20_000
    # at the target it holds still
    assert window_after(CCONTROL_TARGET_US) == 20_000


def test_growth_is_at_most_the_bep_gain_per_round_trip() -> None:
    grown = window_after(0, rounds=1)
    assert grown - 20_000 <= MAX_CWND_INCREASE_BYTES_PER_RTT + 1e-6


def test_an_unused_window_does_not_grow() -> None:
    cc = Ledbat(mss=1000)
    before = cc.cwnd
    cc.on_ack(1000, 0, in_flight_before=0)
    assert cc.cwnd == before


def test_slow_start_doubles_until_delay_builds() -> None:
    cc = Ledbat(mss=1000)
    start = cc.cwnd
    cc.on_ack(int(cc.cwnd), 0, in_flight_before=int(cc.cwnd))
    assert cc.cwnd == 2 * start
    cc.on_ack(1000, CCONTROL_TARGET_US, in_flight_before=int(cc.cwnd))
    assert not cc.slow_start


def test_loss_halves_and_timeout_drops_to_one_packet() -> None:
    cc = Ledbat(mss=1000)
    cc.cwnd = 40_000.0
    cc.on_loss()
    assert cc.cwnd == 20_000 and not cc.slow_start
    cc.on_timeout()
    assert cc.window == 1000 and cc.slow_start
    cc.on_loss()
    assert cc.window == 1000  # never below one packet


def test_window_is_capped_whatever_the_samples() -> None:
    cc = Ledbat(mss=1000)
    for _ in range(10_000):
        cc.on_ack(int(cc.cwnd), 0, in_flight_before=int(cc.cwnd))
    assert cc.window == MAX_CWND_BYTES
