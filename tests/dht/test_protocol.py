"""The protocol core, driven by hand: bytes and times in, bytes and events out."""

import random

import bencode2
from hypothesis import given, settings
from hypothesis import strategies as st

from dht.config import DhtConfig
from dht.events import LookupDone, PeersFound, QueryAnswered, QueryFailed
from dht.protocol import DhtProtocol
from dht.wire import KrpcError, Query, Response, decode, encode_query, pack_addr
from tests.dht.pair import B_ADDR, CorePair

ME = ("9.0.0.1", 6881)
YOU = ("9.0.0.2", 7000)
CLIENT_ID = b"c" * 20


def core(**cfg: object) -> DhtProtocol:
    config = DhtConfig()
    for k, v in cfg.items():
        setattr(config, k, v)
    return DhtProtocol(b"s" * 20, rng=random.Random(1), now=0.0, config=config)


def ask(
    p: DhtProtocol,
    method: bytes,
    args: dict[bytes, object],
    now: float = 1.0,
    read_only: bool = False,
) -> object:
    p.receive_datagram(
        encode_query(b"tx", method, {b"id": CLIENT_ID, **args}, read_only=read_only), YOU, now
    )
    # The answer, leaving out the ping the node may send to get to know the querier.
    out = [decode(d) for d, dst in p.datagrams_to_send(now) if dst == YOU]
    answers = [m for m in out if not isinstance(m, Query)]
    if not answers:
        return None
    assert len(answers) == 1
    return answers[0]


def test_ping_answer_carries_id_ip_and_version() -> None:
    p = core()
    r = ask(p, b"ping", {})
    assert isinstance(r, Response)
    assert r.t == b"tx" and r.id == b"s" * 20
    assert r.ip == YOU  # BEP 42
    assert r.version is not None and len(r.version) == 4
    assert p.stats.queries_in["ping"] == 1


def test_unknown_method_gets_204_and_bad_args_203() -> None:
    p = core()
    e = ask(p, b"vote", {})
    assert isinstance(e, KrpcError) and e.code == 204
    e = ask(p, b"find_node", {b"target": b"short"})
    assert isinstance(e, KrpcError) and e.code == 203


def test_garbage_is_dropped_without_an_answer() -> None:
    p = core()
    for junk in (b"", b"hello", b"d1:y1:qe", b"i5e"):
        p.receive_datagram(junk, YOU, 1.0)
    assert p.datagrams_to_send(1.0) == []
    assert p.stats.dropped["garbage"] == 4


def test_announce_needs_a_token_from_the_same_ip_then_peers_are_served() -> None:
    p = core()
    h = b"h" * 20
    r = ask(p, b"get_peers", {b"info_hash": h})
    assert isinstance(r, Response) and r.token and r.peers == ()
    bad = ask(p, b"announce_peer", {b"info_hash": h, b"port": 5, b"token": b"nope"})
    assert isinstance(bad, KrpcError) and bad.code == 203
    ok = ask(p, b"announce_peer", {b"info_hash": h, b"port": 5555, b"token": r.token})
    assert isinstance(ok, Response)
    implied = ask(
        p, b"announce_peer", {b"info_hash": h, b"port": 1, b"implied_port": 1, b"token": r.token}
    )
    assert isinstance(implied, Response)
    r2 = ask(p, b"get_peers", {b"info_hash": h})
    assert isinstance(r2, Response)
    # one entry per IP: the implied-port announce replaced the first
    assert r2.peers == ((YOU[0], YOU[1]),)


def test_token_from_another_ip_is_refused() -> None:
    p = core()
    h = b"h" * 20
    r = ask(p, b"get_peers", {b"info_hash": h})
    assert isinstance(r, Response) and r.token
    p.receive_datagram(
        encode_query(
            b"tx",
            b"announce_peer",
            {b"id": CLIENT_ID, b"info_hash": h, b"port": 9, b"token": r.token},
        ),
        ("9.9.9.9", 1),
        2.0,
    )
    ((data, _),) = p.datagrams_to_send(2.0)
    e = decode(data)
    assert isinstance(e, KrpcError) and e.code == 203


def test_read_only_node_answers_nothing_and_marks_queries() -> None:
    p = core(read_only=True)
    assert ask(p, b"ping", {}) is None
    p.ping(YOU, 1.0)
    ((data, _),) = p.datagrams_to_send(1.0)
    assert bencode2.bdecode(data)[b"ro"] == 1


def test_read_only_querier_is_not_added_to_the_table() -> None:
    p = core()
    ask(p, b"ping", {}, read_only=True)
    assert p.routing.candidates(8) == []
    ask(p, b"ping", {})
    assert [e.id for e in p.routing.candidates(8)] == [CLIENT_ID]


