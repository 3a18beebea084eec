"""Dead nodes in every routing table must not serialise a join or an announce (issue 13).

Nodes that joined and exited stay in the tables of those they talked to (as libtorrent keeps
our exited short-lived clients). A publisher that joins such a DHT and announces was seen to
wait on them query by query (10 s on loopback); with soft timeouts that adapt to the measured
round trip and retries outside ``alpha`` it is a few round trips and soft timeouts.
"""

from __future__ import annotations

import pytest

from dht.simulation import SimNetwork, sim_config


def _network_with_dead_entries(seed: int, live: int, dead: int) -> SimNetwork:
    sim = SimNetwork(seed, latency=(0.01, 0.075), config=sim_config())
    sim.grow(live, batch=50, settle_s=3.0)
    leavers = sim.grow(dead, batch=50, settle_s=3.0)  # they make it into the others' tables
    for node in leavers:
        sim.remove_node(node)
    return sim


@pytest.mark.slow
def test_join_and_first_announce_stay_bounded_with_many_dead_entries() -> None:
    sim = _network_with_dead_entries(seed=13, live=150, dead=150)
    dead_entries = sum(
        1
        for n in sim.alive()
        for e in n.core.routing.closest(n.core.node_id, 8)
        if e.addr not in sim.nodes
    )
    assert dead_entries > 100  # every table holds some

    publisher = sim.add_node()
    started = sim.now
    boot = sim.bootstrap(publisher, [sim.alive()[0].addr])
    sim.run_until_done(publisher, boot, limit_s=60)
    joined = sim.now - started
    info_hash = sim.random_target()
    rid = sim.announce(publisher, info_hash, 6881)
    done = sim.run_until_done(publisher, rid, limit_s=60)
    announced = sim.now - started

    assert len(publisher.core.routing) >= 8
    assert done.announced >= 4 and not done.timed_out
    # A round trip here is at most 0.15 s; the hard query timeout is 4 s. While lookups
    # waited for the hard timeouts of stalled queries and their retries took alpha slots,
    # this very run joined in 4.4 s and announced after 12.8 s (now 1.4 s and 2.7 s).
    assert joined < 3.0, joined
    assert announced < 5.0, announced
