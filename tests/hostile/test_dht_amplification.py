"""Amplification: no answer of the DHT core is much bigger than the query that asked for it.

A forged source makes us send our answer to a victim, so the worst answer/query size ratio
over every query type must stay bounded: a full IPv4 and IPv6 table behind a BEP 32 ``want``,
a full swarm of IPv6 peers in ``values``, a big store behind ``sample_infohashes``. The cap
is ``max(answer_floor, answer_ratio * query)``: the floor (768 bytes) still holds a full BEP 51
answer (20 samples and 8 nodes), without which crawlers could not index a node.
"""

from __future__ import annotations

import random

import pytest

from dht.config import DhtConfig
from dht.ids import ID_BITS
from dht.protocol import DhtProtocol
from dht.wire import Query, Response, decode, encode_query, unpack_nodes

VICTIM = ("198.51.100.99", 53)
RATIO = DhtConfig().answer_ratio
FLOOR = DhtConfig().answer_floor


def loaded_pair() -> tuple[DhtProtocol, DhtProtocol]:
    """An IPv4 and an IPv6 core, linked (BEP 32), with full tables and a big peer store."""
    rng = random.Random(7)
    v4 = DhtProtocol(b"\x00" * 20, rng=random.Random(1), now=0.0, config=DhtConfig(), family=4)
    v6 = DhtProtocol(b"\x00" * 20, rng=random.Random(2), now=0.0, config=DhtConfig(), family=6)
    v4.sibling, v6.sibling = v6, v4
    for i in range(600):
        node_id = rng.randbytes(20)
        v4.routing.node_seen(node_id, (f"{i % 200 + 1}.{i // 200}.0.7", 6881), 1.0)
        v6.routing.node_seen(node_id, (f"2001:db8:{i:x}::1", 6881), 1.0)
    for core in (v4, v6):
        for h in range(2000):
            info_hash = h.to_bytes(20, "big")
            core.storage.add(info_hash, ("203.0.113.1", 1), 1.0)
    for i in range(500):  # a big swarm, IPv6 peers in the v6 core's values
        v4.storage.add(b"H" * 20, (f"198.18.{i // 250}.{i % 250 + 1}", 6881), 1.0)
        v6.storage.add(b"H" * 20, (f"2001:db8:1:{i:x}::1", 6881), 1.0)
    return v4, v6


def queries() -> list[tuple[bytes, dict[bytes, object]]]:
    nid = b"q" * 20
    target = (1 << (ID_BITS - 1)).to_bytes(20, "big")
    want: dict[bytes, object] = {b"want": [b"n4", b"n6"]}
    return [
        (b"ping", {b"id": nid}),
        (b"find_node", {b"id": nid, b"target": target}),
        (b"find_node", {b"id": nid, b"target": target, **want}),
        (b"get_peers", {b"id": nid, b"info_hash": b"H" * 20}),
        (b"get_peers", {b"id": nid, b"info_hash": b"H" * 20, **want}),
        (b"get_peers", {b"id": nid, b"info_hash": b"X" * 20, **want}),
        (b"sample_infohashes", {b"id": nid, b"target": target}),
        (b"sample_infohashes", {b"id": nid, b"target": target, **want}),
        (b"announce_peer", {b"id": nid, b"info_hash": b"H" * 20, b"port": 1, b"token": b"x"}),
        (b"no_such_method", {b"id": nid}),
    ]


@pytest.mark.parametrize("family", [4, 6])
def test_worst_answer_to_query_ratio_is_bounded(family: int) -> None:
    v4, v6 = loaded_pair()
    core = v4 if family == 4 else v6
    victim = VICTIM if family == 4 else ("2001:db8:ffff::99", 53)
    worst = 0.0
    for method, args in queries():
        data = encode_query(b"tt", method, args)
        core.receive_datagram(data, victim, 2.0)
        out = core.datagrams_to_send(2.0)
        assert len(out) <= 1
        for answer, dst in out:
            assert dst == victim
            assert len(answer) <= max(FLOOR, RATIO * len(data)), method
            worst = max(worst, len(answer) / len(data))
    # Today's answers reached 9-16x; the smallest query with a list to answer (find_node,
    # get_peers, sample_infohashes) is about 95 bytes.
    assert worst <= FLOOR / 90
    print(f"worst answer/query ratio, IPv{family}: {worst:.2f}")
    del v4, v6


def test_trimmed_answers_still_carry_what_matters() -> None:
    v4, v6 = loaded_pair()
    data = encode_query(
        b"tt", b"get_peers", {b"id": b"q" * 20, b"info_hash": b"H" * 20, b"want": [b"n4", b"n6"]}
    )
    v6.receive_datagram(data, ("2001:db8:ffff::99", 53), 2.0)
    ((answer, _),) = v6.datagrams_to_send(2.0)
    r = decode(answer)
    assert isinstance(r, Response)
    assert r.token and r.peers  # still a useful answer: a token and some peers
    assert len(answer) <= FLOOR
    data = encode_query(b"tt", b"sample_infohashes", {b"id": b"q" * 20, b"target": b"\x01" * 20})
    v4.receive_datagram(data, VICTIM, 2.0)
    ((answer, _),) = v4.datagrams_to_send(2.0)
    r = decode(answer)
    assert isinstance(r, Response)
    assert r.values[b"num"] == len(v4.storage)
    assert r.values[b"samples"] and len(r.values[b"samples"]) % 20 == 0
    assert unpack_nodes(r.values[b"nodes"])  # whole nodes, never a cut one


def test_a_big_query_may_get_a_big_answer() -> None:
    """The cap follows the query: padding a query (as BEP 44 puts are) earns a bigger answer."""
    _, v6 = loaded_pair()
    args: dict[bytes, object] = {
        b"id": b"q" * 20,
        b"info_hash": b"H" * 20,
        b"want": [b"n4", b"n6"],
        b"pad": b"p" * 300,
    }
    data = encode_query(b"tt", b"get_peers", args)
    v6.receive_datagram(data, ("2001:db8:ffff::99", 53), 2.0)
    ((answer, _),) = v6.datagrams_to_send(2.0)
    assert FLOOR < len(answer) <= RATIO * len(data)
    assert isinstance(decode(data), Query)
