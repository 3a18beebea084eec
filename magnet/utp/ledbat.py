"""LEDBAT congestion control for uTP (BEP 29 "congestion control", RFC 6817).

uTP measures one-way queuing delay instead of waiting for loss: each packet carries the
sender's microsecond clock, the receiver echoes ``its clock - that stamp`` back as
``timestamp_difference_us``. The absolute value is meaningless (clocks are not in sync), but
its minimum over the last minutes (the *base delay*) is the path's empty-queue delay, so
``sample - base`` is how long our packets sat in some buffer. The window grows while that is
under the 100 ms target and shrinks above it, by at most 3000 bytes per round trip; a loss
halves it, a timeout drops it to one packet. Nothing here knows about packets or sockets:
the connection feeds samples, acked bytes and losses, and reads ``cwnd``.
"""

from __future__ import annotations

from collections import deque
from typing import Final

__all__ = [
    "BASE_HISTORY_MINUTES",
    "CCONTROL_TARGET_US",
    "MAX_CWND_BYTES",
    "MAX_CWND_INCREASE_BYTES_PER_RTT",
    "MIN_CWND_BYTES",
    "DelayHistory",
    "Ledbat",
]

CCONTROL_TARGET_US: Final = 100_000
MAX_CWND_INCREASE_BYTES_PER_RTT: Final = 3000
# BEP 29 lets the window fall to 150 bytes; a window below one of our packets would stall
# until a timeout, so the floor is the smallest packet the connection sends (see Ledbat).
MIN_CWND_BYTES: Final = 150
# A cap well above any bandwidth-delay product we meet keeps the window an honest number
# even if delay samples are garbage (a hostile peer writes timestamp_difference_us).
MAX_CWND_BYTES: Final = 4 << 20
# BEP 29 keeps "a sliding minimum of the lowest value for the last two minutes"; kept as
# per-minute minima so that an old low sample ages out and clock drift cannot pin the base.
BASE_HISTORY_MINUTES: Final = 2
_MINUTE_S: Final = 60.0
_U32: Final = 1 << 32


def _u32_lt(a: int, b: int) -> bool:
    """``a < b`` for 32-bit stamps that may wrap (the peer's clock is any 32-bit value)."""
    return 0 < (b - a) % _U32 < _U32 // 2


class DelayHistory:
    """The base delay: the minimum timestamp difference seen over the last minutes."""

    __slots__ = ("_current", "_minute_started", "_minutes")

    def __init__(self) -> None:
        self._minutes: deque[int] = deque(maxlen=BASE_HISTORY_MINUTES)
        self._current: int | None = None
        self._minute_started = 0.0

    def add(self, sample_us: int, now: float) -> int:
        """Record one sample; return the queuing delay it shows, in microseconds (>= 0)."""
        sample_us %= _U32
        if self._current is None:
            self._current, self._minute_started = sample_us, now
        elif now - self._minute_started >= _MINUTE_S:
            self._minutes.append(self._current)
            self._current, self._minute_started = sample_us, now
        elif _u32_lt(sample_us, self._current):
            self._current = sample_us
        return (sample_us - self.base) % _U32 if not _u32_lt(sample_us, self.base) else 0

    @property
    def base(self) -> int:
        """The lowest sample of the window (0 before any sample)."""
        if self._current is None:
            return 0
        low = self._current
        for minimum in self._minutes:
            if _u32_lt(minimum, low):
                low = minimum
        return low


class Ledbat:
    """The congestion window of one connection, in bytes.

    :param mss: the largest payload the connection puts in one packet; the window never
        falls below one of them, so a connection can always make progress.
    """

    __slots__ = ("_history", "cwnd", "mss", "slow_start", "ssthresh")

    def __init__(self, mss: int, initial_packets: int = 2) -> None:
        self.mss = max(MIN_CWND_BYTES, mss)
        self.cwnd = float(self.mss * initial_packets)
        self.ssthresh = float(MAX_CWND_BYTES)
        self.slow_start = True
        self._history = DelayHistory()

    @property
    def window(self) -> int:
        """Bytes that may be in flight now."""
        return int(self.cwnd)

    def delay_sample(self, timestamp_difference_us: int, now: float) -> int:
        """Feed the peer's echo of our clock; return the queuing delay it shows (us)."""
        return self._history.add(timestamp_difference_us, now)

    def on_ack(self, acked_bytes: int, delay_us: int, in_flight_before: int) -> None:
        """Grow or shrink the window for ``acked_bytes`` newly acknowledged.

        :param delay_us: the current queuing delay estimate (our_delay).
        :param in_flight_before: bytes in flight before this ack; a window that was not
            nearly used says nothing about the path, so it does not grow (RFC 6817 2.4.1).
        """
        if acked_bytes <= 0:
            return
        off_target = (CCONTROL_TARGET_US - delay_us) / CCONTROL_TARGET_US
        window_full = in_flight_before + self.mss >= self.cwnd
        if self.slow_start:
            if delay_us > CCONTROL_TARGET_US // 2 or self.cwnd >= self.ssthresh:
                self.slow_start = False
            elif window_full:
                self.cwnd += acked_bytes
        if not self.slow_start:
            gain = MAX_CWND_INCREASE_BYTES_PER_RTT * off_target * acked_bytes / self.cwnd
            if gain < 0 or window_full:
                self.cwnd += gain
        self._clamp()

    def on_loss(self) -> None:
        """A packet was lost (duplicate ACKs or selective ACK): halve, as TCP does."""
        self.cwnd /= 2
        self.ssthresh = self.cwnd
        self.slow_start = False
        self._clamp()

    def on_timeout(self) -> None:
        """Nothing came back for a whole timeout: restart from one packet, slow start again."""
        self.ssthresh = max(self.cwnd / 2, float(self.mss))
        self.cwnd = float(self.mss)
        self.slow_start = True

    def _clamp(self) -> None:
        self.cwnd = min(max(self.cwnd, float(self.mss)), float(MAX_CWND_BYTES))
