"""wanlab.schedule on a fake clock: delay per pair, jitter, loss, FIFO per flow, drops, order."""

from __future__ import annotations

import random

import pytest

from tests.wanlab.packetdata import icmp_unreachable, tcp, udp
from wanlab.profiles import Profile
from wanlab.schedule import WanSchedule

A, B, C = "198.18.0.1", "198.18.0.2", "198.18.0.3"


def schedule(profile: Profile, seed: int = 1) -> WanSchedule:
    return WanSchedule(profile, random.Random(seed))


def test_a_packet_waits_its_pairs_delay_and_no_longer() -> None:
    profile = Profile(delay_ms=(10.0, 150.0), seed=3)
    core = schedule(profile)
    packet = udp(A, 1000, B, 2000, b"ping")
    release = core.receive(packet, now=100.0)
    assert release is not None
    assert release == pytest.approx(100.0 + profile.pair_delay_s(A, B))
    assert core.get_timer() == release
    assert core.packets_due(release - 1e-6) == []
    assert core.packets_due(release) == [packet]
    assert core.get_timer() is None
    assert core.stats.released == 1
    assert core.stats.bytes_released == len(packet)


def test_both_directions_of_a_pair_share_the_base_delay() -> None:
    core = schedule(Profile(delay_ms=(10.0, 150.0), seed=5))
    there = core.receive(udp(A, 1, B, 2), now=0.0)
    back = core.receive(udp(B, 2, A, 1), now=0.0)
    other = core.receive(udp(A, 1, C, 2), now=0.0)
    assert there is not None and back is not None and other is not None
    assert there == back
    assert there != other


def test_jitter_stays_within_its_bound_and_varies() -> None:
    profile = Profile(delay_ms=(40.0, 40.0), jitter_ms=10.0)
    core = schedule(profile)
    delays = []
    for i in range(500):
        now = float(i)  # one packet a second: no queueing behind earlier ones
        release = core.receive(udp(A, 1, B, 2), now)
        assert release is not None
        delays.append(release - now)
    assert min(delays) >= 0.040
    assert max(delays) <= 0.050 + 1e-9
    assert max(delays) - min(delays) > 0.008


def test_jitter_never_reorders_a_flow_but_may_reorder_across_flows() -> None:
    core = schedule(Profile(delay_ms=(10.0, 10.0), jitter_ms=50.0), seed=11)
    sent: list[bytes] = []
    for i in range(400):
        flow_port = 1000 + i % 2  # two interleaved flows between the same hosts
        packet = udp(A, flow_port, B, 2000, i.to_bytes(4, "big"))
        sent.append(packet)
        assert core.receive(packet, now=i * 0.001) is not None
    out = core.packets_due(now=10.0)
    assert sorted(out) == sorted(sent)
    for port in (1000, 1001):
        numbers = [
            int.from_bytes(p[28:32], "big") for p in out if p[20:22] == port.to_bytes(2, "big")
        ]
        assert numbers == sorted(numbers)
        assert len(numbers) == 200
    # Across flows, jitter does reorder: the FIFO rule is per flow, not per pair.
    overall = [int.from_bytes(p[28:32], "big") for p in out]
    assert overall != sorted(overall)


def test_tcp_flows_are_kept_in_order_too() -> None:
    core = schedule(Profile(delay_ms=(10.0, 10.0), jitter_ms=50.0), seed=2)
    for i in range(200):
        core.receive(tcp(A, 5555, B, 80, i.to_bytes(4, "big")), now=i * 0.0005)
    out = core.packets_due(now=5.0)
    numbers = [int.from_bytes(p[40:44], "big") for p in out]
    assert numbers == list(range(200))


def test_loss_rate_follows_the_profile() -> None:
    core = schedule(Profile(delay_ms=(10.0, 10.0), loss=0.02), seed=4)
    for i in range(20000):
        core.receive(udp(A, 1, B, 2), now=i * 0.001)
    lost = core.stats.lost
    # 400 expected, sd 20: these bounds are ten deviations wide.
    assert 200 < lost < 600
    assert core.stats.queued + core.stats.released + lost == 20000


def test_no_loss_configured_means_nothing_is_lost() -> None:
    core = schedule(Profile(delay_ms=(10.0, 10.0)))
    for i in range(5000):
        assert core.receive(udp(A, 1, B, 2), now=i * 0.001) is not None
    assert core.stats.lost == 0


def test_port_unreachable_and_non_ipv4_are_dropped_other_icmp_passes() -> None:
    core = schedule(Profile(delay_ms=(10.0, 10.0)))
    assert core.receive(icmp_unreachable(B, A, 3), now=0.0) is None
    assert core.receive(b"\x60" + bytes(47), now=0.0) is None
    assert core.receive(icmp_unreachable(B, A, 4), now=0.0) is not None
    assert core.stats.port_unreachable_dropped == 1
    assert core.stats.not_ipv4_dropped == 1
    assert core.stats.received == 3


def test_same_seed_same_fate() -> None:
    profile = Profile(delay_ms=(10.0, 150.0), jitter_ms=5.0, loss=0.1, seed=9)
    runs = []
    for _ in range(2):
        core = schedule(profile, seed=42)
        runs.append([core.receive(udp(A, 1, B, 2), now=i * 0.01) for i in range(300)])
    assert runs[0] == runs[1]


def test_equal_release_times_leave_in_arrival_order() -> None:
    core = schedule(Profile(delay_ms=(20.0, 20.0)))
    packets = [udp(A, 1000 + i, B, 2000, bytes([i])) for i in range(50)]
    for packet in packets:
        core.receive(packet, now=1.0)
    assert core.packets_due(now=2.0) == packets


def test_the_flow_table_forgets_flows_that_have_drained() -> None:
    core = schedule(Profile(delay_ms=(10.0, 10.0)))
    for i in range(20000):
        core.receive(udp(A, i % 60000, B, 2), now=float(i))  # a new flow every second
        core.packets_due(now=i + 0.5)
    # 20,000 flows went through; only those since the last sweep are remembered.
    assert core.flow_count() <= 4097
    assert core.stats.max_queued == 1


def test_lateness_is_measured_from_each_release_time() -> None:
    core = schedule(Profile(delay_ms=(10.0, 10.0)))
    core.receive(udp(A, 1, B, 2), now=0.0)  # due at 0.010
    core.receive(udp(A, 3, B, 2), now=0.004)  # due at 0.014
    assert core.packets_due(now=0.009) == []
    assert len(core.packets_due(now=0.016)) == 2
    assert core.stats.late_max_us == pytest.approx(6000, abs=1)
    assert core.stats.late_total_us == pytest.approx(6000 + 2000, abs=2)
    core.receive(udp(A, 1, B, 2), now=1.0)
    core.packets_due(now=1.010)  # exactly on time
    assert core.stats.late_max_us == pytest.approx(6000, abs=1)
    assert core.stats.late_total_us == pytest.approx(8000, abs=2)
