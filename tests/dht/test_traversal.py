"""The lookup state machine against a synthetic network in which every node knows everyone."""

import random

from dht.ids import id_to_int, random_id
from dht.traversal import Lookup
from dht.wire import NodeContact


def make_network(n: int, seed: int) -> dict[tuple[str, int], NodeContact]:
    rng = random.Random(seed)
    return {
        (f"5.5.{i // 250}.{i % 250}", 1): NodeContact(
            random_id(rng), (f"5.5.{i // 250}.{i % 250}", 1)
        )
        for i in range(n)
    }


def closest(net: dict[tuple[str, int], NodeContact], target: bytes, k: int) -> list[NodeContact]:
    t = id_to_int(target)
    return sorted(net.values(), key=lambda c: id_to_int(c.id) ^ t)[:k]


def test_lookup_converges_to_true_closest_and_respects_alpha() -> None:
    net = make_network(500, 1)
    target = random_id(random.Random(2))
    lookup = Lookup(target, k=8, alpha=3)
    lookup.add_nodes(list(net.values())[:5])
    rounds = 0
    while not lookup.done:
        reqs = lookup.next_requests()
        assert reqs, "not done but nothing to ask"
        assert lookup.in_flight <= 3
        for c in reqs:
            node = net[c.addr]
            # each node answers with the 8 it knows closest to the target: it knows only a
            # random half of the network, so several hops are needed
            known = [x for x in net.values() if (id_to_int(x.id) + id_to_int(node.id)) % 2 == 0]
            t = id_to_int(target)
            lookup.on_reply(c, node.id, sorted(known, key=lambda x: id_to_int(x.id) ^ t)[:8])
        rounds += 1
        assert rounds < 100
    assert [c.id for c in lookup.closest()] == [c.id for c in closest(net, target, 8)]


def test_dead_nodes_are_retried_once_then_skipped() -> None:
    net = make_network(50, 3)
    target = random_id(random.Random(4))
    dead = {c.addr for c in closest(net, target, 2)}
    lookup = Lookup(target, k=8, alpha=3, max_attempts=2)
    lookup.add_nodes(net.values())
    attempts: dict[tuple[str, int], int] = {}
    for _ in range(100):
        if lookup.done:
            break
        for c in lookup.next_requests():
            attempts[c.addr] = attempts.get(c.addr, 0) + 1
            if c.addr in dead:
                lookup.on_stall(c)  # soft timeout...
                lookup.on_failure(c)  # ...and then the hard one
            else:
                lookup.on_reply(c, net[c.addr].id, [])
    assert lookup.done
    assert all(attempts[a] == 2 for a in dead)
    live = [c for c in closest(net, target, 10) if c.addr not in dead]
    assert [c.id for c in lookup.closest()] == [c.id for c in live[:8]]


def test_late_answer_after_soft_timeout_still_counts() -> None:
    net = make_network(20, 5)
    target = random_id(random.Random(6))
    lookup = Lookup(target, k=8, alpha=1, max_attempts=1)
    lookup.add_nodes(net.values())
    first = lookup.next_requests()[0]
    lookup.on_stall(first)
    second = lookup.next_requests()
    assert second and second[0] is not first  # widened past the slow one
    lookup.on_reply(first, net[first.addr].id, [])
    assert first in lookup.closest(20)


def test_query_budget_bounds_a_hostile_walk() -> None:
    target = bytes(20)
    lookup = Lookup(target, k=8, alpha=3, max_queries=30)
    rng = random.Random(7)
    lookup.add_nodes([NodeContact(random_id(rng), ("6.6.6.6", i + 1)) for i in range(3)])
    sent = 0
    while not lookup.done and sent < 1000:
        for c in lookup.next_requests():
            sent += 1
            # every answer claims ever closer nodes that do not exist
            fake = [NodeContact(random_id(rng), ("7.7.7.7", sent * 10 + j)) for j in range(8)]
            lookup.on_reply(c, c.id or random_id(rng), fake)
    assert lookup.done
    assert sent <= 30


def test_unknown_id_seeds_are_asked_first_and_learn_their_id() -> None:
    lookup = Lookup(bytes(20), k=8, alpha=3)
    lookup.add_addresses([("9.9.9.9", 6881)])
    (c,) = lookup.next_requests()
    assert c.id is None
    lookup.on_reply(c, b"\x01" * 20, [])
    assert lookup.done
    assert lookup.closest()[0].id == b"\x01" * 20
