"""Keeping BEP 44 items alive on the simulator: a keeper outlives the owner, follows its newer
seqs, and leaves out a republish when the closest nodes already hold the item (BEP 44)."""

from __future__ import annotations

import bencode2
import pytest

from dht.itemlookups import GetItem, PutItem, start_get, start_put
from dht.items import Item, MutableItem, encode_value, immutable_item, mutable_target, public_key
from dht.keeper import RefreshItem
from dht.simulation import SimNetwork, SimNode, sim_config
from dht.wire import Addr

SEED = bytes(range(32))
SALT = b"feed"
TARGET = mutable_target(public_key(SEED), SALT)
HOUR = 3600.0


def network(count: int, seed: int = 3, **config: object) -> tuple[SimNetwork, list[SimNode]]:
    net = SimNetwork(seed=seed, config=sim_config(**config))
    nodes = net.grow(count)
    net.run_for(30)
    return net, nodes


def run(net: SimNetwork, node: SimNode, t: PutItem | GetItem) -> None:
    net.poll(node)
    net.run_until_done(node, t.id)


def put(net: SimNetwork, node: SimNode, item: Item | None = None, v: bytes = b"") -> PutItem:
    if item is not None:
        t = PutItem(node.core.new_request_id(), item.target, item=item)
    else:
        t = PutItem(node.core.new_request_id(), TARGET, seed=SEED, salt=SALT, value=encode_value(v))
    run(net, node, start_put(node.core, t, net.now))
    return t


def get(net: SimNetwork, node: SimNode, target: bytes = TARGET, salt: bytes = SALT) -> Item | None:
    t = start_get(node.core, target, net.now, salt=salt)
    run(net, node, t)
    return t.best


def keep(net: SimNetwork, node: SimNode, target: bytes = TARGET, salt: bytes = SALT) -> Item:
    """What ``dht.Node.keep`` does on one core: get, then hand the item to the republisher."""
    item = get(net, node, target, salt)
    assert item is not None
    node.core.republisher.keep(item, net.now)
    return item


def count_puts(net: SimNetwork) -> dict[Addr, int]:
    """Put queries sent, by sender, from now on."""
    sent: dict[Addr, int] = {}

    def spy(data: bytes, src: Addr, dst: Addr) -> bool:
        if data.endswith(b"1:y1:qe") and bencode2.bdecode(data).get(b"q") == b"put":
            sent[src] = sent.get(src, 0) + 1
        return True

    net.filter = spy
    return sent


@pytest.mark.slow
def test_a_kept_item_outlives_its_owner_and_an_unkept_one_expires() -> None:
    net, nodes = network(60, seed=5)
    owner, keeper, reader = nodes[0], nodes[20], nodes[40]
    kept = immutable_item(b"kept by another")
    dropped = immutable_item(b"nobody keeps this")
    assert put(net, owner, kept).announced == 8
    assert put(net, owner, dropped).announced == 8
    keep(net, keeper, kept.target, b"")
    net.remove_node(owner)  # the owner leaves: it republishes nothing any more
    net.run_for(3 * HOUR)
    assert get(net, reader, kept.target, b"") == kept
    assert get(net, reader, dropped.target, b"") is None  # expired on every node
    assert keeper.core.republisher.refreshes >= 2


@pytest.mark.slow
def test_a_kept_mutable_item_follows_the_owners_newer_seq() -> None:
    net, nodes = network(60, seed=7)
    owner, keeper, reader = nodes[0], nodes[30], nodes[50]
    put(net, owner, v=b"first")
    first = keep(net, keeper)
    assert isinstance(first, MutableItem) and first.seq == 1
    put(net, owner, v=b"second")  # seq 2, signed by the owner; the keeper holds no key
    net.run_for(HOUR + 60)  # one refresh of the keeper: it adopts seq 2
    held = keeper.core.republisher.item(TARGET)
    assert isinstance(held, MutableItem) and (held.seq, held.value()) == (2, b"second")
    net.remove_node(owner)
    puts = count_puts(net)
    net.run_for(3 * HOUR)
    assert puts.get(keeper.addr, 0) > 0  # the keeper, not the owner, kept it alive
    got = get(net, reader)
    assert isinstance(got, MutableItem) and (got.seq, got.value()) == (2, b"second")


def test_a_refresh_adopts_a_newer_item_and_never_puts_the_old_one_back() -> None:
    net, nodes = network(40, item_republish_s=60.0)
    owner, keeper = nodes[0], nodes[10]
    put(net, owner, v=b"one")
    old = keep(net, keeper)
    put(net, owner, v=b"two")
    t = RefreshItem(keeper.core.new_request_id(), old, may_skip=False)
    run(net, keeper, start_put(keeper.core, t, net.now))
    item = t.final_item()
    assert isinstance(item, MutableItem) and item.seq == 2
    assert t.put_to >= 8 and not t.errors  # an old seq would be refused: 302


