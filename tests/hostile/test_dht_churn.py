"""Churn in the simulator: nodes that come back at their address with a new id.

A restart without saved state (or a BEP 42 id change) leaves every table that knew the node
with an entry for an id nobody answers to at that address. The answer from the new id to a
query for the old one fails the old one: such entries must leave the tables, stop being
pinged and stop being handed out, over simulated hours.
"""

from __future__ import annotations

import random

import pytest

from dht.config import DhtConfig
from dht.protocol import DhtProtocol
from dht.simulation import SimNetwork
from dht.transactions import NO_OWNER
from dht.wire import Addr, Response, decode, encode_response


@pytest.mark.slow
def test_entries_of_a_restarted_node_leave_the_tables(sim: SimNetwork) -> None:
    nodes = sim.grow(60, settle_s=30.0)
    sim.run_for(600.0)
    churned = nodes[10:20]
    old_ids = {n.addr: n.core.node_id for n in churned}
    knew = sum(old_ids[n.addr] in o.core.routing for n in churned for o in sim.alive())
    assert knew >= 20  # the old ids were well known
    for n in churned:
        sim.remove_node(n)
        fresh = sim.add_node(addr=n.addr)
        sim.bootstrap(fresh, [nodes[0].addr])
    sim.run_for(600.0)

    pings: dict[Addr, int] = {}
    handed_out = 0

    def watch(data: bytes, src: Addr, dst: Addr) -> bool:
        nonlocal handed_out
        if dst in old_ids and b"4:ping" in data:
            pings[dst] = pings.get(dst, 0) + 1
        msg = decode(data) if b"5:nodes" in data else None
        if isinstance(msg, Response):
            stale = [c for c in msg.nodes if old_ids.get(c.addr) == c.id]
            handed_out += len(stale)
        return True

    sim.filter = watch
    sim.run_for(2 * 3600.0)
    alive = sim.alive()
    stale_entries = [
        (o.addr, addr)
        for o in alive
        for addr, old in old_ids.items()
        if (e := o.core.routing.get(old)) is not None and e.addr == addr
    ]
    assert stale_entries == []
    assert handed_out == 0
    # The new nodes are pinged like any node (once each 15 minutes by each table holding
    # them), not every second: over two hours, a handful per node and address.
    per_address = max(pings.values(), default=0)
    assert per_address <= 8 * len(alive), pings
    print(f"pings per churned address in 2 h: {sorted(pings.values())}")


def test_a_liar_cannot_fail_our_nodes_by_listing_them_elsewhere() -> None:
    """Someone lists our good node X at another node's address: that node answers with its
    own id, which says nothing about X, so X keeps its place and its record."""
    core = DhtProtocol(b"s" * 20, rng=random.Random(1), now=0.0, config=DhtConfig())
    x = b"x" * 20
    core.routing.node_seen(x, ("198.51.100.1", 1), 0.0)
    for t in range(5):
        core.send_query(("198.51.100.2", 2), b"ping", {}, float(t), NO_OWNER, x)
        ((data, _),) = core.datagrams_to_send(float(t))
        reply = encode_response(decode(data).t, {b"id": b"y" * 20})
        core.receive_datagram(reply, ("198.51.100.2", 2), float(t) + 0.1)
    entry = core.routing.get(x)
    assert entry is not None and entry.fails == 0 and entry.addr == ("198.51.100.1", 1)
