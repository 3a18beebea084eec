"""CrawlEngine without sockets: a production DHT core as the node crawled, explicit ``now``."""

from __future__ import annotations

import random

from crawl.engine import CrawlEngine
from crawl.events import (
    CrawlEvent,
    CrawlStalled,
    HashObserved,
    NodeAnswered,
    PeersLookedUp,
    SamplesReceived,
)
from crawl.scheduler import SchedulerConfig
from dht.protocol import DhtConfig, DhtProtocol
from dht.wire import Addr

PEER: Addr = ("127.0.0.1", 6881)  # the node crawled
OURS: list[Addr] = [("127.0.0.1", 7000), ("127.0.0.1", 7001)]
SCHEDULE = SchedulerConfig(qps=1000, bandwidth=1e9, min_revisit_s=0.0)
HASHES = [bytes([i]) * 20 for i in range(1, 6)]


def engine(*, ids: int = 1, now: float = 0.0, families: tuple[int, ...] = (4,)) -> CrawlEngine:
    e = CrawlEngine(
        [bytes([0x10 * (i + 1)]) * 20 for i in range(ids)],
        rng=random.Random(1),
        now=now,
        families=families,
        schedule=SCHEDULE,
    )
    for addr in OURS[: len(e.endpoints)]:
        e.set_local(addr)
    return e


def peer(now: float = 0.0) -> DhtProtocol:
    core = DhtProtocol(b"\x77" * 20, rng=random.Random(2), now=now, config=DhtConfig())
    for h in HASHES:
        core.storage.add(h, ("127.0.0.1", 1), now)
    return core


def shuttle(e: CrawlEngine, p: DhtProtocol, now: float) -> None:
    """Carry datagrams between the engine and the peer until both are quiet."""
    for _ in range(50):
        moved = False
        for endpoint, data, dst in e.datagrams_to_send(now):
            if dst == PEER:
                p.receive_datagram(data, OURS[endpoint], now)
                moved = True
        for data, dst in p.datagrams_to_send(now):
            e.receive_datagram(OURS.index(dst), data, PEER, now)
            moved = True
        if not moved:
            return
    raise AssertionError("the two never went quiet")


def events(e: CrawlEngine) -> list[CrawlEvent]:
    out = []
    while (ev := e.next_event()) is not None:
        out.append(ev)
    return out


def test_samples_come_first_then_the_node_once_told_how_many_were_new() -> None:
    e, p = engine(), peer()
    e.add_seeds([PEER], 0.0)
    shuttle(e, p, 0.1)
    (sampled,) = events(e)
    assert isinstance(sampled, SamplesReceived)
    assert sampled.addr == PEER and sampled.node_id == p.node_id
    assert sorted(sampled.hashes) == HASHES
    e.sampled_yield(PEER, 3, 0.1)
    (row,) = events(e)
    assert isinstance(row, NodeAnswered)
    assert (row.addr, row.bep51, row.samples, row.new_hashes, row.replies) == (PEER, True, 5, 3, 1)
    assert row.num == 5 and row.interval == DhtConfig().sample_interval_s
    assert p.stats.queries_in == {"sample_infohashes": 1}


def test_a_silent_node_fails_at_the_query_timeout_and_is_not_written_down() -> None:
    e = engine()
    e.add_seeds([("127.0.0.1", 9)], 0.0)
    assert [dst for _, _, dst in e.datagrams_to_send(0.0)] == [("127.0.0.1", 9)]
    now = 0.0
    while now < 4.5:
        timer = e.get_timer()
        assert timer is not None and timer > now  # a driver never spins on a stale deadline
        now = timer
        e.handle_timer(now)
    assert e.stats.failures == {"timeout": 1}
    assert not [ev for ev in events(e) if isinstance(ev, NodeAnswered)]


def test_queries_to_our_nodes_are_sightings_unless_they_come_from_our_own_addresses() -> None:
    e, p = engine(ids=2), peer()
    h = b"\xab" * 20
    p.query(OURS[0], b"get_peers", {b"info_hash": h}, 0.0)
    ((data, _),) = p.datagrams_to_send(0.0)
    e.receive_datagram(0, data, PEER, 0.0)
    assert events(e) == [HashObserved(h, "get_peers", PEER, None)]
    assert e.passive == 1 and PEER in e.scheduler.nodes  # worth meeting
    e.receive_datagram(0, data, OURS[1], 0.0)
    e.receive_datagram(0, data, ("127.0.0.1", OURS[0][1]), 0.0)
    assert events(e) == [] and e.passive == 1


def test_find_peers_walks_from_the_seeds_and_reports_once_for_all_families() -> None:
    e, p = engine(), peer()
    info_hash = b"\xcd" * 20
    p.storage.add(info_hash, ("10.1.2.3", 4567), 0.0)
    e.add_seeds([PEER], 0.0)
    handle = e.find_peers(info_hash, 0.0)  # our table is empty: the lookup asks the seeds
    shuttle(e, p, 0.1)
    done = [ev for ev in events(e) if isinstance(ev, PeersLookedUp)]
    assert done == [PeersLookedUp(handle, info_hash, (("10.1.2.3", 4567),), 1, 1)]
    cancelled = e.find_peers(b"\xef" * 20, 0.2)
    e.cancel_peers(cancelled)
    shuttle(e, p, 0.3)
    assert not [ev for ev in events(e) if isinstance(ev, PeersLookedUp)]


def test_endpoints_one_core_per_id_and_family_with_distinct_request_ids() -> None:
    e = engine(ids=2, families=(4, 6))
    assert [(x.via, x.family) for x in e.endpoints] == [(0, 4), (0, 6), (1, 4), (1, 6)]
    assert e.cores[0].sibling is e.cores[1] and e.cores[1].sibling is e.cores[0]
    assert e.cores[0].node_id == e.cores[1].node_id != e.cores[2].node_id
    rids = {core.ping(PEER, 0.0) for core in e.cores}
    assert len(rids) == 4
    assert all(core.config.observe and core.config.refresh_s == float("inf") for core in e.cores)


def test_an_address_of_a_family_we_do_not_speak_fails_as_no_socket() -> None:
    e = engine()
    e.add_seeds([("::1", 6881)], 0.0)
    assert e.stats.failures == {"no-socket": 1}
    assert e.datagrams_to_send(0.0) == []
    assert not e.acceptable(("::1", 6881)) and e.acceptable(("127.0.0.2", 1))


def test_nobody_answering_stalls_the_crawl_after_the_startup_time() -> None:
    e = engine()
    e.add_seeds([("127.0.0.1", 9)], 0.0)
    now = 0.0
    stalled: list[CrawlStalled] = []
    while now < 25.0 and not stalled:
        timer = e.get_timer()
        assert timer is not None and timer > now
        now = timer
        e.handle_timer(now)
        stalled = [ev for ev in events(e) if isinstance(ev, CrawlStalled)]
    assert 20.0 <= now <= 20.5
    assert stalled[0].reason.startswith("no DHT node answered within 20 s (1 bootstrap")
    assert e.stats.sent >= 3  # the seed was asked again while we waited
