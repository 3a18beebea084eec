"""BEP 44 get/put and BEP 33 scrape lookups on the simulator: the production cores on a
virtual clock, with forged answers, racing writers, churn and a republishing owner."""

from __future__ import annotations

import random

import bencode2
import pytest

from dht.bloom import ScrapeFilter
from dht.itemlookups import GetItem, PutItem, start_get, start_put
from dht.items import (
    ImmutableItem,
    MutableItem,
    encode_value,
    immutable_item,
    mutable_item,
    mutable_target,
    public_key,
)
from dht.scrapes import Scrape
from dht.simulation import SimNetwork, SimNode
from dht.wire import Addr

SEED = bytes(range(32))
SALT = b"home"
TARGET = mutable_target(public_key(SEED), SALT)


def network(count: int, seed: int = 3) -> tuple[SimNetwork, list[SimNode]]:
    net = SimNetwork(seed=seed)
    nodes = net.grow(count)
    net.run_for(30)
    return net, nodes


def put(net: SimNetwork, node: SimNode, **kw: object) -> PutItem:
    item = kw.pop("item", None)
    if item is not None:
        assert isinstance(item, ImmutableItem | MutableItem)
        t = PutItem(node.core.new_request_id(), item.target, item=item, **kw)  # type: ignore[arg-type]
    else:
        t = PutItem(node.core.new_request_id(), TARGET, seed=SEED, salt=SALT, **kw)  # type: ignore[arg-type]
    start_put(node.core, t, net.now)
    net.poll(node)
    net.run_until_done(node, t.id)
    return t


def get(net: SimNetwork, node: SimNode, target: bytes = TARGET, salt: bytes = SALT) -> GetItem:
    t = start_get(node.core, target, net.now, salt=salt)
    net.poll(node)
    net.run_until_done(node, t.id)
    return t


def value(v: object) -> object:
    return encode_value(v)


def test_an_immutable_item_put_by_one_node_is_got_by_another() -> None:
    net, nodes = network(100)
    item = immutable_item({b"name": b"x", b"n": [1, 2]})
    p = put(net, nodes[3], item=item)
    assert p.put_to == 8 and p.announced == 8 and not p.errors
    g = get(net, nodes[80], item.target, b"")
    assert g.best == item and g.found >= 6


def test_a_mutable_item_gets_the_next_seq_and_the_newest_wins() -> None:
    net, nodes = network(100)
    writer, reader = nodes[10], nodes[90]
    for i in range(3):
        p = put(net, writer, value=value(b"v%d" % i))
        assert p.announced == 8 and getattr(p.final_item(), "seq", None) == i + 1
    g = get(net, reader)
    assert isinstance(g.best, MutableItem)
    assert (g.best.seq, g.best.value()) == (3, b"v2")
    # A stale writer (seq 2 again, another value) is refused everywhere: 302.
    stale = put(net, nodes[50], value=value(b"stale"), seq=2)
    assert stale.announced == 0 and all("302" in r for r in stale.errors)
    assert get(net, reader).best == g.best


def test_compare_and_swap_refuses_a_writer_that_read_an_old_seq() -> None:
    net, nodes = network(100)
    a, b = nodes[1], nodes[2]
    put(net, a, value=value(b"first"))  # seq 1
    # b read seq 1 and writes with cas=1; meanwhile a wrote seq 2: b's write must fail.
    put(net, a, value=value(b"second"))  # seq 2
    holders = [n for n in nodes if TARGET in n.core.answers.items]
    late = put(net, b, value=value(b"b's"), seq=3, cas=1)
    assert late.errors and all("301" in r for r in late.errors)
    # Every node that held seq 2 kept it (a node that held nothing ignores cas: the BEP).
    for n in holders:
        held = n.core.answers.items.get(TARGET, net.now)
        assert isinstance(held, MutableItem) and held.seq == 2
    assert sum(late.errors.values()) + late.announced == late.put_to
    assert late.announced < sum(late.errors.values())
    fresh = put(net, b, value=value(b"b's"), seq=3, cas=2)
    # the nodes that took seq 3 from the late put now hold 3, so cas=2 is wrong there
    assert fresh.announced + late.announced >= 8 - 1
    got = get(net, nodes[99]).best
    assert isinstance(got, MutableItem) and (got.seq, got.value()) == (3, b"b's")


