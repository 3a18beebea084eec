from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dht.items import CAS_MISMATCH, SEQ_TOO_OLD, Item, immutable_item, mutable_item
from dht.itemstore import (
    ITEM_TTL_S,
    LARGEST_ITEM_BYTES,
    ItemStore,
    item_bytes,
    source_prefix,
)

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))


def test_put_then_get_and_unknown_targets() -> None:
    store = ItemStore()
    plain = immutable_item(b"hello")
    signed = mutable_item(SEED, {b"a": 1}, seq=3, salt=b"s")
    assert store.put(plain, "10.0.0.1", now=0) is None
    assert store.put(signed, "10.0.0.1", now=0) is None
    assert store.get(plain.target, 1) == plain
    assert store.get(signed.target, 1) == signed
    assert store.get(b"\x00" * 20, 1) is None
    assert len(store) == 2 and plain.target in store
    assert store.bytes_used == item_bytes(plain) + item_bytes(signed)
    assert item_bytes(signed) == 20 + len(signed.v) + 32 + 64 + 1


def test_items_expire_unless_put_again() -> None:
    store = ItemStore(ttl_s=100)
    a, b = immutable_item(b"a"), immutable_item(b"b")
    store.put(a, "10.0.0.1", now=0)
    store.put(b, "10.0.0.1", now=0)
    assert store.get(a.target, 99.9) == a
    store.put(a, "10.9.9.9", now=50)  # a refresh, from anyone
    assert store.get(b.target, 100) is None  # gone at its deadline, even before expire()
    assert store.get(a.target, 149.9) == a
    assert store.expire(149.9) == 0
    assert store.expire(150) == 1
    assert len(store) == 0 and store.bytes_used == 0
    assert store.count_from("10.0.0.1") == 0


def test_default_lifetime_is_two_hours() -> None:
    assert ITEM_TTL_S == 7200
    store = ItemStore()
    item = immutable_item(b"x")
    store.put(item, "10.0.0.1", now=0)
    assert store.get(item.target, 7199) == item
    assert store.get(item.target, 7200) is None


def test_seq_only_moves_forward_and_cas_must_match() -> None:
    store = ItemStore(ttl_s=100)
    v5 = mutable_item(SEED, b"five", seq=5)
    v6 = mutable_item(SEED, b"six", seq=6)
    v7 = mutable_item(SEED, b"seven", seq=7)
    assert store.put(v5, "10.0.0.1", now=0, cas=99) is None  # cas ignored: nothing stored
    assert store.put(v6, "10.0.0.1", now=1, cas=4) == CAS_MISMATCH
    assert store.put(v6, "10.0.0.1", now=1, cas=5) is None
    assert store.put(v5, "10.0.0.1", now=2) == SEQ_TOO_OLD
    assert store.put(mutable_item(SEED, b"other six", seq=6), "10.0.0.1", now=2) == SEQ_TOO_OLD
    assert store.get(v6.target, 3) == v6
    assert store.put(v6, "10.0.0.1", now=50) is None  # the same item: a refresh
    assert store.get(v6.target, 149) == v6
    assert store.put(v7, "10.0.0.1", now=60) is None
    assert store.get(v7.target, 61) == v7
    assert store.bytes_used == item_bytes(v7)
    # Once the item has expired, nothing is stored: a lower seq is welcome again.
    assert store.put(v5, "10.0.0.1", now=500, cas=1) is None
    assert store.get(v5.target, 501) == v5


def test_each_network_has_a_cap_and_pays_for_its_own_excess() -> None:
    store = ItemStore(max_per_source=2)
    others = immutable_item(b"someone else")
    store.put(others, "10.0.1.1", now=0)
    items = [immutable_item(i) for i in range(3)]
    for i, item in enumerate(items):
        store.put(item, f"10.0.0.{i + 1}", now=i)  # one /24
    assert store.count_from("10.0.0.200") == 2
    assert items[0].target not in store
    assert items[1].target in store and items[2].target in store
    assert others.target in store
    # A dual-stack socket's view of the same network counts against the same cap.
    store.put(immutable_item(b"mapped"), "::ffff:10.0.0.9", now=5)
    assert store.count_from("10.0.0.1") == 2 and items[1].target not in store


def test_ipv6_sources_are_capped_per_64() -> None:
    store = ItemStore(max_per_source=1)
    a, b, c = (immutable_item(x) for x in (b"a", b"b", b"c"))
    store.put(a, "2001:db8::1", now=0)
    store.put(b, "2001:db8:0:1::1", now=0)  # another /64
    assert a.target in store and b.target in store
    store.put(c, "2001:db8::ffff:1", now=1)  # a's /64
    assert a.target not in store and c.target in store


def test_charge_stays_on_refresh_and_moves_on_change() -> None:
    store = ItemStore()
    v1 = mutable_item(SEED, b"one", seq=1)
    store.put(v1, "10.0.0.1", now=0)
    store.put(v1, "192.0.2.1", now=1)  # a refresh from another network
    assert store.count_from("10.0.0.1") == 1 and store.count_from("192.0.2.1") == 0
    store.put(mutable_item(SEED, b"two", seq=2), "192.0.2.1", now=2)
    assert store.count_from("10.0.0.1") == 0 and store.count_from("192.0.2.1") == 1