def test_a_refresh_with_fresh_copies_at_the_closest_sends_no_put() -> None:
    net, nodes = network(60, item_republish_s=60.0)
    owner, keeper = nodes[0], nodes[10]
    item = immutable_item(b"popular")
    put(net, owner, item)
    keep(net, keeper, item.target, b"")
    puts = count_puts(net)
    net.run_for(70)  # the keeper's first refresh: all 8 closest hold it
    republisher = keeper.core.republisher
    assert republisher.refreshes == 1 and republisher.skipped == 1
    assert puts.get(keeper.addr, 0) == 0


def test_a_refresh_puts_when_copies_at_the_closest_are_missing_or_stale() -> None:
    net, nodes = network(60, item_republish_s=60.0)
    owner, keeper = nodes[0], nodes[10]
    put(net, owner, v=b"one")
    keep(net, keeper)
    holders = [n for n in nodes if TARGET in n.core.answers.items]
    assert len(holders) == 8
    # Two of the closest lost the item (restarted, evicted it): the copies are not enough.
    for n in holders[:2]:
        n.core.answers.items.expire(net.now + 10 * HOUR)
    puts = count_puts(net)
    net.run_for(70)
    assert keeper.core.republisher.skipped == 0
    assert puts.get(keeper.addr, 0) >= 8
    assert all(TARGET in n.core.answers.items for n in holders)


def test_an_older_seq_at_the_closest_is_not_a_fresh_copy() -> None:
    net, nodes = network(60, item_republish_s=60.0)
    owner, keeper = nodes[0], nodes[10]
    put(net, owner, v=b"one")
    holders = [n for n in nodes if TARGET in n.core.answers.items]
    put(net, owner, v=b"two")
    second = keep(net, keeper)
    third = put(net, owner, v=b"three").final_item()
    assert isinstance(second, MutableItem) and isinstance(third, MutableItem)
    assert third.seq == 3
    one_stale = holders[0]
    # ... then the stale holder is handed seq 2 back, as if it had missed seq 3.
    one_stale.core.answers.items.expire(net.now + 10 * HOUR)
    assert one_stale.core.answers.items.put(second, "1.2.3.4", net.now) is None
    puts = count_puts(net)
    net.run_for(70)
    assert keeper.core.republisher.skipped == 0
    assert puts.get(keeper.addr, 0) >= 8
    held = keeper.core.republisher.item(TARGET)
    assert isinstance(held, MutableItem) and held.seq == 3


def test_the_owner_does_not_skip_right_after_its_own_put() -> None:
    # Copies we put one period ago are half-way through their life: a lone owner that
    # skipped on them would leave its item gone for up to a period every other hour.
    net, nodes = network(60, item_republish_s=60.0)
    owner = nodes[0]
    item = immutable_item(b"mine")
    put(net, owner, item)
    owner.core.republisher.add(item, net.now)
    puts = count_puts(net)
    net.run_for(70)
    assert owner.core.republisher.skipped == 0 and puts.get(owner.addr, 0) >= 8


def test_kept_items_are_bounded_and_own_items_are_not_kept_twice() -> None:
    net, nodes = network(20, max_kept_items=3)
    republisher = nodes[0].core.republisher
    items = [immutable_item(b"item %d" % i) for i in range(5)]
    for item in items:
        republisher.keep(item, net.now)
    assert republisher.kept == 3
    assert republisher.item(items[0].target) is None  # the oldest was forgotten
    assert republisher.item(items[4].target) == items[4]
    republisher.add(items[4], net.now)  # ours now
    assert republisher.kept == 2 and len(republisher) == 1
    republisher.keep(items[4], net.now)
    assert republisher.kept == 2


def test_forged_newer_copies_neither_stop_a_refresh_nor_are_adopted() -> None:
    # Hostile closest nodes answer with a "newer" item under a forged signature, hoping that
    # keepers skip their put (fresh copies) or adopt it; the signature check stops both.
    net, nodes = network(60, item_republish_s=60.0)
    owner, keeper = nodes[0], nodes[10]
    put(net, owner, v=b"genuine")
    genuine = keep(net, keeper)
    assert isinstance(genuine, MutableItem)
    forged = MutableItem(genuine.k, SALT, 99, encode_value(b"evil"), bytes(64))
    for n in [n for n in nodes if TARGET in n.core.answers.items]:
        n.core.answers.items.expire(net.now + 10 * HOUR)
        assert n.core.answers.items.put(forged, "1.2.3.4", net.now) is None
    puts = count_puts(net)
    net.run_for(70)
    assert keeper.core.republisher.skipped == 0 and puts.get(keeper.addr, 0) >= 8
    assert keeper.core.republisher.item(TARGET) == genuine
