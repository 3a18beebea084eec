import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dht.ratelimit import SourceRateLimiter, TokenBucket, source_key


def test_burst_then_refill() -> None:
    lim = SourceRateLimiter(rate_per_s=2.0, burst=5, max_sources=10)
    assert [lim.allow("1.1.1.1", 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert lim.allowed == 5 and lim.dropped == 2
    assert not lim.allow("1.1.1.1", 0.49)
    assert lim.allow("1.1.1.1", 0.5)  # one token back after 1/rate
    assert not lim.allow("1.1.1.1", 0.5)
    # After a long idle spell the bucket is full again, never fuller.
    assert [lim.allow("1.1.1.1", 100.0) for _ in range(6)] == [True] * 5 + [False]


def test_sources_have_separate_buckets() -> None:
    lim = SourceRateLimiter(rate_per_s=1.0, burst=2, max_sources=10)
    assert lim.allow("1.1.1.1", 0) and lim.allow("1.1.1.1", 0)
    assert not lim.allow("1.1.1.1", 0)
    assert lim.allow("2.2.2.2", 0)
    assert lim.tokens("2.2.2.2", 0) == pytest.approx(1.0)
    assert lim.tokens("3.3.3.3", 0) == 2.0


def test_sustained_rate_is_respected() -> None:
    rate, burst = 10.0, 4
    lim = SourceRateLimiter(rate_per_s=rate, burst=burst, max_sources=4)
    allowed = sum(lim.allow("1.1.1.1", i / 1000) for i in range(10_000))  # 1000/s for 10 s
    assert allowed == pytest.approx(rate * 10 + burst, abs=1)


@given(
    rate=st.floats(0.1, 1000),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2), max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, gaps: list[float]
) -> None:
    lim = SourceRateLimiter(rate_per_s=rate, burst=burst, max_sources=1)
    now = 0.0
    allowed = 0
    for gap in gaps:
        now += gap
        allowed += lim.allow("9.9.9.9", now)
    assert allowed <= burst + rate * now + 1e-6
    assert lim.allowed + lim.dropped == len(gaps)


def test_exact_bucket_arithmetic_with_awkward_rates() -> None:
    # 1/3 s intervals do not add up exactly in floats; the full burst must still pass.
    lim = SourceRateLimiter(rate_per_s=3.0, burst=7, max_sources=1)
    assert sum(lim.allow("1.1.1.1", 0.0) for _ in range(10)) == 7


def test_table_is_bounded_under_a_spoofed_flood() -> None:
    lim = SourceRateLimiter(rate_per_s=1.0, burst=3, max_sources=1000)
    rng = random.Random(1)
    for i in range(100_000):
        lim.allow(f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.1", i * 1e-5)
        assert len(lim) <= 1000
    assert len(lim) == 1000
    assert lim.evicted >= 100_000 - 1000 - 1000  # nearly every new source evicted an old one


def test_least_recently_seen_source_is_evicted() -> None:
    lim = SourceRateLimiter(rate_per_s=1.0, burst=1, max_sources=2)
    lim.allow("1.1.1.1", 0)
    lim.allow("2.2.2.2", 0)
    assert not lim.allow("1.1.1.1", 0.1)  # dropped, but still counts as seen
    lim.allow("3.3.3.3", 0.2)  # evicts 2.2.2.2, heard from least recently
    assert lim.evicted == 1
    assert not lim.allow("1.1.1.1", 0.3)  # still remembered, still limited
    assert lim.tokens("2.2.2.2", 0.3) == 1.0  # forgotten: a full bucket again


def test_a_flooder_does_not_starve_a_well_behaved_source() -> None:
    lim = SourceRateLimiter(rate_per_s=5.0, burst=10, max_sources=100)
    good_sent = good_ok = 0
    for ms in range(20_000):  # 20 s; the flooder sends every ms, the good source at 2/s
        now = ms / 1000
        lim.allow("6.6.6.6", now)
        if ms % 500 == 0:
            good_sent += 1
            good_ok += lim.allow("7.7.7.7", now)
    assert good_ok == good_sent
    assert lim.dropped > 15_000  # the flooder got about its rate


def test_a_spoofed_flood_does_not_starve_a_well_behaved_source() -> None:
    lim = SourceRateLimiter(rate_per_s=1.0, burst=2, max_sources=500)
    rng = random.Random(2)
    good_ok = 0
    for ms in range(20_000):
        now = ms / 1000
        for _ in range(5):  # 5000 spoofed sources a second churn the table
            lim.allow(f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.9", now)
        if ms % 1000 == 0:
            good_ok += lim.allow("7.7.7.7", now)
        assert len(lim) <= 500
    assert good_ok == 20


def test_ipv6_is_limited_per_64() -> None:
    lim = SourceRateLimiter(rate_per_s=1.0, burst=2, max_sources=10)
    assert lim.allow("2a01:4f8:1:2::1", 0)
    assert lim.allow("2a01:4f8:1:2:ffff::9", 0)  # same /64
    assert not lim.allow("2a01:4f8:1:2::abcd", 0)
    assert lim.allow("2a01:4f8:1:3::1", 0)  # another /64
    assert len(lim) == 2


def test_source_key() -> None:
    assert source_key("1.2.3.4") == "1.2.3.4"
    assert source_key("::ffff:1.2.3.4") == "1.2.3.4"
    assert source_key("2a01:4f8:1:2::1") == bytes.fromhex("2a0104f800010002")
    assert source_key("not:an:address") == "not:an:address"


def test_expire_forgets_idle_sources() -> None:
    lim = SourceRateLimiter(rate_per_s=1.0, burst=3, max_sources=10)
    lim.allow("1.1.1.1", 0)
    for _ in range(3):
        lim.allow("2.2.2.2", 0)
    assert lim.expire(0.5) == 0
    assert lim.expire(1.0) == 1  # 1.1.1.1 full again at 1.0; 2.2.2.2 only at 3.0
    assert len(lim) == 1
    assert lim.expire(3.0) == 1
    assert len(lim) == 0


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        SourceRateLimiter(0, 1, 1)
    with pytest.raises(ValueError):
        SourceRateLimiter(1, 0.5, 1)
    with pytest.raises(ValueError):
        SourceRateLimiter(1, 1, 0)
    with pytest.raises(ValueError):
        TokenBucket(math.inf, 1)
    with pytest.raises(ValueError):
        TokenBucket(1, 0)


# --- TokenBucket --------------------------------------------------------------------------------


def test_token_bucket_burst_and_refill() -> None:
    b = TokenBucket(rate=10.0, burst=3, now=0.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.next_available(0.0) == pytest.approx(0.1)
    assert not b.take(0.05)
    assert b.take(0.1)
    assert b.tokens(100.0) == 3  # capped at burst


def test_token_bucket_take_many() -> None:
    b = TokenBucket(rate=1.0, burst=10, now=0.0)
    assert b.take(0.0, 8)
    assert not b.take(0.0, 3)
    assert b.next_available(0.0, 3) == pytest.approx(1.0)
    assert b.take(1.0, 3)
    assert b.next_available(1.0, 11) == math.inf
    assert not b.take(1000.0, 11)


def test_token_bucket_clock_stepping_back_refills_nothing() -> None:
    b = TokenBucket(rate=1.0, burst=2, now=10.0)
    assert b.take(10.0, 2)
    assert not b.take(5.0)
    assert b.tokens(5.0) == 0
    assert b.take(11.0)


@given(
    rate=st.floats(0.1, 1000),
    burst=st.floats(1, 100),
    steps=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 5)), max_size=100),
)
def test_token_bucket_next_available_is_exact(
    rate: float, burst: float, steps: list[tuple[float, int]]
) -> None:
    b = TokenBucket(rate, burst)
    now = 0.0
    taken = 0
    for gap, n in steps:
        now += gap
        at = b.next_available(now, n)
        if at == now:
            assert b.take(now, n)
            taken += n
        elif at != math.inf:
            assert at > now
            assert not b.take(now, n)
    assert taken <= burst + rate * now + 1e-6
