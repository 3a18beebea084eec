"""The production core at scale, on the simulator's virtual clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dht.events import BootstrapStalled, LookupDone, PeersFound
from dht.simulation import SimNetwork, SimNode, sim_config


def lookup_accuracy(net: SimNetwork, nodes: list[SimNode], lookups: int) -> tuple[float, float]:
    """(share of lookups that found exactly the true K closest, share of those K found)."""
    exact = found = 0
    for _ in range(lookups):
        node = net.rng.choice(nodes)
        target = net.random_target()
        done = net.run_until_done(node, net.find_node(node, target))
        got = [c.id for c in done.nodes]
        want = [i for i in net.true_closest(target, 9) if i != node.core.node_id][:8]
        exact += got == want
        found += len(set(got) & set(want))
    return exact / lookups, found / (8 * lookups)


@pytest.fixture(scope="module")
def net2000() -> tuple[SimNetwork, list[SimNode]]:
    net = SimNetwork(seed=2000, latency=(0.01, 0.15))
    nodes = net.grow(2000)
    net.run_for(60)
    for n in nodes:
        n.keep_events = False
        n.events.clear()
    return net, nodes


@pytest.mark.slow
def test_lookups_in_a_2000_node_network_find_the_true_closest(
    net2000: tuple[SimNetwork, list[SimNode]], record_property: Callable[[str, object], None]
) -> None:
    net, nodes = net2000
    for n in nodes:
        n.keep_events = True
    exact, found = lookup_accuracy(net, nodes, 200)
    record_property("exact_k_closest", exact)
    print(f"\n2000 nodes: {exact:.1%} of lookups found exactly the K closest, {found:.2%} of them")
    assert exact >= 0.95
    assert found >= 0.99


@pytest.mark.slow
def test_announced_peers_are_found_by_other_nodes(
    net2000: tuple[SimNetwork, list[SimNode]],
) -> None:
    net, nodes = net2000
    for n in nodes:
        n.keep_events = True
    hashes = []
    for i in range(20):
        announcer = net.rng.choice(nodes)
        h = net.random_target()
        done = net.run_until_done(announcer, net.announce(announcer, h, 10_000 + i))
        assert done.announced >= 6
        hashes.append((h, 10_000 + i, announcer))
    for h, port, announcer in hashes:
        seeker = net.rng.choice([n for n in nodes if n is not announcer])
        done = net.run_until_done(seeker, net.get_peers(seeker, h))
        assert done.peers >= 1
        peers = {
            p
            for ev in seeker.events
            if isinstance(ev, PeersFound) and ev.request_id == done.request_id
            for p in ev.peers
        }
        assert (announcer.addr[0], port) in peers


@pytest.mark.slow
def test_lookups_survive_packet_loss(make_sim: Callable[..., SimNetwork]) -> None:
    net = make_sim(7, loss=0.05)
    nodes = net.grow(1000)
    net.run_for(30)
    exact, found = lookup_accuracy(net, nodes, 60)
    print(f"\n1000 nodes, 5% loss: {exact:.1%} exact, {found:.2%} found")
    assert found >= 0.95


def test_simulation_is_deterministic(make_sim: Callable[..., SimNetwork]) -> None:
    def run() -> tuple[int, int, list[int]]:
        net = make_sim(11, loss=0.02)
        nodes = net.grow(100)
        net.run_for(20)
        return net.delivered, net.lost, [len(n.core.routing) for n in nodes]

    assert run() == run()


def test_bootstrap_retries_with_backoff_when_nobody_answers(sim: SimNetwork) -> None:
    net = sim
    lonely = net.add_node()
    net.bootstrap(lonely, [("10.99.99.99", 6881)])  # nobody there
    net.run_for(40)
    stalls = [e for e in lonely.events if isinstance(e, BootstrapStalled)]
    assert len(stalls) >= 2
    assert [s.retry_in for s in stalls[:3]] == [2.0, 4.0, 8.0][: len(stalls[:3])]


@pytest.mark.slow
def test_lookups_beyond_the_transaction_table_queue_and_all_finish(
    make_sim: Callable[..., SimNetwork],
) -> None:
    # 40 lookups of alpha 3 from a node with 8 transaction slots: most of each batch finds
    # no slot. Each lookup must give back what it could not send and wait its turn; one
    # that kept phantom requests "in flight" would sit until its 60 s lookup timeout.
    net = make_sim(12, latency=(0.01, 0.05))
    net.grow(150)
    busy = net.add_node(config=sim_config(max_pending=8))
    net.bootstrap(busy, [next(iter(net.nodes))])
    net.run_for(5)
    start = net.now
    rids = [net.find_node(busy, net.random_target()) for _ in range(40)]
    net.run_for(20)
    done = {e.request_id: e for e in busy.events if isinstance(e, LookupDone)}
    assert set(rids) <= set(done)
    assert not any(done[r].timed_out for r in rids)
    assert all(done[r].replied >= 8 for r in rids)
    assert net.now - start < 30
