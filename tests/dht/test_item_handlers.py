"""BEP 44 ``get``/``put`` and BEP 33 scrape answers: the handlers of ``dht.queries``, each
defence against the attack it stops (forged signatures, stale or racing seqs, oversized
values and salts, tokens from elsewhere, one network filling the store)."""

from __future__ import annotations

import random
from typing import Any

import bencode2
import pytest

from dht.bloom import ScrapeFilter
from dht.config import DhtConfig
from dht.items import (
    ERROR_BAD_SIGNATURE,
    ERROR_CAS_MISMATCH,
    ERROR_SALT_TOO_BIG,
    ERROR_SEQ_TOO_OLD,
    ERROR_V_TOO_BIG,
    immutable_item,
    mutable_item,
    put_arguments,
)
from dht.protocol import DhtProtocol
from dht.queries import QueryRefusedError
from dht.wire import ERROR_PROTOCOL, Query, decode, encode_query

ASKER = ("9.0.0.2", 7000)
SEED = bytes(range(32))


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


def get(core: DhtProtocol, target: bytes, ip: str = ASKER[0], **args: object) -> dict[bytes, Any]:
    return core.answers.handlers[b"get"](query(b"get", target, **args), (ip, 7000), 1.0)


def put(core: DhtProtocol, args: dict[bytes, Any], ip: str = ASKER[0], now: float = 1.0) -> int:
    """Put with ``args`` (a fresh token for the item's target unless given); 0 if stored,
    else the error code."""
    q = Query(b"tx", b"put", b"q" * 20, args, None)
    try:
        core.answers.handlers[b"put"](q, (ip, 7000), now)
    except QueryRefusedError as exc:
        return exc.code
    return 0


def token_for(core: DhtProtocol, target: bytes, ip: str = ASKER[0]) -> bytes:
    return core.tokens.issue(ip, 1.0, target)


def test_an_immutable_item_put_is_got_back_with_a_token_and_nodes() -> None:
    core = make_core()
    item = immutable_item(b"Hello World!")
    assert put(core, put_arguments(item, token_for(core, item.target))) == 0
    r = get(core, item.target)
    assert r[b"v"] == b"Hello World!"
    assert core.tokens.check(r[b"token"], ASKER[0], 1.0, item.target)
    assert len(r[b"nodes"]) == 8 * 26
    assert b"k" not in r and b"sig" not in r and b"seq" not in r


def test_a_mutable_item_with_salt_is_got_back_signed_and_salt_is_not_echoed() -> None:
    core = make_core()
    item = mutable_item(SEED, {b"a": [1, b"x"]}, seq=4, salt=b"foo")
    assert put(core, put_arguments(item, token_for(core, item.target))) == 0
    r = get(core, item.target)
    assert (r[b"k"], r[b"sig"], r[b"seq"], r[b"v"]) == (item.k, item.sig, 4, {b"a": [1, b"x"]})
    assert b"salt" not in r


def test_get_with_seq_leaves_out_the_value_unless_ours_is_newer() -> None:
    core = make_core()
    item = mutable_item(SEED, b"v", seq=5)
    put(core, put_arguments(item, token_for(core, item.target)))
    stale = get(core, item.target, seq=5)
    assert stale[b"seq"] == 5 and b"v" not in stale and b"sig" not in stale
    assert get(core, item.target, seq=4)[b"v"] == b"v"


def test_a_get_for_a_missing_item_still_gives_a_token_and_nodes() -> None:
    r = get(make_core(), b"t" * 20)
    assert b"token" in r and b"nodes" in r and b"v" not in r


def test_a_forged_signature_is_refused_with_206() -> None:
    core = make_core()
    item = mutable_item(SEED, b"honest", seq=1)
    args = put_arguments(item, token_for(core, item.target))
    args[b"v"] = b"forged"  # the attacker changes the value, keeps the signature
    assert put(core, args) == ERROR_BAD_SIGNATURE
    args = put_arguments(item, token_for(core, item.target))
    args[b"sig"] = bytes(64)
    assert put(core, args) == ERROR_BAD_SIGNATURE
    assert item.target not in core.answers.items


def test_a_key_that_is_not_the_target_gets_a_token_for_nothing() -> None:
    # An attacker signs with its own key but wants to overwrite the victim's target: the
    # target is SHA-1(k + salt), so its put lands elsewhere and the token does not fit.
    core = make_core()
    victim = mutable_item(SEED, b"mine", seq=1)
    put(core, put_arguments(victim, token_for(core, victim.target)))
    attacker = mutable_item(bytes(32), b"theirs", seq=9)
    assert put(core, put_arguments(attacker, token_for(core, victim.target))) == ERROR_PROTOCOL
    assert core.answers.items.get(victim.target, 1.0) == victim


