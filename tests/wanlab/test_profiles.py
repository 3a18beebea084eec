"""wanlab.profiles: validation, delay parsing, per-pair delays drawn once and symmetric."""

from __future__ import annotations

import pytest

from wanlab.profiles import Profile, ProfileError


def test_parse_delay_range_and_single_value() -> None:
    assert Profile.parse_delay("10-150") == (10.0, 150.0)
    assert Profile.parse_delay("40") == (40.0, 40.0)
    assert Profile.parse_delay("0.5-2.5") == (0.5, 2.5)
    for bad in ("", "a-b", "1-2-3", "-5"):
        with pytest.raises(ProfileError):
            Profile.parse_delay(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delay_ms": (20.0, 10.0)},
        {"delay_ms": (-1.0, 10.0)},
        {"jitter_ms": -1.0},
        {"loss": 1.0},
        {"loss": -0.1},
    ],
)
def test_out_of_range_values_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ProfileError):
        Profile(**kwargs)  # type: ignore[arg-type]


def test_pair_delay_is_symmetric_stable_and_in_range() -> None:
    profile = Profile(delay_ms=(10.0, 150.0), seed=7)
    hosts = [f"198.18.0.{i}" for i in range(1, 30)]
    delays = []
    for a in hosts:
        for b in hosts:
            if a < b:
                d = profile.pair_delay_s(a, b)
                assert d == profile.pair_delay_s(b, a)
                assert d == Profile(delay_ms=(10.0, 150.0), seed=7).pair_delay_s(a, b)
                assert 0.010 <= d <= 0.150
                delays.append(d)
    # Drawn across the range, not one value: 406 pairs spread over [10, 150] ms.
    assert min(delays) < 0.030
    assert max(delays) > 0.130
    assert len(set(delays)) == len(delays)


def test_the_seed_changes_the_draw_and_a_fixed_delay_is_exact() -> None:
    a, b = "198.18.0.1", "198.18.0.2"
    assert Profile(seed=1).pair_delay_s(a, b) != Profile(seed=2).pair_delay_s(a, b)
    assert Profile(delay_ms=(40.0, 40.0)).pair_delay_s(a, b) == 0.040


def test_json_round_trip() -> None:
    profile = Profile(delay_ms=(5.0, 25.0), jitter_ms=3.0, loss=0.015, seed=99)
    assert Profile.from_json(profile.to_json()) == profile