def test_least_recently_used_goes_first() -> None:
    store = ItemStore(max_items=3)
    a, b, c, d = (immutable_item(x) for x in (b"a", b"b", b"c", b"d"))
    for i, item in enumerate((a, b, c)):
        store.put(item, f"10.0.{i}.1", now=i)
    assert store.get(a.target, 3) == a  # a get is a use
    store.put(d, "10.0.9.1", now=4)
    assert [x.target in store for x in (a, b, c, d)] == [True, False, True, True]


def test_total_bytes_are_bounded() -> None:
    store = ItemStore(max_bytes=LARGEST_ITEM_BYTES * 2)
    big = [mutable_item(s, b"x" * 990, seq=1, salt=b"s" * 64) for s in (SEED, OTHER_SEED)]
    big.append(mutable_item(SEED, b"y" * 990, seq=1, salt=b"t" * 64))
    for i, item in enumerate(big):
        assert store.put(item, f"10.{i}.0.1", now=i) is None
        assert store.bytes_used <= store.max_bytes
    assert len(store) == 2 and big[0].target not in store


def test_bounds_must_leave_room_for_one_item() -> None:
    with pytest.raises(ValueError):
        ItemStore(max_bytes=LARGEST_ITEM_BYTES - 1)
    with pytest.raises(ValueError):
        ItemStore(max_items=0)
    with pytest.raises(ValueError):
        ItemStore(max_per_source=0)


def test_source_prefixes() -> None:
    assert source_prefix("192.0.2.7") == bytes([192, 0, 2])
    assert source_prefix("192.0.2.7") == source_prefix("::ffff:192.0.2.200")
    assert source_prefix("2001:db8:1:2:3:4:5:6") == bytes.fromhex("20010db800010002")
    assert source_prefix("not an ip") == b"not an ip"
    assert source_prefix("1.2") == b"1.2"  # no inet_aton shorthand


# --- the bounds hold under any sequence of operations -----------------------------------------

# Signing is the slow part: a fixed pool of items, drawn from by index.
_POOL: list[Item] = [
    mutable_item(seed, value, seq=seq, salt=salt)
    for seed, salt, seq, value in product(
        (SEED, OTHER_SEED), (b"", b"s" * 64), range(3), (b"v", b"w" * 990)
    )
]
_POOL += [immutable_item(b"i" * n) for n in (0, 10, 500, 996)]
_IPS = ["10.0.0.1", "10.0.0.2", "10.0.1.1", "2001:db8::1", "2001:db8::2", "::ffff:10.0.0.3"]

operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            st.integers(0, len(_POOL) - 1),
            st.sampled_from(_IPS),
            st.none() | st.integers(0, 3),
        ),
        st.tuples(st.just("get"), st.integers(0, len(_POOL) - 1)),
        st.tuples(st.just("tick"), st.floats(0, 60)),
        st.tuples(st.just("expire")),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    ops=operations,
    max_items=st.integers(1, 6),
    max_per_source=st.integers(1, 3),
    room=st.integers(1, 3),
)
def test_store_never_exceeds_its_bounds(
    ops: list[tuple[object, ...]], max_items: int, max_per_source: int, room: int
) -> None:
    store = ItemStore(
        max_items=max_items,
        max_bytes=LARGEST_ITEM_BYTES * room,
        max_per_source=max_per_source,
        ttl_s=100,
    )
    now = 0.0
    for op in ops:
        if op[0] == "put":
            _, index, ip, cas = op
            assert isinstance(index, int) and isinstance(ip, str)
            assert cas is None or isinstance(cas, int)
            item = _POOL[index]
            before = store.get(item.target, now)
            result = store.put(item, ip, now, cas=cas)
            after = store.get(item.target, now)
            if result is None:
                assert after == item
            else:
                assert before is not None and after == before  # a refusal changes nothing
        elif op[0] == "get":
            _, index = op
            assert isinstance(index, int)
            got = store.get(_POOL[index].target, now)
            assert got is None or got.target == _POOL[index].target
        elif op[0] == "tick":
            assert isinstance(op[1], float)
            now += op[1]
        else:
            store.expire(now)
        # Observed without get(), which would reorder the store under test.
        assert len(store) <= max_items
        assert store.bytes_used <= store.max_bytes
        for ip in _IPS:
            assert store.count_from(ip) <= max_per_source
    store.expire(now)
    kept = (store.get(item.target, now) for item in _POOL)
    held = {item.target: item for item in kept if item is not None}
    assert len(held) == len(store)
    assert store.bytes_used == sum(item_bytes(item) for item in held.values())
    assert sum(store.count_from(ip) for ip in ("10.0.0.1", "10.0.1.1", "2001:db8::1")) == len(store)
