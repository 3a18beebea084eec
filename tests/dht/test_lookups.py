"""Running lookups (``dht.lookups``): traversals, their queue, deadlines, announce, cancel."""

from __future__ import annotations

import random

import bencode2
from hypothesis import given, settings
from hypothesis import strategies as st

from dht.config import DhtConfig
from dht.events import DhtEvent, LookupDone, PeersFound
from dht.lookups import FindNode, Traversal
from dht.protocol import DhtProtocol
from dht.wire import Addr, Query, decode
from tests.dht.pair import A_ADDR, B_ADDR, CorePair

SEEDS = [(f"9.1.0.{i}", 6881) for i in range(1, 6)]


def make_core(**cfg: object) -> DhtProtocol:
    config = DhtConfig()
    for k, v in cfg.items():
        setattr(config, k, v)
    return DhtProtocol(b"s" * 20, rng=random.Random(1), now=0.0, config=config)


def sent_queries(core: DhtProtocol, now: float) -> list[tuple[Query, Addr]]:
    out = []
    for data, dst in core.datagrams_to_send(now):
        msg = decode(data)
        assert isinstance(msg, Query)
        out.append((msg, dst))
    return out


def answer(core: DhtProtocol, q: Query, src: Addr, node_id: bytes, now: float) -> None:
    reply = {b"r": {b"id": node_id}, b"t": q.t, b"y": b"r"}
    core.receive_datagram(bencode2.bencode(reply), src, now)


def events(core: DhtProtocol) -> list[DhtEvent]:
    out = []
    while (ev := core.next_event()) is not None:
        out.append(ev)
    return out


def test_a_walk_asks_alpha_nodes_at_a_time_with_its_own_query() -> None:
    core = make_core()
    rid = core.find_node(b"t" * 20, 0.0, seeds=SEEDS)
    qs = sent_queries(core, 0.0)
    assert len(qs) == core.config.alpha
    assert all(q.method == b"find_node" and q.args[b"target"] == b"t" * 20 for q, _ in qs)
    rid2 = core.get_peers(b"h" * 20, 0.0, seeds=SEEDS[:1])
    ((q, _),) = sent_queries(core, 0.0)
    assert q.method == b"get_peers" and q.args[b"info_hash"] == b"h" * 20
    assert rid2 == rid + 1 and len(core.lookups) == 2


def test_lookups_out_of_slots_wait_and_resume_as_slots_free() -> None:
    core = make_core(max_pending=2)
    rid = core.find_node(b"t" * 20, 0.0, seeds=SEEDS)
    first = sent_queries(core, 0.0)
    assert len(first) == 2  # the third had no slot: the lookup waits in the queue
    (q, src), _ = first
    answer(core, q, src, b"x" * 20, 0.1)
    ((q2, src2),) = sent_queries(core, 0.1)  # a slot came free: the walk went on
    assert src2 not in {a for _, a in first}
    # Every seed answers: the lookup finishes, having asked all five.
    pending = [first[1], (q2, src2)]
    now = 0.2
    while pending:
        q, src = pending.pop()
        answer(core, q, src, bytes([len(pending) + 1]) * 20, now)
        pending += sent_queries(core, now)
        now += 0.1
    (done,) = [e for e in events(core) if isinstance(e, LookupDone)]
    assert done.request_id == rid and done.queried == 5 and done.replied == 5
    assert not done.timed_out and len(core.lookups) == 0


def test_a_waiting_lookup_resumes_when_another_frees_a_slot() -> None:
    core = make_core(max_pending=2)
    core.find_node(b"t" * 20, 0.0, seeds=SEEDS[:2])
    first = sent_queries(core, 0.0)  # both slots taken
    other = core.get_peers(b"h" * 20, 0.0, seeds=SEEDS[2:3])
    assert sent_queries(core, 0.0) == []  # no slot: it waits
    q, src = first[0]
    answer(core, q, src, b"x" * 20, 0.1)  # the first lookup has no one else to ask
    ((q2, dst),) = sent_queries(core, 0.1)
    assert q2.method == b"get_peers" and dst == SEEDS[2]
    answer(core, q2, dst, b"y" * 20, 0.2)
    done = [e for e in events(core) if isinstance(e, LookupDone)]
    assert [d.request_id for d in done] == [other] and done[0].replied == 1


def test_a_lookup_past_its_deadline_finishes_timed_out() -> None:
    core = make_core(lookup_timeout_s=3.0, query_timeout_s=10.0, soft_timeout_s=9.0)
    rid = core.find_node(b"t" * 20, 0.0, seeds=SEEDS)
    sent_queries(core, 0.0)
    now = 0.0
    while not (done := [e for e in events(core) if isinstance(e, LookupDone)]):
        timer = core.get_timer()
        assert timer is not None and timer < 10.0
        now = timer
        core.handle_timer(now)
    assert done[0].request_id == rid and done[0].timed_out and 3.0 <= now < 4.5
    assert core.status(now)["pending"] == 0  # its queries were cancelled


def test_cancel_forgets_the_lookup_and_its_answers() -> None:
    core = make_core()
    rid = core.find_node(b"t" * 20, 0.0, seeds=SEEDS)
    qs = sent_queries(core, 0.0)
    core.cancel(rid)
    assert core.status(0.0)["pending"] == 0 and len(core.lookups) == 0
    q, src = qs[0]
    answer(core, q, src, b"x" * 20, 0.1)
    assert events(core) == [] and sent_queries(core, 0.1) == []
    assert core.stats.dropped["unexpected response"] == 1


