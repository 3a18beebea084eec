"""The answers to other nodes' queries: the handler table of ``dht.queries``, called directly."""

from __future__ import annotations

import random

import pytest

from dht.config import DhtConfig
from dht.events import InfoHashSeen
from dht.protocol import DhtProtocol
from dht.queries import QueryRefusedError
from dht.wire import ERROR_PROTOCOL, Query, unpack_nodes

ASKER = ("9.0.0.2", 7000)
H = b"h" * 20


def make_core(**cfg: object) -> DhtProtocol:
    config = DhtConfig()
    for k, v in cfg.items():
        setattr(config, k, v)
    core = DhtProtocol(b"s" * 20, rng=random.Random(1), now=0.0, config=config)
    rng = random.Random(2)
    for i in range(20):
        core.routing.node_seen(rng.randbytes(20), (f"8.{i + 1}.0.9", 2), 0.0)
    return core


def query(method: bytes, target: bytes | None = None, **args: object) -> Query:
    raw = {k.encode(): v for k, v in args.items()}
    return Query(b"tx", method, b"q" * 20, raw, target)


def test_the_table_holds_one_handler_per_method_we_answer() -> None:
    table = make_core().answers.handlers
    assert set(table) == {
        b"ping",
        b"find_node",
        b"get_peers",
        b"announce_peer",
        b"sample_infohashes",
        b"get",
        b"put",
    }
    assert b"vote" not in table  # the dispatcher answers 204 for what has no handler


def test_ping_and_find_node_answer_with_our_id_and_the_closest_nodes() -> None:
    core = make_core()
    handlers = core.answers.handlers
    assert handlers[b"ping"](query(b"ping"), ASKER, 1.0) == {b"id": b"s" * 20}
    target = b"t" * 20
    r = handlers[b"find_node"](query(b"find_node", target), ASKER, 1.0)
    got = [n.id for n in unpack_nodes(r[b"nodes"])]
    assert sorted(got) == sorted(e.id for e in core.routing.closest(target, 8))
    assert b"nodes6" not in r


def test_get_peers_hands_out_a_token_and_the_stored_peers() -> None:
    core = make_core()
    core.storage.add(H, ("7.7.7.7", 7777), 0.0)
    r = core.answers.handlers[b"get_peers"](query(b"get_peers", H), ASKER, 1.0)
    assert core.tokens.check(r[b"token"], ASKER[0], 1.0, H)
    assert len(r[b"values"]) == 1 and b"nodes" in r


def test_announce_peer_stores_the_peer_or_refuses_a_bad_token() -> None:
    core = make_core()
    announce = core.answers.handlers[b"announce_peer"]
    with pytest.raises(QueryRefusedError) as refused:
        announce(query(b"announce_peer", H, token=b"nope", port=5), ASKER, 1.0)
    assert refused.value.code == ERROR_PROTOCOL
    token = core.tokens.issue(ASKER[0], 1.0, H)
    assert announce(query(b"announce_peer", H, token=token, port=5), ASKER, 1.0) == {
        b"id": b"s" * 20
    }
    assert core.storage.get(H, 1.0, 10, random.Random(0)) == [(ASKER[0], 5)]
    # implied_port (BEP 5): the port the query came from
    announce(query(b"announce_peer", H, token=token, port=5, implied_port=1), ASKER, 1.0)
    assert core.storage.get(H, 1.0, 10, random.Random(0)) == [ASKER]


def test_observing_core_reports_the_info_hashes_it_is_asked_about() -> None:
    core = make_core(observe=True)
    core.answers.handlers[b"get_peers"](query(b"get_peers", H), ASKER, 1.0)
    assert core.next_event() == InfoHashSeen(H, "get_peers", ASKER, None)
    assert core.next_event() is None


def test_a_router_answers_from_its_pool_and_stores_nothing() -> None:
    core = make_core(bootstrap_mode=True)
    assert core.pool is not None
    rng = random.Random(3)
    for i in range(10):
        core.pool.add(rng.randbytes(20), (f"8.8.0.{i + 1}", 1), 0.0)
    r = core.answers.handlers[b"get_peers"](query(b"get_peers", H), ASKER, 1.0)
    assert b"token" not in r
    pooled = {c.id for c in core.pool.closest(H)}
    assert {n.id for n in unpack_nodes(r[b"nodes"])} == pooled
    with pytest.raises(QueryRefusedError):
        core.answers.handlers[b"announce_peer"](
            query(b"announce_peer", H, token=b"x", port=1), ASKER, 1.0
        )


def test_want_without_a_linked_sibling_falls_back_to_our_own_family() -> None:
    core = make_core()
    r = core.answers.handlers[b"find_node"](
        query(b"find_node", b"t" * 20, want=[b"n6"]), ASKER, 1.0
    )
    assert b"nodes6" not in r and len(unpack_nodes(r[b"nodes"])) == 8


def test_sample_infohashes_bep51() -> None:
    core = make_core(sample_count=2)
    for i in range(5):
        core.storage.add(bytes([i]) * 20, ("7.7.7.7", 1), 0.0)
    r = core.answers.handlers[b"sample_infohashes"](
        query(b"sample_infohashes", b"t" * 20), ASKER, 1.0
    )
    assert r[b"num"] == 5 and len(r[b"samples"]) == 2 * 20
    assert r[b"interval"] == core.config.sample_interval_s and b"nodes" in r


def test_answers_follow_a_change_of_node_id() -> None:
    core = make_core()
    core.change_id(b"n" * 20, 1.0)
    assert core.answers.handlers[b"ping"](query(b"ping"), ASKER, 1.0) == {b"id": b"n" * 20}
    r = core.answers.handlers[b"find_node"](query(b"find_node", b"t" * 20), ASKER, 1.0)
    assert len(unpack_nodes(r[b"nodes"])) == 8  # from the rebuilt table
