"""The WAN lab's scheduling core: given a packet and ``now``, when it leaves, or that it is lost.

``WanSchedule`` is sans-IO in the aioquic shape: ``receive(packet, now)`` takes a packet read
from the TUN device and returns its release time (or ``None`` when it is dropped),
``get_timer()`` gives the earliest release, ``packets_due(now)`` hands back, in order, the
packets to write into the TUN device. The driver (``wanlab.emulator``) owns the device and the
clock; tests run this class on a fake clock.

A packet waits its pair's base one-way delay (``Profile.pair_delay_s``) plus a uniform jitter,
and is lost with the profile's probability. Jitter never reorders a flow (same protocol,
addresses and ports, see ``wanlab.packets``): a packet leaves no earlier than the previous
packet of its flow, as on a real path where packets of one flow share the queues. ICMP
"port unreachable" is dropped, so a dead host is silent as behind a NAT instead of refusing
at once; anything that is not IPv4 is dropped too (the lab is IPv4 only).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import asdict, dataclass
from socket import inet_ntoa

from wanlab.packets import inspect
from wanlab.profiles import Profile

__all__ = ["WanSchedule", "WanStats"]

# Below this many flows the table is never swept; above it, flows whose last packet has left
# are forgotten (they no longer constrain anything), so the table stays as big as the traffic.
_FLOW_SWEEP_MIN = 4096


@dataclass(slots=True)
class WanStats:
    """Counters since the start; ``queued`` and ``max_queued`` are packets waiting in the heap.

    ``late_max_us`` and ``late_total_us`` measure how long after its release time the driver
    let a packet out (microseconds): a mean (total / released) well below the delays shows
    the emulator kept up with the traffic.
    """

    received: int = 0
    released: int = 0
    lost: int = 0
    port_unreachable_dropped: int = 0
    not_ipv4_dropped: int = 0
    bytes_released: int = 0
    queued: int = 0
    max_queued: int = 0
    late_max_us: int = 0
    late_total_us: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class WanSchedule:
    """Delay, jitter and loss per (source, destination) pair, FIFO per flow, on ``now`` alone."""

    def __init__(self, profile: Profile, rng: random.Random) -> None:
        self.profile = profile
        self.stats = WanStats()
        self._rng = rng
        self._jitter_s = profile.jitter_ms / 1000.0
        self._loss = profile.loss
        self._pair_delay: dict[bytes, float] = {}
        self._flow_last: dict[bytes, float] = {}
        self._flow_sweep_at = _FLOW_SWEEP_MIN
        # (release time, arrival number, packet): the number keeps equal times in FIFO order.
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = 0

    def receive(self, packet: bytes, now: float) -> float | None:
        """Schedule ``packet`` (read at ``now``); its release time, or ``None`` if dropped."""
        stats = self.stats
        stats.received += 1
        info = inspect(packet)
        if info is None:
            stats.not_ipv4_dropped += 1
            return None
        if info.port_unreachable:
            stats.port_unreachable_dropped += 1
            return None
        if self._loss and self._rng.random() < self._loss:
            stats.lost += 1
            return None
        pair = info.pair
        delay = self._pair_delay.get(pair)
        if delay is None:
            delay = self.profile.pair_delay_s(inet_ntoa(pair[:4]), inet_ntoa(pair[4:]))
            self._pair_delay[pair] = delay
        release = now + delay
        if self._jitter_s:
            release += self._rng.random() * self._jitter_s
        flows = self._flow_last
        previous = flows.get(info.flow)
        if previous is not None and previous > release:
            release = previous
        flows[info.flow] = release
        if len(flows) > self._flow_sweep_at:
            self._sweep_flows(now)
        self._seq += 1
        heapq.heappush(self._heap, (release, self._seq, packet))
        queued = len(self._heap)
        stats.queued = queued
        stats.max_queued = max(stats.max_queued, queued)
        return release

    def get_timer(self) -> float | None:
        """The release time of the next packet, or ``None`` when nothing waits."""
        return self._heap[0][0] if self._heap else None

    def packets_due(self, now: float) -> list[bytes]:
        """Take every packet whose release time is ``<= now``, earliest first."""
        heap = self._heap
        due: list[bytes] = []
        if not heap or heap[0][0] > now:
            return due
        # The first packet out is the latest one (earliest release): it gives the maximum.
        latest = now - heap[0][0]
        released_at = 0.0
        while heap and heap[0][0] <= now:
            release, _, packet = heapq.heappop(heap)
            released_at += release
            due.append(packet)
        stats = self.stats
        stats.released += len(due)
        stats.bytes_released += sum(map(len, due))
        stats.queued = len(heap)
        stats.late_max_us = max(stats.late_max_us, int(latest * 1e6))
        stats.late_total_us += int((len(due) * now - released_at) * 1e6)
        return due

    def flow_count(self) -> int:
        """How many flows are remembered for FIFO ordering (bounded by the sweep)."""
        return len(self._flow_last)

    def _sweep_flows(self, now: float) -> None:
        self._flow_last = {flow: t for flow, t in self._flow_last.items() if t > now}
        self._flow_sweep_at = max(_FLOW_SWEEP_MIN, 2 * len(self._flow_last))