def test_sample_infohashes_bep51() -> None:
    p = core()
    r = ask(p, b"get_peers", {b"info_hash": b"a" * 20})
    assert isinstance(r, Response) and r.token
    ask(p, b"announce_peer", {b"info_hash": b"a" * 20, b"port": 1, b"token": r.token})
    s = ask(p, b"sample_infohashes", {b"target": b"t" * 20})
    assert isinstance(s, Response)
    assert s.values[b"samples"] == b"a" * 20
    assert s.values[b"num"] == 1
    assert 0 <= s.values[b"interval"] <= 21600


def test_ping_answered_and_timed_out() -> None:
    p = core()
    rid = p.ping(YOU, 1.0)
    ((data, dst),) = p.datagrams_to_send(1.0)
    q = decode(data)
    assert isinstance(q, Query) and dst == YOU
    reply = bencode2.bencode({b"r": {b"id": b"y" * 20}, b"t": q.t, b"y": b"r"})
    p.receive_datagram(reply, YOU, 1.5)
    ev = p.next_event()
    assert isinstance(ev, QueryAnswered) and ev.request_id == rid and ev.rtt == 0.5
    assert b"y" * 20 in p.routing
    rid2 = p.ping(YOU, 2.0)
    p.datagrams_to_send(2.0)
    timer = p.get_timer()
    assert timer is not None and timer <= 2.0 + p.config.query_timeout_s
    p.handle_timer(2.0 + p.config.query_timeout_s)
    ev = p.next_event()
    assert isinstance(ev, QueryFailed) and ev.request_id == rid2 and ev.reason == "timeout"


def test_reply_from_the_wrong_address_is_ignored() -> None:
    p = core()
    p.ping(YOU, 1.0)
    ((data, _),) = p.datagrams_to_send(1.0)
    t = decode(data).t
    p.receive_datagram(
        bencode2.bencode({b"r": {b"id": b"y" * 20}, b"t": t, b"y": b"r"}), ("6.6.6.6", 1), 1.1
    )
    assert p.next_event() is None
    assert p.stats.dropped["unexpected response"] == 1


def test_get_peers_lookup_between_two_cores(pair: CorePair) -> None:
    a, b = pair.a, pair.b
    h = b"h" * 20
    b.storage.add(h, ("7.7.7.7", 7777), 0.0)
    rid = a.get_peers(h, 0.0, seeds=[B_ADDR])
    pair.run()
    events = pair.events_of(a)
    assert PeersFound(rid, (("7.7.7.7", 7777),)) in events
    done = [e for e in events if isinstance(e, LookupDone)]
    assert done and done[0].replied == 1 and done[0].nodes[0].id == b"b" * 20
    assert b"b" * 20 in a.routing


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_datagrams_never_raise_and_node_keeps_answering(junk: bytes) -> None:
    p = core()
    p.receive_datagram(junk, YOU, 1.0)
    p.datagrams_to_send(1.0)
    assert isinstance(ask(p, b"ping", {}, now=1.1), Response)


_MUTATION_BASE = encode_query(
    b"tx",
    b"announce_peer",
    {b"id": CLIENT_ID, b"info_hash": b"h" * 20, b"port": 1, b"token": b"t" * 8},
)


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.integers(0, len(_MUTATION_BASE) - 1), st.integers(0, 255)), max_size=6)
)
def test_mutated_queries_get_an_answer_or_are_dropped(mutations: list[tuple[int, int]]) -> None:
    data = bytearray(_MUTATION_BASE)
    for pos, val in mutations:
        data[pos] = val
    p = core()
    p.receive_datagram(bytes(data), YOU, 1.0)
    out = [decode(d) for d, _ in p.datagrams_to_send(1.0)]
    assert len([m for m in out if not isinstance(m, Query)]) <= 1
    assert isinstance(ask(p, b"ping", {}, now=1.1), Response)


def test_answers_stay_small() -> None:
    p = core()
    h = b"h" * 20
    for i in range(400):
        p.storage.add(h, (f"8.8.{i // 250}.{i % 250}", 1), 0.0)
    for i in range(300):
        p.routing.node_seen(random.Random(i).randbytes(20), (f"8.9.{i // 250}.{i % 250}", 2), 0.0)
    q = encode_query(b"tx", b"get_peers", {b"id": CLIENT_ID, b"info_hash": h}, read_only=True)
    p.receive_datagram(q, YOU, 1.0)
    ((data, _),) = p.datagrams_to_send(1.0)
    assert len(data) < 1024
    assert pack_addr(YOU) in data  # the BEP 42 ip key
