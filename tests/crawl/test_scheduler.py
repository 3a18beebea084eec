"""CrawlScheduler without sockets: BEP 51 intervals, num, support detection, rate limits, bounds."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from crawl.scheduler import (
    BEP51_MAX_INTERVAL_S,
    CrawlQuery,
    CrawlScheduler,
    SchedulerConfig,
    Support,
    failure_kind,
)
from dht.wire import Addr, NodeContact

OWN = b"\x00" * 20


def addr(i: int) -> Addr:
    return (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 6881)


def contact(i: int) -> NodeContact:
    return NodeContact(i.to_bytes(20, "big"), addr(i))


def sched(now: float = 0.0, **cfg: object) -> CrawlScheduler:
    config = SchedulerConfig(**{"qps": 1e6, "bandwidth": 1e9, **cfg})  # type: ignore[arg-type]
    return CrawlScheduler([OWN], rng=random.Random(1), now=now, config=config)


def drain(s: CrawlScheduler, now: float) -> list[CrawlQuery]:
    out = []
    while (q := s.next_query(now)) is not None:
        out.append(q)
    return out


def test_first_contact_asks_for_samples_and_support_is_learned() -> None:
    s = sched()
    s.add_seeds([addr(1)], 0.0)
    (q,) = drain(s, 0.0)
    assert q.method == b"sample_infohashes" and q.addr == addr(1) and len(q.target) == 20
    hashes = s.on_reply(
        q.qid,
        0.1,
        node_id=b"\x01" * 20,
        nodes=[contact(2), contact(3)],
        samples=b"a" * 20 + b"b" * 20,
        num=100,
        interval=60,
    )
    assert hashes == [b"a" * 20, b"b" * 20]
    assert s.nodes[addr(1)].support == Support.YES
    assert s.stats.bep51_yes == 1 and s.stats.samples == 2
    # The nodes it named are met next, each with sample_infohashes.
    assert {q.addr for q in drain(s, 0.2)} == {addr(2), addr(3)}


def test_answer_without_samples_or_error_203_204_means_unsupported() -> None:
    s = sched(find_interval_s=10.0)
    s.add_seeds([addr(1), addr(2), addr(3)], 0.0)
    q1, q2, q3 = drain(s, 0.0)
    # libtorrent-style forward compatibility: answered like find_node, no samples.
    s.on_reply(q1.qid, 0.1, node_id=b"\x01" * 20, nodes=[], samples=None)
    s.on_failure(q2.qid, 0.1, "error 204: Method Unknown")
    s.on_failure(q3.qid, 0.1, "error 203: unknown message")
    assert all(s.nodes[addr(i)].support == Support.NO for i in (1, 2, 3))
    assert s.stats.bep51_no == 3 and s.stats.bep51_yes == 0
    later = drain(s, 100.0)
    assert later and all(q.method == b"find_node" for q in later)


def test_interval_is_honoured_and_num_decides_revisits() -> None:
    s = sched(min_revisit_s=0.0, idle_revisit_s=1000.0)
    s.add_seeds([addr(1), addr(2)], 0.0)
    q1, q2 = drain(s, 0.0)
    # addr 1 holds more than it showed: back at its interval.
    s.on_reply(q1.qid, 1.0, node_id=b"\x01" * 20, samples=b"a" * 20, num=50, interval=30)
    s.sampled_yield(addr(1), 1, 1.0)
    # addr 2 showed all it has: only after idle_revisit_s.
    s.on_reply(q2.qid, 1.0, node_id=b"\x02" * 20, samples=b"b" * 20, num=1, interval=30)
    s.sampled_yield(addr(2), 1, 1.0)
    assert [q for q in drain(s, 30.9) if q.method == b"sample_infohashes"] == []
    (again,) = [q for q in drain(s, 31.0) if q.method == b"sample_infohashes"]
    assert again.addr == addr(1)
    assert s.get_timer(31.0) is not None
    assert [q.addr for q in drain(s, 1001.0) if q.method == b"sample_infohashes"] == [addr(2)]


def test_new_nodes_are_asked_even_while_revisits_are_always_due() -> None:
    # One query at a time, and a node due again the moment it answers (interval 0): new
    # nodes must still get their turn, and the busy node its revisits.
    s = sched(max_in_flight=1, min_revisit_s=0.0)
    s.add_seeds([addr(1)], 0.0)
    asked = []
    now = 0.0
    for i in range(10):
        (q,) = drain(s, now)
        asked.append(q.addr)
        named = [contact(10 + i)] if q.addr == addr(1) else []
        s.on_reply(
            q.qid, now, node_id=b"\x01" * 20, nodes=named, samples=b"a" * 20, num=9, interval=0
        )
        s.sampled_yield(q.addr, 1, now)
        now += 0.1
    assert asked.count(addr(1)) >= 4  # revisited at its interval all along
    assert len(set(asked)) >= 5  # and the nodes it named were met in between


def test_a_drained_node_waits_for_idle_revisit() -> None:
    s = sched(min_revisit_s=0.0, idle_revisit_s=500.0, drained_after=2, find_interval_s=1e9)
    s.add_seeds([addr(1)], 0.0)
    now = 0.0
    (q,) = drain(s, now)
    for _ in range(1):  # one answer with nothing new: still revisited at the interval
        s.on_reply(q.qid, now, node_id=b"\x01" * 20, samples=b"a" * 20, num=99, interval=10)
        s.sampled_yield(addr(1), 0, now)
        now += 10
        (q,) = [x for x in drain(s, now) if x.method == b"sample_infohashes"]
    # The second in a row: drained, so only idle_revisit_s later.
    s.on_reply(q.qid, now, node_id=b"\x01" * 20, samples=b"a" * 20, num=99, interval=10)
    s.sampled_yield(addr(1), 0, now)
    assert [x for x in drain(s, now + 499) if x.method == b"sample_infohashes"] == []
    assert [x.addr for x in drain(s, now + 500) if x.method == b"sample_infohashes"] == [addr(1)]


def test_interval_is_clamped_and_min_revisit_applies() -> None:
    s = sched(min_revisit_s=5.0, idle_revisit_s=0.0)
    s.add_seeds([addr(1), addr(2)], 0.0)
    q1, q2 = drain(s, 0.0)
    s.on_reply(q1.qid, 0.0, node_id=b"\x01" * 20, samples=b"", num=9, interval=0)
    s.on_reply(q2.qid, 0.0, node_id=b"\x02" * 20, samples=b"", num=9, interval="x")
    assert s.nodes[addr(1)].next_sample_at == 5.0  # interval 0, our floor is 5 s
    assert s.nodes[addr(2)].interval == BEP51_MAX_INTERVAL_S  # nonsense: the longest


def test_bad_samples_are_counted_not_used() -> None:
    s = sched()
    s.add_seeds([addr(1)], 0.0)
    (q,) = drain(s, 0.0)
    assert s.on_reply(q.qid, 0.0, node_id=b"\x01" * 20, samples=b"x" * 21, num=5) == []
    assert s.stats.bad_samples == 1


def test_policy_refuses_learned_addresses_but_not_seeds() -> None:
    config = SchedulerConfig(qps=1e6, bandwidth=1e9)
    s = CrawlScheduler(
        [OWN],
        rng=random.Random(1),
        now=0.0,
        config=config,
        accept=lambda a: not a[0].startswith("10."),
    )
    s.add_seeds([("10.0.0.1", 1)], 0.0)
    (q,) = drain(s, 0.0)
    assert q.addr == ("10.0.0.1", 1)
    bad, good = (
        NodeContact(b"\x05" * 20, ("10.9.9.9", 1)),
        NodeContact(b"\x06" * 20, ("8.8.8.8", 1)),
    )
    s.on_reply(q.qid, 0.0, node_id=b"\x01" * 20, nodes=[bad, good], samples=b"")
    assert [x.addr for x in drain(s, 0.0)] == [("8.8.8.8", 1)]
    assert s.stats.refused == 1
    s.queried_by(("10.1.1.1", 5), 0.0)
    assert s.stats.refused == 2 and ("10.1.1.1", 5) not in s.nodes


def test_own_ids_are_never_queried() -> None:
    s = sched()
    s.add_seeds([addr(1)], 0.0)
    (q,) = drain(s, 0.0)
    s.on_reply(q.qid, 0.0, node_id=b"\x01" * 20, nodes=[NodeContact(OWN, addr(9))], samples=b"")
    assert drain(s, 0.0) == []


def test_qps_bandwidth_and_in_flight_limits() -> None:
    s = CrawlScheduler(
        [OWN], rng=random.Random(1), now=0.0, config=SchedulerConfig(qps=10, bandwidth=1e9)
    )
    s.add_seeds([addr(i) for i in range(1000)], 0.0)
    sent = 0
    t = 0.0
    while t < 10.0:
        for q in drain(s, t):
            sent += 1
            s.on_failure(q.qid, t, "timeout")
        nxt = s.get_timer(t)
        assert nxt is not None and nxt > t
        t = nxt
    assert 100 <= sent <= 111  # 10/s plus a one-second burst

    s = CrawlScheduler(
        [OWN], rng=random.Random(1), now=0.0, config=SchedulerConfig(qps=1e6, bandwidth=13_000)
    )
    s.add_seeds([addr(i) for i in range(1000)], 0.0)
    sent = 0
    t = 0.0
    while t < 10.0:
        for q in drain(s, t):
            sent += 1
            s.on_reply(q.qid, t, node_id=b"\x01" * 20, samples=b"a" * 400, num=20, interval=60)
        nxt = s.get_timer(t)
        assert nxt is not None and nxt > t
        t = nxt
    assert s.stats.bytes_in + s.stats.bytes_out <= 13_000 * 11 + 1000

    s = sched(max_in_flight=5)
    s.add_seeds([addr(i) for i in range(50)], 0.0)
    assert len(drain(s, 0.0)) == 5 and s.get_timer(0.0) is None


def test_tables_are_bounded() -> None:
    s = sched(max_nodes=100, max_frontier=30)
    s.add_seeds([addr(1)], 0.0)
    (q,) = drain(s, 0.0)
    s.on_reply(q.qid, 0.0, node_id=b"\x01" * 20, nodes=[contact(i) for i in range(2, 500)])
    assert s.frontier == 30 and s.stats.frontier_dropped > 0
    for _ in range(20):
        for q in drain(s, 0.0):
            s.on_reply(
                q.qid, 0.0, node_id=b"\x01" * 20, nodes=[contact(i) for i in range(500, 900)]
            )
    assert len(s.nodes) <= 100 and s.stats.evicted > 0


def test_timeouts_are_retried_once_then_the_node_is_dead_until_retry() -> None:
    s = sched(dead_retry_s=100.0, min_revisit_s=0.0, idle_revisit_s=0.0, retry_s=5.0)
    s.add_seeds([addr(1), addr(2)], 0.0)
    q1, q2 = drain(s, 0.0)
    s.on_failure(q2.qid, 0.5, "timeout")  # first contact lost: asked again after retry_s
    s.on_reply(q1.qid, 0.0, node_id=b"\x01" * 20, samples=b"", num=0, interval=1)
    q = next(x for x in drain(s, 1.0) if x.method == b"sample_infohashes")
    s.on_failure(q.qid, 2.0, "timeout")
    assert [x.addr for x in drain(s, 5.5) if x.method == b"sample_infohashes"] == [addr(2)]
    q = next(x for x in drain(s, 7.0) if x.method == b"sample_infohashes")  # one more try
    assert q.addr == addr(1)
    s.on_failure(q.qid, 8.0, "timeout")
    assert [x for x in drain(s, 50.0) if x.addr == addr(1)] == []
    assert [x.addr for x in drain(s, 108.0) if x.method == b"sample_infohashes"] == [addr(1)]
    assert s.stats.failures == {"timeout": 3}


def test_failure_kinds() -> None:
    assert failure_kind("timeout") == "timeout"
    assert failure_kind("error 204: Method Unknown") == "error-204"
    assert failure_kind("bad response: nodes of 7 bytes") == "bad-response"
    assert failure_kind("busy") == "busy"
    assert failure_kind("no IPv6 socket") == "no-socket"


# --- a fake DHT, for properties over whole crawls ----------------------------------------------


@dataclass
class FakeNode:
    support: bool
    interval: int
    store: list[bytes]
    answers: bool
    asked_at: list[float] = field(default_factory=list)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    count=st.integers(2, 40),
    qps=st.floats(1.0, 500.0),
    min_revisit=st.floats(0.0, 5.0),
)
def test_whole_crawls_never_ask_before_the_interval(
    seed: int, count: int, qps: float, min_revisit: float
) -> None:
    rng = random.Random(seed)
    fakes = {
        addr(i): FakeNode(
            support=rng.random() < 0.7,
            interval=rng.choice([0, 1, 3, 10]),
            store=[rng.randbytes(20) for _ in range(rng.randrange(0, 60))],
            answers=rng.random() < 0.9,
        )
        for i in range(1, count + 1)
    }
    s = CrawlScheduler(
        [OWN],
        rng=random.Random(seed),
        now=0.0,
        config=SchedulerConfig(
            qps=qps, min_revisit_s=min_revisit, idle_revisit_s=20.0, find_interval_s=2.0
        ),
    )
    s.add_seeds([addr(1)], 0.0)
    found: set[bytes] = set()
    last_reply: dict[Addr, tuple[float, int]] = {}
    t = 0.0
    inbox: list[tuple[float, CrawlQuery]] = []
    sent_at: dict[int, float] = {}
    steps = 0
    while t < 60.0:
        for q in drain(s, t):
            sent_at[q.qid] = t
            inbox.append((t + 0.05, q))
        due = [x for x in inbox if x[0] <= t]
        inbox = [x for x in inbox if x[0] > t]
        for _, q in due:
            fake = fakes[q.addr]
            if q.method == b"sample_infohashes":
                if q.addr in last_reply:
                    at, interval = last_reply[q.addr]
                    assert sent_at[q.qid] >= at + max(interval, min_revisit) - 1e-9
                fake.asked_at.append(t)
            if not fake.answers:
                s.on_failure(q.qid, t, "timeout")
                continue
            nodes = [contact(rng.randrange(1, count + 1)) for _ in range(4)]
            if q.method == b"sample_infohashes" and fake.support:
                pick = rng.sample(fake.store, min(5, len(fake.store)))
                hashes = s.on_reply(
                    q.qid,
                    t,
                    node_id=b"\x01" * 20,
                    nodes=nodes,
                    samples=b"".join(pick),
                    num=len(fake.store),
                    interval=fake.interval,
                )
                new = len(set(hashes) - found)
                found.update(hashes)
                s.sampled_yield(q.addr, new, t)
                last_reply[q.addr] = (t, fake.interval)
            else:
                s.on_reply(q.qid, t, node_id=b"\x01" * 20, nodes=nodes, samples=None)
        timer = s.get_timer(t)
        if timer is not None:
            assert timer >= t and (timer > t or s.next_query(t) is None or True)
        nxt = min([timer if timer is not None else 1e9, *(x[0] for x in inbox), 60.0])
        t = max(nxt, t + 1e-3)
        steps += 1
        assert steps < 200_000
    assert s.in_flight <= s.config.max_in_flight