def test_an_oversized_value_is_205_and_an_oversized_salt_207() -> None:
    core = make_core()
    big = b"x" * 996  # "996:" + 996 bytes = 1000 bytes bencoded: the largest allowed
    ok = immutable_item(big)
    assert put(core, put_arguments(ok, token_for(core, ok.target))) == 0
    args = {b"token": token_for(core, b"t" * 20), b"v": big + b"y"}
    assert put(core, args) == ERROR_V_TOO_BIG
    item = mutable_item(SEED, b"v", seq=1, salt=b"s" * 64)
    args = put_arguments(item, token_for(core, item.target))
    args[b"salt"] = b"s" * 65
    assert put(core, args) == ERROR_SALT_TOO_BIG


def test_a_token_from_another_ip_or_for_another_target_is_refused() -> None:
    core = make_core()
    item = immutable_item(b"spam")
    assert put(core, put_arguments(item, token_for(core, item.target, "9.9.9.9"))) == 203
    assert put(core, put_arguments(item, token_for(core, b"o" * 20))) == 203
    assert put(core, put_arguments(item, b"short")) == 203
    assert put(core, {b"v": b"spam"}) == 203  # no token at all
    assert item.target not in core.answers.items


def test_a_lower_seq_is_302_and_a_wrong_cas_301() -> None:
    core = make_core()
    v2 = mutable_item(SEED, b"two", seq=2)
    put(core, put_arguments(v2, token_for(core, v2.target)))
    v1 = mutable_item(SEED, b"one", seq=1)
    assert put(core, put_arguments(v1, token_for(core, v1.target))) == ERROR_SEQ_TOO_OLD
    # the same seq with another value would let a replay of a racing writer win: refused
    other = mutable_item(SEED, b"TWO", seq=2)
    assert put(core, put_arguments(other, token_for(core, other.target))) == ERROR_SEQ_TOO_OLD
    v3 = mutable_item(SEED, b"three", seq=3)
    assert put(core, put_arguments(v3, token_for(core, v3.target), cas=1)) == ERROR_CAS_MISMATCH
    assert core.answers.items.get(v2.target, 1.0) == v2
    assert put(core, put_arguments(v3, token_for(core, v3.target), cas=2)) == 0
    assert core.answers.items.get(v3.target, 1.0) == v3
    # the same item again is a refresh, accepted
    assert put(core, put_arguments(v3, token_for(core, v3.target))) == 0


def test_cas_is_ignored_when_nothing_is_stored() -> None:
    core = make_core()
    item = mutable_item(SEED, b"first", seq=1)
    assert put(core, put_arguments(item, token_for(core, item.target), cas=7)) == 0


def test_items_expire_two_hours_after_their_last_put() -> None:
    core = make_core()
    item = immutable_item(b"short-lived")
    put(core, put_arguments(item, token_for(core, item.target)), now=1.0)
    store = core.answers.items
    assert store.get(item.target, 1.0 + 7199) == item
    assert store.get(item.target, 1.0 + 7201) is None


def test_one_network_cannot_fill_the_store_beyond_its_cap() -> None:
    # A flood of puts from one /24 only displaces its own items; honest items stay.
    core = make_core(max_items_per_source=4, max_items=100)
    honest = immutable_item(b"honest")
    put(core, put_arguments(honest, token_for(core, honest.target, "5.5.5.5")), ip="5.5.5.5")
    for i in range(50):
        ip = f"6.6.6.{i % 250}"
        spam = immutable_item(b"spam %d" % i)
        assert put(core, put_arguments(spam, token_for(core, spam.target, ip)), ip=ip) == 0
    store = core.answers.items
    assert store.count_from("6.6.6.1") == 4
    assert store.get(honest.target, 1.0) == honest
    assert len(store) == 5


def test_total_bytes_stay_bounded_under_a_flood_from_many_networks() -> None:
    core = make_core(max_item_bytes=20_000)
    for i in range(200):
        ip = f"7.{i}.1.1"
        spam = immutable_item(bytes([i % 256]) * 990 + b"%03d" % i)
        put(core, put_arguments(spam, token_for(core, spam.target, ip)), ip=ip)
    assert core.answers.items.bytes_used <= 20_000


def test_a_router_stores_no_items() -> None:
    core = make_core(bootstrap_mode=True)
    item = immutable_item(b"x")
    assert put(core, put_arguments(item, token_for(core, item.target))) == ERROR_PROTOCOL
    assert b"token" not in get(core, item.target)


