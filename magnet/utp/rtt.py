"""Round-trip time and retransmission timeout of a uTP connection (BEP 29 "timeouts").

Every packet acknowledged after a single transmission is a sample (Karn: an ack of a resent
packet cannot say which copy it answers). BEP 29's smoothing: ``rtt_var += (|rtt - sample|
- rtt_var) / 4``, ``rtt += (sample - rtt) / 8``; the timeout is ``max(rtt + 4 * rtt_var,
500 ms)``, 1 s before any sample, doubled for each consecutive timeout.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_RTO_S", "RttEstimator"]

MAX_RTO_S: Final = 60.0


class RttEstimator:
    """Smoothed RTT, its variance and the timeout they give, in seconds."""

    __slots__ = ("min_rto", "rto", "rtt", "rtt_var")

    def __init__(self, initial_rto: float = 1.0, min_rto: float = 0.5) -> None:
        self.rtt: float | None = None
        self.rtt_var = 0.0
        self.rto = initial_rto
        self.min_rto = min_rto

    def sample(self, seconds: float) -> None:
        """One measured round trip."""
        if self.rtt is None:
            self.rtt, self.rtt_var = seconds, seconds / 2
        else:
            self.rtt_var += (abs(self.rtt - seconds) - self.rtt_var) / 4
            self.rtt += (seconds - self.rtt) / 8
        self.rto = max(self.rtt + 4 * self.rtt_var, self.min_rto)

    def backoff(self, timeouts: int) -> float:
        """The timeout after ``timeouts`` consecutive ones: doubled each time, capped."""
        return min(self.rto * (1 << min(timeouts, 16)), MAX_RTO_S)
