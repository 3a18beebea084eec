"""Sybils against the DHT core's tables: one host or one network must not fill them.

The routing table, a router's node pool and the peer store are fed the way an attacker
would (many ids from one IPv4 address, one IPv6 /64, one /24), next to honest entries, with
explicit times. A private lab network is one operator's and is not limited.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from dht.ids import id_to_int
from dht.pool import NodePool
from dht.routing import RoutingTable
from dht.storage import PeerStore

OWN = b"\x00" * 20


def ids(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(20) for _ in range(n)]


def honest(i: int) -> tuple[str, int]:
    return (f"{i % 200 + 1}.{i // 200 + 1}.7.9", 6881)  # one /24 each


def test_one_host_has_one_node_in_the_routing_table() -> None:
    t = RoutingTable(OWN, now=0.0)
    for n in ids(2000, 1):
        t.node_seen(n, ("203.0.113.5", 6881), 1.0)
    for i, n in enumerate(ids(2000, 2)):  # one /64: a host of IPv6
        t.node_seen(n, (f"2001:db8:5:5::{i + 1:x}", 6881), 1.0)
    assert len(t) == 2
    clean = RoutingTable(OWN, now=0.0)
    for i, n in enumerate(ids(50, 3)):
        t.node_seen(n, honest(i), 1.0)
        clean.node_seen(n, honest(i), 1.0)
    assert len(t) >= len(clean)  # honest nodes find the room they would have had


def test_one_subnet_has_a_small_share_of_each_bucket() -> None:
    t = RoutingTable(OWN, now=0.0)
    for i, n in enumerate(ids(250, 4)):
        t.node_seen(n, (f"203.0.113.{i + 1}", 6881), 1.0)
    for b in t.buckets():
        assert sum(e.addr[0].startswith("203.0.113.") for e in b.nodes) <= t.per_subnet
    assert len(t) <= t.per_subnet * t.bucket_count


def test_a_host_with_a_new_id_replaces_its_old_entry_once_that_is_bad() -> None:
    t = RoutingTable(OWN, now=0.0)
    old, new = ids(2, 5)
    t.node_seen(old, ("203.0.113.5", 6881), 1.0)
    t.node_seen(new, ("203.0.113.5", 6882), 2.0)
    assert old in t and new not in t
    t.node_failed(old, 3.0)
    t.node_failed(old, 4.0)
    t.node_seen(new, ("203.0.113.5", 6882), 5.0)
    assert new in t and old not in t


def test_a_private_lab_network_is_not_limited() -> None:
    t = RoutingTable(OWN, now=0.0)
    for i, n in enumerate(ids(100, 6)):
        t.node_seen(n, ("10.0.0.1", 7000 + i), 1.0)
    assert len(t) > 20


def test_pool_one_node_per_host_few_per_subnet() -> None:
    pool = NodePool(per_subnet=8)
    for n in ids(5000, 7):
        pool.add(n, ("203.0.113.5", 6881), 1.0)
    assert len(pool) == 1
    for i, n in enumerate(ids(5000, 8)):
        pool.add(n, (f"198.51.100.{i % 250 + 1}", 6881), 1.0)
    assert len(pool) == 1 + 8
    honest_ids = ids(100, 9)
    for i, n in enumerate(honest_ids):
        pool.add(n, honest(i), 1.0)
    assert len(pool) == 109
    target = honest_ids[0]
    t = id_to_int(target)
    assert pool.closest(target, 1)[0].id == min(honest_ids, key=lambda n: id_to_int(n) ^ t)


def test_pool_ties_against_a_target_stay_few() -> None:
    """A /16 of sybils minting ids that all share 150 bits with a target: the pool keeps a
    handful per /24, so the run of ties ``closest`` walks stays short."""
    target = b"\x42" * 20
    prefix = id_to_int(target) >> 10 << 10
    pool = NodePool(per_subnet=8)
    rng = random.Random(10)
    for i in range(20_000):
        n = (prefix | rng.getrandbits(10)).to_bytes(20, "big")
        pool.add(n, (f"198.51.{i % 64}.{i // 64 % 250 + 1}", 6881), 1.0)
    assert len(pool) <= 64 * 8
    assert len(pool.closest(target, 8)) == 8


def test_pool_closest_is_exact_among_ties_without_walking_them() -> None:
    """Ids that all share exactly as many bits with the target (a private lab network is not
    limited): ``closest`` still finds the exact 8 by bisection, looking at a few ids only."""
    target = b"\x42" * 20
    t = id_to_int(target)
    base = (t ^ (1 << 40)) >> 40 << 40
    pool = NodePool()
    rng = random.Random(11)
    for i in range(20_000):
        n = (base | rng.getrandbits(40)).to_bytes(20, "big")
        pool.add(n, (f"10.{i // 250 % 250}.{i % 250}.1", 6881), 1.0)
    seen: list[int] = []

    class Watched(list[int]):
        def __getitem__(self, i: Any) -> Any:
            seen.append(1)
            return super().__getitem__(i)

    everything = sorted(pool._sorted, key=lambda i: i ^ t)[:8]
    pool._sorted = Watched(pool._sorted)
    assert [id_to_int(c.id) for c in pool.closest(target, 8)] == everything
    assert len(seen) < 500  # no walk over the 20,000 ties (it took 40,000 reads)


def test_one_host_cannot_evict_an_honest_swarm() -> None:
    store = PeerStore(max_peers=100)
    h = b"H" * 20
    for i in range(90):
        store.add(h, honest(i), 1.0)
    for i in range(5000):  # a /64 of addresses, and a /24
        store.add(h, (f"2001:db8:6:6::{i + 1:x}", 1000), 2.0)
        store.add(h, (f"203.0.113.{i % 250 + 1}", 1000), 2.0)
    peers = store.get(h, 3.0, 1000, random.Random(1))
    assert sum(1 for ip, _ in peers if ip.count(".") == 3 and ip.endswith(".7.9")) == 90
    assert len(peers) <= 90 + store.per_host + store.per_subnet


class _NoIteration(OrderedDict[bytes, object]):
    def __iter__(self) -> Iterator[bytes]:
        raise AssertionError("the whole store was copied")


def test_sample_infohashes_does_not_copy_the_store() -> None:
    store = PeerStore()
    for i in range(20_000):
        store.add(i.to_bytes(20, "big"), ("203.0.113.1", 1), 1.0)
    store._swarms = _NoIteration(store._swarms)  # type: ignore[assignment]
    sample = store.sample(20, random.Random(1))
    assert len(set(sample)) == 20
    assert all(int.from_bytes(s, "big") < 20_000 for s in sample)