def test_cas_goes_only_to_nodes_that_hold_the_item() -> None:
    # BEP 44: a node with nothing stored has nothing to compare with; sending it cas is
    # pointless. Two of the closest nodes lose the item; the put to them carries no cas.
    net, nodes = network(100)
    first = put(net, nodes[1], value=value(b"one"))
    holders = [n for n in nodes if TARGET in n.core.answers.items]
    assert len(holders) == first.announced == 8
    emptied = {holders[0].addr, holders[1].addr}
    for n in holders[:2]:
        n.core.answers.items.expire(net.now + 10 * 3600)
    seen: dict[Addr, dict[bytes, object]] = {}

    def spy(data: bytes, src: Addr, dst: Addr) -> bool:
        msg = bencode2.bdecode(data)
        if msg.get(b"q") == b"put":
            seen[dst] = msg[b"a"]
        return True

    net.filter = spy
    second = put(net, nodes[1], value=value(b"two"), cas=1)
    assert second.announced == 8
    assert all(b"cas" not in seen[addr] for addr in emptied)
    assert sum(b"cas" in a for a in seen.values()) == 6


def test_forged_answers_are_ignored_and_the_genuine_item_is_kept() -> None:
    # The nodes closest to the target were made to hold a "newer" item with a forged
    # signature (the store trusts what it is given; only the requester's check stops it).
    net, nodes = network(100)
    genuine = put(net, nodes[1], value=value(b"genuine")).final_item()
    assert isinstance(genuine, MutableItem)
    forged = MutableItem(genuine.k, SALT, 99, encode_value(b"evil"), bytes(64))
    closest = sorted(
        (n for n in nodes if TARGET in n.core.answers.items),
        key=lambda n: int.from_bytes(n.core.node_id, "big") ^ int.from_bytes(TARGET, "big"),
    )
    for n in closest[:4]:
        n.core.answers.items.expire(net.now + 10 * 3600)
        assert n.core.answers.items.put(forged, "1.2.3.4", net.now) is None
    g = get(net, nodes[77])
    assert g.best == genuine
    # Under the wrong salt the genuine signature does not check out either.
    assert get(net, nodes[77], salt=b"other").best is None


@pytest.mark.slow
def test_the_owner_republishes_so_the_item_outlives_two_hours() -> None:
    net, nodes = network(60, seed=5)
    owner = nodes[0]
    kept = put(net, owner, item=immutable_item(b"kept"))
    owner.core.republisher.add(kept.final_item(), net.now)
    dropped = put(net, owner, item=immutable_item(b"dropped"))  # not republished
    net.run_for(3 * 3600)
    reader = nodes[40]
    assert get(net, reader, kept.target, b"").best == immutable_item(b"kept")
    assert get(net, reader, dropped.target, b"").best is None


def test_scrape_unites_the_closest_nodes_filters() -> None:
    net, nodes = network(100)
    info_hash = net.random_target()
    seeds = [f"44.0.{i}.1" for i in range(40)]
    peers = [f"45.0.{i}.1" for i in range(25)]
    closest = set(net.true_closest(info_hash, 8))
    storers = [n for n in nodes if n.core.node_id in closest]
    rng = random.Random(1)
    for ip in seeds + peers:
        # each announce reached a few of the closest nodes, as on the real network
        for n in rng.sample(storers, 3):
            n.core.storage.add(info_hash, (ip, 6881), net.now, seed=ip in seeds)
    t = Scrape(nodes[90].core.new_request_id(), info_hash)
    nodes[90].core.lookups.start(t, net.now)
    net.poll(nodes[90])
    net.run_until_done(nodes[90], t.id)
    assert t.seed_filter == ScrapeFilter.of(seeds)
    assert t.peer_filter == ScrapeFilter.of(peers)
    assert abs(t.seeds - 40) < 4 and abs(t.peers - 25) < 3


@pytest.mark.slow
def test_put_and_get_across_a_thousand_nodes_with_churn() -> None:
    net, nodes = network(1000, seed=11)
    rng = random.Random(4)
    writer = nodes[0]
    immutable = immutable_item(b"survives churn")
    assert put(net, writer, item=immutable).announced >= 6
    assert put(net, writer, value=value(b"v1")).announced >= 6
    # A quarter of the network leaves, 250 newcomers join; the writer stays.
    for n in rng.sample(nodes[1:], 250):
        net.remove_node(n)
    newcomers = net.grow(250)
    net.run_for(120)
    readers = rng.sample(newcomers, 5) + rng.sample(net.alive(), 5)
    for reader in readers:
        assert get(net, reader, immutable.target, b"").best == immutable
        got = get(net, reader).best
        assert isinstance(got, MutableItem) and got.value() == b"v1"
    # The item is updated after the churn: every reader sees the new seq.
    assert getattr(put(net, writer, value=value(b"v2")).final_item(), "seq", None) == 2
    for reader in readers[:4]:
        got = get(net, reader).best
        assert isinstance(got, MutableItem) and (got.seq, got.value()) == (2, b"v2")


def test_mutable_item_helper_and_traversal_sign_alike() -> None:
    # The put traversal signs the same bytes the BEP's own construction does.
    net, nodes = network(20)
    p = put(net, nodes[1], value=value(b"Hello World!"), seq=1)
    assert p.final_item() == mutable_item(SEED, b"Hello World!", seq=1, salt=SALT)
