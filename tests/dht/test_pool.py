"""The bootstrap router's node pool, and a core in bootstrap mode."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dht.config import DhtConfig
from dht.ids import id_to_int
from dht.pool import NodePool
from dht.protocol import DhtProtocol
from dht.wire import KrpcError, Query, Response, decode, encode_query


def addr(i: int) -> tuple[str, int]:
    return (f"{(i >> 16) + 1}.{(i >> 8) & 255}.{i & 255}.1", 6881)  # one /24 each


@settings(max_examples=60)
@given(
    st.lists(st.binary(min_size=20, max_size=20), min_size=0, max_size=300, unique=True),
    st.binary(min_size=20, max_size=20),
)
def test_closest_is_exact(ids: list[bytes], target: bytes) -> None:
    pool = NodePool()
    for i, n in enumerate(ids):
        pool.add(n, addr(i), 0.0)
    t = id_to_int(target)
    want = sorted(ids, key=lambda n: id_to_int(n) ^ t)[:8]
    assert [c.id for c in pool.closest(target, 8)] == want


def test_bounded_oldest_verified_leaves_first() -> None:
    pool = NodePool(max_nodes=100)
    rng = random.Random(1)
    ids = [rng.randbytes(20) for _ in range(150)]
    for i, n in enumerate(ids):
        pool.add(n, addr(i), float(i))
    assert len(pool) == 100
    assert ids[0] not in pool and ids[149] in pool
    stale = pool.stale(5, older_than=60.0)
    assert [c.id for c in stale] == ids[50:55]
    pool.remove(ids[60])
    assert ids[60] not in pool and len(pool) == 99


def test_router_answers_from_pool_and_stores_nothing() -> None:
    rng = random.Random(2)
    core = DhtProtocol(None, rng=rng, now=0.0, config=DhtConfig(bootstrap_mode=True))
    assert core.pool is not None
    for i in range(1000):
        core.pool.add(rng.randbytes(20), addr(i), 0.0)
    target = rng.randbytes(20)
    core.receive_datagram(
        encode_query(b"aa", b"find_node", {b"id": b"q" * 20, b"target": target}, read_only=True),
        ("203.0.113.5", 1),
        1.0,
    )
    (resp,) = [decode(d) for d, _ in core.datagrams_to_send(1.0)]
    assert isinstance(resp, Response)
    assert [n.id for n in resp.nodes] == [c.id for c in core.pool.closest(target)]
    core.receive_datagram(
        encode_query(b"bb", b"get_peers", {b"id": b"q" * 20, b"info_hash": target}, read_only=True),
        ("203.0.113.5", 1),
        1.0,
    )
    (resp,) = [decode(d) for d, _ in core.datagrams_to_send(1.0)]
    assert isinstance(resp, Response) and resp.token is None and len(resp.nodes) == 8
    core.receive_datagram(
        encode_query(
            b"cc",
            b"announce_peer",
            {b"id": b"q" * 20, b"info_hash": target, b"port": 1, b"token": b"x"},
            read_only=True,
        ),
        ("203.0.113.5", 1),
        1.0,
    )
    (resp,) = [decode(d) for d, _ in core.datagrams_to_send(1.0)]
    assert isinstance(resp, KrpcError)
    assert len(core.storage) == 0


def test_router_verifies_queriers_before_handing_them_out() -> None:
    core = DhtProtocol(None, rng=random.Random(3), now=0.0, config=DhtConfig(bootstrap_mode=True))
    assert core.pool is not None
    querier = ("203.0.113.9", 4000)
    core.receive_datagram(encode_query(b"aa", b"ping", {b"id": b"n" * 20}), querier, 1.0)
    out = [decode(d) for d, _ in core.datagrams_to_send(1.0)]
    pings = [m for m in out if isinstance(m, Query)]
    assert len(pings) == 1 and b"n" * 20 not in core.pool
    import bencode2

    core.receive_datagram(
        bencode2.bencode({b"r": {b"id": b"n" * 20}, b"t": pings[0].t, b"y": b"r"}), querier, 1.1
    )
    assert b"n" * 20 in core.pool
