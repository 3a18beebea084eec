#!/usr/bin/env python3
"""Per-call cost of the checks a public node runs per packet or per learned node.

Times ``AddressPolicy.acceptable`` over a realistic mix of addresses and
``SourceRateLimiter.allow`` / ``TokenBucket.take`` in their steady and eviction regimes,
with ``time.perf_counter`` around a plain loop (so the figures include the loop and call
overhead a caller pays too). Best of several rounds, to damp noise from other processes.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from dht.addresses import AddressPolicy
from dht.ratelimit import SourceRateLimiter, TokenBucket

ROUNDS = 5


def best_ns(body: Callable[[], int]) -> float:
    """Best per-call time over ROUNDS runs; ``body`` returns the number of calls it made."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        calls = body()
        best = min(best, (time.perf_counter() - start) / calls * 1e9)
    return best


def rand_v4(rng: random.Random) -> str:
    return ".".join(str(rng.randrange(1, 224 if i == 0 else 255)) for i in range(4))


def main() -> None:
    rng = random.Random(1)
    v4_public = [(rand_v4(rng), 6881) for _ in range(10_000)]
    v4_public = [a for a in v4_public if AddressPolicy().acceptable(a)]
    bogons = ["10.1.2.3", "192.168.1.5", "100.64.3.4", "198.51.100.7", "127.0.0.1", "172.20.0.1"]
    v4_bogons = [(ip, 6881) for ip in bogons] * 1000
    v6_public = [(f"2a01:4f8:{rng.randrange(65536):x}::1", 6881) for _ in range(5000)]
    v6_2001 = [(f"2001:470:{rng.randrange(65536):x}::1", 6881) for _ in range(5000)]
    policy = AddressPolicy()

    def check(addrs: list[tuple[str, int]]) -> Callable[[], int]:
        def body() -> int:
            ok = policy.acceptable
            for a in addrs:
                ok(a)
            return len(addrs)

        return body

    print("AddressPolicy.acceptable (ns/call)")
    print(f"  IPv4 global          {best_ns(check(v4_public)):6.0f}")
    print(f"  IPv4 bogons          {best_ns(check(v4_bogons)):6.0f}")
    print(f"  IPv6 global 2a01::   {best_ns(check(v6_public)):6.0f}")
    print(f"  IPv6 global 2001::   {best_ns(check(v6_2001)):6.0f}")

    sources = list({rand_v4(rng) for _ in range(10_000)})
    lim = SourceRateLimiter(rate_per_s=10.0, burst=20, max_sources=10_000)
    t = [0.0]

    def known() -> int:
        allow = lim.allow
        now = t[0]
        for ip in sources:
            allow(ip, now)
        t[0] += 1.0
        return len(sources)

    known()  # fill the table
    flood = [rand_v4(rng) for _ in range(50_000)]
    small = SourceRateLimiter(rate_per_s=10.0, burst=20, max_sources=1000)

    def evicting() -> int:
        allow = small.allow
        for ip in flood:
            allow(ip, 0.0)
        return len(flood)

    one = SourceRateLimiter(rate_per_s=10.0, burst=20, max_sources=1000)

    def flooder() -> int:
        allow = one.allow
        for _ in range(50_000):
            allow("6.6.6.6", 0.0)
        return 50_000

    bucket = TokenBucket(rate=1e9, burst=1e9)

    def take() -> int:
        tk = bucket.take
        for i in range(50_000):
            tk(i * 1e-6)
        return 50_000

    print("SourceRateLimiter.allow (ns/call)")
    print(f"  known source, 10k table   {best_ns(known):6.0f}")
    print(f"  new source, evicting      {best_ns(evicting):6.0f}")
    print(f"  one source, dropped       {best_ns(flooder):6.0f}")
    print(f"TokenBucket.take            {best_ns(take):6.0f}")
    print(f"(table size {len(lim)}, evicting table {len(small)}, evicted {small.evicted})")


if __name__ == "__main__":
    main()