def test_a_big_item_answer_to_a_remote_querier_keeps_v_and_drops_nodes() -> None:
    # Amplification: a spoofed 90-byte get must not buy a full answer of ~1.3 KB plus nodes.
    core = make_core()
    item = immutable_item(b"x" * 990)
    put(core, put_arguments(item, token_for(core, item.target)))
    data = encode_query(b"tx", b"get", {b"id": b"q" * 20, b"target": item.target}, read_only=True)
    core.receive_datagram(data, ("9.0.0.2", 7000), 1.0)
    [(answer, _)] = core.datagrams_to_send(1.0)
    r = bencode2.bdecode(answer)[b"r"]
    assert r[b"v"] == b"x" * 990
    assert not r.get(b"nodes")
    assert len(answer) < 1100


def test_put_over_the_wire_is_answered_with_the_bep44_error_list() -> None:
    core = make_core()
    item = mutable_item(SEED, b"v", seq=1)
    args = put_arguments(item, token_for(core, item.target))
    args[b"sig"] = bytes(64)
    args[b"id"] = b"q" * 20
    core.receive_datagram(encode_query(b"tx", b"put", args, read_only=True), ASKER, 1.0)
    [(answer, _)] = core.datagrams_to_send(1.0)
    err = decode(answer)
    assert getattr(err, "code", None) == ERROR_BAD_SIGNATURE


# --- BEP 33 -------------------------------------------------------------------------------------

H = b"h" * 20


def announce(core: DhtProtocol, ip: str, *, seed: bool) -> None:
    args: dict[str, object] = {"token": core.tokens.issue(ip, 1.0, H), "port": 6000}
    if seed:
        args["seed"] = 1
    core.answers.handlers[b"announce_peer"](query(b"announce_peer", H, **args), (ip, 1), 1.0)


def test_get_peers_with_scrape_answers_the_seed_and_peer_filters() -> None:
    core = make_core()
    seeds = [f"20.0.{i}.1" for i in range(30)]
    peers = [f"30.0.{i}.1" for i in range(12)]
    for ip in seeds:
        announce(core, ip, seed=True)
    for ip in peers:
        announce(core, ip, seed=False)
    handler = core.answers.handlers[b"get_peers"]
    r = handler(query(b"get_peers", H, scrape=1), ASKER, 1.0)
    assert r[b"BFsd"] == ScrapeFilter.of(seeds).to_bytes()
    assert r[b"BFpe"] == ScrapeFilter.of(peers).to_bytes()
    assert b"BFsd" not in handler(query(b"get_peers", H), ASKER, 1.0)
    assert b"BFsd" not in handler(query(b"get_peers", b"n" * 20, scrape=1), ASKER, 1.0)


def test_a_peer_that_turns_seed_moves_to_the_seed_filter() -> None:
    core = make_core()
    announce(core, "20.0.0.1", seed=False)
    handler = core.answers.handlers[b"get_peers"]
    r = handler(query(b"get_peers", H, scrape=1), ASKER, 1.0)
    assert r[b"BFpe"] == ScrapeFilter.of(["20.0.0.1"]).to_bytes()
    announce(core, "20.0.0.1", seed=True)  # the cached filters must not be served stale
    r = handler(query(b"get_peers", H, scrape=1), ASKER, 1.0)
    assert r[b"BFsd"] == ScrapeFilter.of(["20.0.0.1"]).to_bytes()
    assert ScrapeFilter(r[b"BFpe"]).is_empty()


@pytest.mark.parametrize("count", [0, 1])
def test_scrape_filters_go_with_the_swarm_when_it_expires(count: int) -> None:
    core = make_core()
    for i in range(count):
        announce(core, f"20.0.{i}.1", seed=True)
    later = 1.0 + core.config.peer_ttl_s + 1
    assert core.storage.scrape(H, later) is None


def test_a_scrape_answer_to_a_remote_querier_keeps_the_filters_and_trims_values() -> None:
    # BEP 33's filters are 2 x 256 bytes: values and nodes give way so the answer stays
    # within the amplification budget (768 bytes for a ~100-byte query).
    core = make_core()
    for i in range(50):
        announce(core, f"20.0.{i}.1", seed=i % 2 == 0)
    args = {b"id": b"q" * 20, b"info_hash": H, b"scrape": 1}
    core.receive_datagram(encode_query(b"tx", b"get_peers", args, read_only=True), ASKER, 1.0)
    [(answer, _)] = core.datagrams_to_send(1.0)
    r = bencode2.bdecode(answer)[b"r"]
    assert len(answer) <= core.config.answer_floor
    assert ScrapeFilter(r[b"BFsd"]).estimate() == pytest.approx(25, abs=2)
    assert ScrapeFilter(r[b"BFpe"]).estimate() == pytest.approx(25, abs=2)
    assert len(r.get(b"values", [])) < 50


def test_the_status_line_counts_stored_items() -> None:
    core = make_core()
    item = immutable_item(b"counted")
    put(core, put_arguments(item, token_for(core, item.target)))
    assert core.status(1.0)["items"] == 1
