import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dht.ids import bucket_index, id_to_int, random_id, random_id_in_bucket
from dht.routing import GOOD_FOR_S, AddResult, RoutingTable

OWN = bytes(20)


def addr(i: int) -> tuple[str, int]:
    return (f"1.{i % 250 + 1}.{i // 250}.2", 6881)  # one /24 each: the table limits /24s


def test_own_id_is_never_stored() -> None:
    t = RoutingTable(OWN, now=0)
    assert t.node_seen(OWN, addr(1), 0) is AddResult.IGNORED
    assert not t.heard_about(OWN, addr(1), 0)
    assert len(t) == 0


def test_far_bucket_holds_k_then_caches() -> None:
    t = RoutingTable(OWN, now=0, k=8)
    rng = random.Random(3)
    # ids whose first bit differs from ours all land in bucket 0, which must not split
    # once the table has split past it.
    near = [random_id_in_bucket(0, 150, rng) for _ in range(9)]
    for i, n in enumerate(near):
        t.node_seen(n, addr(i), 0)
    far = [random_id_in_bucket(0, 0, rng) for _ in range(12)]
    results = [t.node_seen(n, addr(100 + i), 0) for i, n in enumerate(far)]
    assert results[:8] == [AddResult.ADDED] * 8
    assert set(results[8:]) == {AddResult.CACHED}
    assert sum(1 for e in t if bucket_index(0, e.id_int) == 0) == 8


def test_bucket_holding_own_id_splits() -> None:
    t = RoutingTable(OWN, now=0, k=8)
    rng = random.Random(4)
    for i in range(200):
        t.node_seen(random_id(rng), addr(i), 0)
    assert t.bucket_count > 1
    for b in t.buckets():
        assert len(b.nodes) <= 8


@settings(max_examples=50)
@given(
    st.lists(st.binary(min_size=20, max_size=20), max_size=120), st.binary(min_size=20, max_size=20)
)
def test_invariants_and_closest_match_brute_force(ids: list[bytes], target: bytes) -> None:
    t = RoutingTable(OWN, now=0, k=8)
    for i, n in enumerate(ids):
        t.node_seen(n, addr(i), 0)
    entries = list(t)
    assert all(e.id != OWN for e in entries)
    assert len({e.id for e in entries}) == len(entries)
    for b in t.buckets():
        assert len(b.nodes) <= 8
    tgt = id_to_int(target)
    expected = sorted((e.id for e in entries), key=lambda i: id_to_int(i) ^ tgt)[:8]
    assert [e.id for e in t.closest(target, 8)] == expected


def test_liveness_good_questionable_bad() -> None:
    t = RoutingTable(OWN, now=0, k=8, max_fails=2)
    n = b"\x80" + bytes(19)
    t.node_seen(n, addr(1), 0)
    assert t.counts(10) == (1, 0, 0)
    # 15 minutes without news: questionable, and due for a ping
    assert t.counts(GOOD_FOR_S + 1) == (0, 1, 0)
    assert [e.id for e in t.questionable(GOOD_FOR_S + 1)] == [n]
    # it queried us recently and had answered before: good again
    t.node_queried(n, addr(1), GOOD_FOR_S + 2)
    assert t.counts(GOOD_FOR_S + 3) == (1, 0, 0)
    t.node_failed(n, GOOD_FOR_S + 4)
    t.node_failed(n, GOOD_FOR_S + 5)
    assert t.counts(GOOD_FOR_S + 6) == (0, 0, 1)
    assert t.closest(n) == []  # bad nodes are not handed out


def test_bad_node_is_replaced_by_a_confirmed_replacement() -> None:
    t = RoutingTable(OWN, now=0, k=2, max_fails=2)
    rng = random.Random(9)
    # fill the far bucket after a split has happened
    for i in range(6):
        t.node_seen(random_id_in_bucket(0, 100, rng), addr(i), 0)
    far = [random_id_in_bucket(0, 0, rng) for _ in range(3)]
    for i, n in enumerate(far):
        t.node_seen(n, addr(50 + i), 0)
    assert far[2] not in t
    t.node_failed(far[0], 1)
    t.node_failed(far[0], 2)
    assert far[0] not in t
    assert far[2] in t


def test_node_queried_unknown_goes_to_cache_and_is_a_candidate() -> None:
    t = RoutingTable(OWN, now=0)
    n = b"\x01" + bytes(19)
    assert t.node_queried(n, addr(1), 0) is True
    assert n not in t  # not good until it answers us
    assert [e.id for e in t.candidates(8)] == [n]
    t.node_seen(n, addr(1), 1)
    assert n in t
    assert t.candidates(8) == []


def test_known_id_from_a_new_address_does_not_displace_a_good_node() -> None:
    t = RoutingTable(OWN, now=0)
    n = b"\x01" + bytes(19)
    t.node_seen(n, addr(1), 0)
    assert t.node_seen(n, addr(2), 1) is AddResult.IGNORED
    entry = t.get(n)
    assert entry is not None and entry.addr == addr(1)


def test_stale_buckets() -> None:
    t = RoutingTable(OWN, now=0)
    t.node_seen(b"\x01" + bytes(19), addr(1), 0)
    assert t.stale_buckets(10) == []
    assert t.stale_buckets(GOOD_FOR_S) == [0]
    t.refreshed(0, GOOD_FOR_S)  # a refresh lookup went into it
    assert t.stale_buckets(GOOD_FOR_S + 10) == []
    assert t.stale_buckets(2 * GOOD_FOR_S) == [0]


@settings(max_examples=50)
@given(
    st.lists(st.binary(min_size=20, max_size=20), max_size=200, unique=True),
    st.lists(st.binary(min_size=20, max_size=20), min_size=1, max_size=10),
    st.lists(st.integers(0, 199), max_size=30),
    st.lists(st.binary(min_size=20, max_size=20), max_size=12, unique=True),
)
def test_compact_answer_is_the_k_closest_as_a_set(
    ids: list[bytes], targets: list[bytes], failures: list[int], later: list[bytes]
) -> None:
    t = RoutingTable(OWN, now=0, k=8)
    for i, n in enumerate(ids):
        t.node_seen(n, addr(i), 0)
    for rnd in range(3):
        for target in targets:
            data = t.closest_compact(target)
            got = {data[i : i + 20] for i in range(0, len(data), 26)}
            assert got == {e.id for e in t.closest(target, 8)}
        # failures change liveness and new nodes arrive: cached answers must follow
        for f in failures:
            if f < len(ids):
                t.node_failed(ids[f], 1 + rnd)
        for i, n in enumerate(later):
            t.node_seen(n, addr(1000 + i), 1 + rnd)
