"""Keeping the table alive and joining (``dht.maintenance``), on explicit times."""

from __future__ import annotations

import random

import bencode2

from dht.config import DhtConfig
from dht.events import BootstrapStalled, LookupDone
from dht.protocol import DhtProtocol
from dht.routing import GOOD_FOR_S
from dht.wire import Addr, Query, decode, encode_query

ROUTER = ("9.2.0.1", 6881)


def make_core(**cfg: object) -> DhtProtocol:
    config = DhtConfig()
    for k, v in cfg.items():
        setattr(config, k, v)
    return DhtProtocol(b"s" * 20, rng=random.Random(1), now=0.0, config=config)


def fill(core: DhtProtocol, count: int, now: float = 0.0) -> list[Addr]:
    rng = random.Random(5)
    addrs = [(f"8.{i + 1}.0.9", 2) for i in range(count)]  # one /24 each
    for a in addrs:
        core.routing.node_seen(rng.randbytes(20), a, now)
    return addrs


def queries(core: DhtProtocol, now: float) -> list[tuple[Query, Addr]]:
    out = []
    for data, dst in core.datagrams_to_send(now):
        msg = decode(data)
        if isinstance(msg, Query):
            out.append((msg, dst))
    return out


def tick(core: DhtProtocol, now: float) -> list[tuple[Query, Addr]]:
    core.handle_timer(now)
    return queries(core, now)


def test_a_bucket_untouched_for_the_refresh_interval_is_refreshed_through_the_table() -> None:
    core = make_core(refresh_s=100.0)
    fill(core, 5)
    assert core.routing.stale_buckets(50.0, 100.0) == []
    sent = tick(core, 101.0)
    finds = [q for q, _ in sent if q.method == b"find_node"]
    assert finds and all(q.args[b"target"] == core.node_id for q in finds)  # the last bucket
    assert core.routing.stale_buckets(101.0, 100.0) == []  # marked refreshed by the table
    assert core.lookups.running("refresh") and len(core.lookups) == 1
    tick(core, 102.0)
    assert len(core.lookups) == 1  # one refresh at a time


def test_refresh_lookups_report_their_kind() -> None:
    core = make_core(refresh_s=100.0, lookup_timeout_s=5.0)
    fill(core, 3)
    tick(core, 101.0)
    now = 101.0
    done: list[LookupDone] = []
    while not done and now < 200.0:
        now += 1.0
        core.handle_timer(now)
        while (ev := core.next_event()) is not None:
            if isinstance(ev, LookupDone):
                done.append(ev)
    assert done and done[0].kind == "refresh"


def test_questionable_nodes_are_pinged_a_few_per_tick_and_once_at_a_time() -> None:
    core = make_core(pings_per_tick=3, refresh_s=1e9)
    fill(core, 6)
    later = GOOD_FOR_S + 1.0
    first = [dst for q, dst in tick(core, later) if q.method == b"ping"]
    assert len(first) == 3
    second = [dst for q, dst in tick(core, later + 1.0) if q.method == b"ping"]
    assert len(second) == 3 and not set(first) & set(second)
    # Pings still out are not sent again; once they time out the nodes may be pinged again.
    assert [q for q, _ in tick(core, later + 2.0) if q.method == b"ping"] == []
    again = [
        dst
        for q, dst in tick(core, later + 1.0 + core.config.query_timeout_s)
        if q.method == b"ping"
    ]
    assert again and set(again) <= set(first) | set(second)


def test_a_new_querier_is_pinged_once_and_joins_when_it_answers() -> None:
    core = make_core()
    you, your_id = ("9.3.0.1", 7000), b"y" * 20
    ask = encode_query(b"tx", b"ping", {b"id": your_id})
    core.receive_datagram(ask, you, 1.0)
    (ping,) = [q for q, dst in queries(core, 1.0) if dst == you]
    core.receive_datagram(encode_query(b"t2", b"ping", {b"id": your_id}), you, 1.1)
    assert queries(core, 1.1) == []  # already pinging it
    assert your_id not in core.routing
    reply = bencode2.bencode({b"r": {b"id": your_id}, b"t": ping.t, b"y": b"r"})
    core.receive_datagram(reply, you, 1.2)
    assert your_id in core.routing
    assert core.next_event() is None  # a maintenance ping reports nothing


def test_bootstrap_backs_off_while_nobody_answers_and_stops_once_the_table_fills() -> None:
    core = make_core(query_timeout_s=1.0, soft_timeout_s=0.5)
    rid = core.bootstrap([ROUTER], 0.0)
    assert [dst for _, dst in queries(core, 0.0)] == [ROUTER]
    stalls: list[BootstrapStalled] = []
    now = 0.0
    while len(stalls) < 3:
        timer = core.get_timer()
        assert timer is not None
        now = timer
        core.handle_timer(now)
        queries(core, now)
        while (ev := core.next_event()) is not None:
            if isinstance(ev, BootstrapStalled):
                stalls.append(ev)
            else:
                assert isinstance(ev, LookupDone) and ev.request_id >= rid
    assert [s.retry_in for s in stalls] == [2.0, 4.0, 8.0]
    assert [s.attempt for s in stalls] == [1, 2, 3] and stalls[0].routers == 1
    # A node turns up before the next retry: the retry finds the table filled and stops.
    fill(core, 1, now)
    for _ in range(20):
        now += 1.0
        core.handle_timer(now)
        assert ROUTER not in [dst for _, dst in queries(core, now)]
        assert not any(isinstance(e, BootstrapStalled) for e in iter(core.next_event, None))


def test_a_restored_node_is_asked_first_by_the_next_bootstrap() -> None:
    from dht.wire import NodeContact

    core = make_core()
    saved = NodeContact(b"z" * 20, ("9.4.0.1", 1))
    assert core.restore([saved], None, 0.0) == 1
    core.bootstrap([ROUTER], 0.0)
    asked = {dst for _, dst in queries(core, 0.0)}
    assert {ROUTER, saved.addr} <= asked
