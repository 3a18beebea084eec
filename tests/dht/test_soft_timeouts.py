"""Dead nodes never serialise a lookup: soft timeouts, retries outside alpha (issue 13)."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Sequence
from typing import Any

import pytest

import dht.io.client
import dht.lookups
from dht.ids import random_id
from dht.io.client import find_peers
from dht.io.node import Node
from dht.io.testnet import Testnet
from dht.lookups import SOFT_TIMEOUT_MIN_S, RttEstimate
from dht.protocol import DhtConfig
from dht.traversal import CandidateState, Lookup
from dht.wire import Addr
from tests.dht.test_traversal import closest, make_network


def test_retries_of_stalled_nodes_take_no_alpha_slot() -> None:
    net = make_network(50, 11)
    target = random_id(random.Random(12))
    dead = closest(net, target, 3)
    lookup = Lookup(target, k=8, alpha=3)
    lookup.add_nodes(net.values())
    first = lookup.next_requests()
    assert {c.addr for c in first} == {c.addr for c in dead}
    for c in first:
        lookup.on_stall(c)  # soft timeouts: the closest three are dead
    second = lookup.next_requests()
    retries = [c for c in second if c.state is CandidateState.RETRYING]
    fresh = [c for c in second if c.state is CandidateState.PENDING]
    assert {c.addr for c in retries} == {c.addr for c in dead}
    assert len(fresh) == 3 and lookup.in_flight == 3  # alpha live nodes asked at once


def test_a_walk_never_waits_for_hard_timeouts() -> None:
    net = make_network(50, 13)
    target = random_id(random.Random(14))
    dead = {c.addr for c in closest(net, target, 4)}
    lookup = Lookup(target, k=8, alpha=3)
    lookup.add_nodes(net.values())
    for _ in range(50):
        if lookup.done:
            break
        for c in lookup.next_requests():
            if c.addr in dead:
                lookup.on_stall(c)  # and never an answer nor a hard timeout
            else:
                lookup.on_reply(c, net[c.addr].id, [])
    assert lookup.done
    assert not {c.addr for c in lookup.closest()} & dead
    assert len(lookup.closest()) == 8


def test_soft_timeout_follows_the_measured_round_trip_within_bounds() -> None:
    rtt = RttEstimate()
    assert rtt.soft_timeout(1.0) == 1.0  # nothing measured yet: the configured value
    for _ in range(20):
        rtt.sample(0.001)  # loopback
    assert rtt.soft_timeout(1.0) == SOFT_TIMEOUT_MIN_S
    for i in range(50):
        rtt.sample(0.1 if i % 2 else 0.3)  # a WAN: 100-300 ms
    assert SOFT_TIMEOUT_MIN_S < rtt.soft_timeout(1.0) < 1.0
    for _ in range(50):
        rtt.sample(3.0)  # a congested path
    assert rtt.soft_timeout(1.0) == 1.0


@pytest.mark.slow
def test_peers_starts_its_lookup_once_a_node_answered_not_when_the_bootstrap_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``magnetar peers --timeout 3`` used to wait for its whole bootstrap walk, held up by
    the dead nodes the bootstrap node named, past the timeout, then said no node answered."""

    def patient_client(bootstrap: Sequence[Addr] | None = None, **kwargs: Any) -> Node:
        # Every dead node holds a walk up for 10 s.
        config = DhtConfig(read_only=True, soft_timeout_s=10.0, query_timeout_s=10.0)
        return Node("127.0.0.1", 0, bootstrap_routers=bootstrap, config=config)

    monkeypatch.setattr(dht.io.client, "client_node", patient_client)
    monkeypatch.setattr(dht.lookups, "SOFT_TIMEOUT_MIN_S", 10.0)

    async def main() -> None:
        async with Testnet(30, seed=1) as net:
            info_hash = os.urandom(20)
            assert await net.nodes[5].announce(info_hash, 4242) > 0
            for node in net.nodes[10:30]:
                node.close()  # they stay in the tables of the first ten
            search = find_peers(info_hash, bootstrap=net.bootstrap_addrs(1), timeout=3.0)
            found = [peer async for peer in search]
            assert ("127.0.0.1", 4242) in found

    asyncio.run(asyncio.wait_for(main(), 30))
