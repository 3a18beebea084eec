"""Rate limits for a public node: a bucket per source for what comes in, one for the rest.

``SourceRateLimiter`` keeps one token bucket per source IP (IPv6 per /64, since one host
holds a whole /64), in a table of at most ``max_sources`` entries; when it is full the
source heard from least recently is forgotten. Forgetting costs little: a forgotten source
comes back with a full bucket, which is also what an idle source has. A flood of spoofed
addresses therefore cannot grow memory, but neither can a per-source limit stop it: that is
the job of a global cap, ``TokenBucket``, which also paces the node's own queries. Both are
pure: time comes in as ``now`` (seconds), and every call is O(1). ``QueryAdmission`` puts the
two together for the queries a core is sent, and charges garbage to its source's bucket too.
"""

from __future__ import annotations

import math
import socket
from collections import OrderedDict

__all__ = ["QueryAdmission", "SourceRateLimiter", "TokenBucket", "source_key"]

_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


def source_key(ip: str) -> str | bytes:
    """The key a source is limited under: an IPv4 address as is, IPv6 by its /64.

    An IPv4-mapped IPv6 address (what a dual-stack socket reports) counts as its IPv4
    address; text that is not an address is its own key.
    """
    if ":" not in ip:
        return ip
    try:
        b = socket.inet_pton(socket.AF_INET6, ip)
    except (OSError, ValueError):
        return ip
    if b[:12] == _MAPPED_PREFIX:
        return socket.inet_ntoa(b[12:])
    return b[:8]


class SourceRateLimiter:
    """Per-source token buckets: ``rate_per_s`` sustained, ``burst`` at once.

    Each bucket is kept as one number, the time at which it will be full again (the GCRA
    form of a token bucket): a packet is allowed while that time is at most
    ``(burst - 1) / rate`` ahead of ``now``, and each allowed packet moves it on by
    ``1 / rate``. Dropped packets do not move it, but do count as activity, so a source that
    keeps flooding stays in the table and stays limited instead of being forgotten.
    """

    __slots__ = (
        "_interval",
        "_sources",
        "_tolerance",
        "allowed",
        "burst",
        "dropped",
        "evicted",
        "max_sources",
        "rate",
    )

    def __init__(self, rate_per_s: float, burst: float, max_sources: int) -> None:
        if not rate_per_s > 0 or not math.isfinite(rate_per_s):
            raise ValueError("rate_per_s must be positive and finite")
        if not burst >= 1 or not math.isfinite(burst):
            raise ValueError("burst must be at least 1")
        if max_sources < 1:
            raise ValueError("max_sources must be at least 1")
        self.rate = rate_per_s
        self.burst = burst
        self._interval = 1.0 / rate_per_s
        # The relative slack absorbs float rounding when (burst - 1) intervals are summed.
        self._tolerance = (burst - 1.0) * self._interval * (1.0 + 1e-9)
        self.max_sources = max_sources
        self._sources: OrderedDict[str | bytes, float] = OrderedDict()
        self.allowed = 0
        self.dropped = 0
        self.evicted = 0  # sources forgotten to make room

    def __len__(self) -> int:
        return len(self._sources)

    def allow(self, ip: str, now: float) -> bool:
        """Take one token from ``ip``'s bucket: True to process its packet, False to drop it."""
        key: str | bytes = source_key(ip) if ":" in ip else ip
        sources = self._sources
        full_at = sources.get(key)
        if full_at is None:
            if len(sources) >= self.max_sources:
                sources.popitem(last=False)
                self.evicted += 1
            full_at = now
        else:
            sources.move_to_end(key)
            if full_at < now:  # noqa: PLR1730 -- max() is a call; this runs per packet
                full_at = now
        if full_at - now > self._tolerance:
            self.dropped += 1
            return False
        sources[key] = full_at + self._interval
        self.allowed += 1
        return True

    def exhausted(self, ip: str, now: float) -> bool:
        """Whether ``allow`` would refuse ``ip`` now; takes nothing and changes nothing."""
        key: str | bytes = source_key(ip) if ":" in ip else ip
        full_at = self._sources.get(key)
        return full_at is not None and full_at - now > self._tolerance

    def tokens(self, ip: str, now: float) -> float:
        """Tokens left in ``ip``'s bucket (``burst`` for an unknown source); for tests and stats."""
        key: str | bytes = source_key(ip) if ":" in ip else ip
        full_at = self._sources.get(key, now)
        return max(0.0, self.burst - max(0.0, full_at - now) * self.rate)

    def expire(self, now: float) -> int:
        """Forget sources whose buckets are full again (idle ones); returns how many.

        Not needed for the bound, which ``allow`` keeps alone; it just returns memory after a
        burst of traffic. Stops at the first source still refilling, so it is cheap to call
        on every maintenance tick.
        """
        sources = self._sources
        removed = 0
        while sources:
            key, full_at = next(iter(sources.items()))
            if full_at > now:
                break
            del sources[key]
            removed += 1
        return removed


class TokenBucket:
    """One token bucket: ``rate`` tokens a second, holding at most ``burst``; starts full."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, *, now: float = 0.0) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError("rate must be positive and finite")
        if not burst > 0 or not math.isfinite(burst):
            raise ValueError("burst must be positive and finite")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def _refill(self, now: float) -> float:
        if now > self._last:  # a clock that steps back refills nothing rather than going negative
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
        return self._tokens

    def tokens(self, now: float) -> float:
        return self._refill(now)

    def take(self, now: float, n: float = 1) -> bool:
        """Take ``n`` tokens if there are that many; more than ``burst`` never succeeds."""
        if self._refill(now) >= n:
            self._tokens -= n
            return True
        return False

    def next_available(self, now: float, n: float = 1) -> float:
        """The earliest time ``take(t, n)`` can succeed: ``now`` if it can now, inf never."""
        if n > self.burst:
            return math.inf
        missing = n - self._refill(now)
        return now if missing <= 0 else now + missing / self.rate


class QueryAdmission:
    """Which queries sent to us we answer: at most ``rate_per_ip`` a second from one source
    and ``max_rate`` in all (0: no limit). Queries from this host (testnets, local tools) are
    never limited."""

    def __init__(
        self,
        *,
        rate_per_ip: float,
        burst: float,
        max_sources: int,
        max_rate: float,
        now: float,
    ) -> None:
        self.per_source = (
            SourceRateLimiter(rate_per_ip, max(1.0, burst), max_sources)
            if rate_per_ip > 0
            else None
        )
        self.overall = TokenBucket(max_rate, max(1.0, max_rate), now=now) if max_rate > 0 else None
        self.enabled = self.per_source is not None or self.overall is not None

    def refuse(self, ip: str, now: float) -> str | None:
        """None when a query from ``ip`` may be answered now, else why not."""
        if ip.startswith("127.") or ip == "::1":
            return None
        if self.per_source is not None and not self.per_source.allow(ip, now):
            return "rate limited"
        if self.overall is not None and not self.overall.take(now):
            return "over the global query rate"
        return None

    def charge(self, ip: str, now: float) -> None:
        """A datagram from ``ip`` was garbage: it costs its source a token like a query, so
        that a garbage flood from one address runs dry like a query flood."""
        if self.per_source is not None and not (ip.startswith("127.") or ip == "::1"):
            self.per_source.allow(ip, now)

    def exhausted(self, ip: str, now: float) -> bool:
        """Whether ``ip`` is out of tokens now (a query from it would be refused)."""
        per_source = self.per_source
        return (
            per_source is not None
            and per_source.exhausted(ip, now)
            and not (ip.startswith("127.") or ip == "::1")
        )