def test_get_peers_reports_the_peers_we_store_first() -> None:
    core = make_core()
    core.storage.add(b"h" * 20, ("7.7.7.7", 7), 0.0)
    rid = core.get_peers(b"h" * 20, 0.0)
    assert events(core)[0] == PeersFound(rid, (("7.7.7.7", 7),))


def test_announce_walks_then_announces_to_the_nodes_that_gave_a_token(pair: CorePair) -> None:
    rid = pair.a.announce(b"h" * 20, 4444, 0.0)  # b is not known yet: nothing to ask
    pair.run()
    (done,) = pair.events_of(pair.a)
    assert isinstance(done, LookupDone) and done.announced == 0 and done.kind == "announce"
    pair.a.routing.node_seen(b"b" * 20, B_ADDR, 0.0)
    rid = pair.a.announce(b"h" * 20, 4444, pair.now)
    pair.run()
    done = pair.events_of(pair.a)[-1]
    assert isinstance(done, LookupDone) and done.request_id == rid
    assert done.kind == "announce" and done.replied == 1 and done.announced == 1
    assert pair.b.storage.get(b"h" * 20, pair.now, 10, random.Random(0)) == [(A_ADDR[0], 4444)]


def test_an_announce_that_times_out_waiting_for_announce_peer_answers(pair: CorePair) -> None:
    pair.a.routing.node_seen(b"b" * 20, B_ADDR, 0.0)
    # b answers get_peers, but every announce_peer is lost on the way.
    pair.drop = lambda data, src, dst: b"announce_peer" in data
    rid = pair.a.announce(b"h" * 20, 4444, 0.0)
    pair.advance(10.0)
    done = [e for e in pair.events_of(pair.a) if isinstance(e, LookupDone)]
    assert len(done) == 1 and done[0].request_id == rid
    assert done[0].announced == 0 and done[0].replied == 1 and not done[0].timed_out
    assert pair.lost == 1


class _Phased(FindNode):
    """A traversal with a phase of its own after the walk, as a BEP 44 put would have."""

    kind = "phased"
    __slots__ = ("calls",)

    def __init__(self, request_id: int, target: bytes) -> None:
        super().__init__(request_id, target)
        self.calls: list[str] = []

    def started(self, now: float) -> None:
        self.calls.append("started")

    def walk_done(self, now: float) -> bool:
        self.calls.append("walk_done")
        return False  # the phase goes on; this test ends it by hand


def test_a_traversal_subclass_runs_its_own_phase_before_it_is_done() -> None:
    core = make_core()
    t = _Phased(core.new_request_id(), b"t" * 20)
    core.lookups.start(t, 0.0)  # no nodes known: the walk is over at once
    assert t.calls == ["started", "walk_done"] and core.lookups.get(t.id) is t
    assert events(core) == []
    core.lookups.finish(t, 1.0)
    (done,) = events(core)
    assert isinstance(done, LookupDone) and done.kind == "phased" and t.calls[-1] == "walk_done"
    assert len(t.calls) == 2 and core.lookups.get(t.id) is None


def test_traversals_are_told_apart_by_their_class_not_by_the_manager() -> None:
    # The manager runs any Traversal; kind, method and query come from the class.
    assert Traversal.kind == "find_node" and FindNode.method == b"find_node"
    core = make_core()
    core.lookups.start(_Phased(core.new_request_id(), b"t" * 20), 0.0, SEEDS[:1])
    ((q, dst),) = sent_queries(core, 0.0)
    assert q.method == b"find_node" and dst == SEEDS[0]
    assert core.lookups.running("phased") and not core.lookups.running("refresh")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["answer", "error", "silent"]), min_size=1, max_size=40))
def test_every_lookup_ends_whatever_the_network_does(fates: list[str]) -> None:
    # Each query meets the next fate in turn: answered (with a few more nodes to ask),
    # answered with an error, or never answered. The lookup must end, before its deadline
    # unless it is still waiting on silent nodes, and leave nothing pending behind.
    core = make_core(max_pending=4)
    rid = core.find_node(b"t" * 20, 0.0, seeds=SEEDS)
    rng = random.Random(len(fates))
    now, i = 0.0, 0
    done: list[LookupDone] = []
    while not done:
        assert now <= core.config.lookup_timeout_s + core.config.maintenance_s
        for q, dst in sent_queries(core, now):
            fate = fates[i % len(fates)]
            i += 1
            if fate == "answer":
                nodes = b"".join(
                    rng.randbytes(20) + bytes([9, 5, rng.randrange(256), 1]) + b"\x1a\xe1"
                    for _ in range(3)
                )
                r = {b"id": rng.randbytes(20), b"nodes": nodes}
                data = bencode2.bencode({b"r": r, b"t": q.t, b"y": b"r"})
            elif fate == "error":
                data = bencode2.bencode({b"e": [201, b"no"], b"t": q.t, b"y": b"e"})
            else:
                continue
            core.receive_datagram(data, dst, now + 0.05)
        now += 0.1
        core.handle_timer(now)
        done = [e for e in events(core) if isinstance(e, LookupDone)]
    assert [d.request_id for d in done] == [rid]
    assert len(core.lookups) == 0 and core.status(now)["lookups"] == 0
