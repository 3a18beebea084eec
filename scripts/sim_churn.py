#!/usr/bin/env python3
"""A long simulated life of a DHT: many nodes, hours of virtual time, nodes leaving and joining.

Runs the production core in ``dht.simulation`` and reports, every few simulated hours, how
healthy the routing tables are (the share of table entries that are live nodes) and how well
lookups work (the share that find exactly the true K closest live nodes).

    python scripts/sim_churn.py --nodes 1000 --hours 24 --churn 0.02
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from dht.simulation import SimNetwork, sim_config


@dataclass
class Checkpoint:
    hours: float
    alive: int
    table_alive: float  # share of routing-table entries that are live nodes
    good: float  # share of table entries the tables themselves count as good
    mean_table: float
    lookups_exact: float  # share of lookups that found the true K closest
    lookups_found: float  # share of the true K closest found, over all lookups
    wall_s: float


def run(
    nodes: int,
    hours: float,
    churn: float,
    step_s: float = 600.0,
    every_h: float = 4.0,
    lookups: int = 50,
    seed: int = 24,
    report: bool = True,
) -> list[Checkpoint]:
    """Grow ``nodes``, then every ``step_s`` replace a ``churn`` share of them."""
    started = time.monotonic()
    net = SimNetwork(seed=seed, config=sim_config(maintenance_s=30.0))
    net.grow(nodes)
    for n in net.alive():
        n.keep_events = False
    out: list[Checkpoint] = []
    steps_per_check = max(1, round(every_h * 3600 / step_s))
    for i in range(round(hours * 3600 / step_s)):
        net.run_for(step_s)
        alive = net.alive()
        k = int(len(alive) * churn)
        for n in net.rng.sample(alive, k):
            net.remove_node(n)
        alive = net.alive()
        for _ in range(k):
            new = net.add_node()
            new.keep_events = False
            net.bootstrap(new, [s.addr for s in net.rng.sample(alive, 3)])
        if (i + 1) % steps_per_check == 0:
            out.append(checkpoint(net, (i + 1) * step_s / 3600, lookups, started))
            if report:
                print(json.dumps(asdict(out[-1])), flush=True)
    return out


def checkpoint(net: SimNetwork, hours: float, lookups: int, started: float) -> Checkpoint:
    alive = net.alive()
    entries = live = good = 0
    for n in alive:
        for e in n.core.routing:
            entries += 1
            peer = net.nodes.get(e.addr)
            live += peer is not None and peer.core.node_id == e.id
            good += e.is_good(net.now)
    exact = found = 0
    for _ in range(lookups):
        n = net.rng.choice(alive)
        n.keep_events = True
        target = net.random_target()
        done = net.run_until_done(n, net.find_node(n, target))
        want = [x for x in net.true_closest(target, 9) if x != n.core.node_id][:8]
        got = [c.id for c in done.nodes]
        exact += got == want
        found += len(set(got) & set(want))
        n.keep_events = False
        n.events.clear()
    return Checkpoint(
        hours=hours,
        alive=len(alive),
        table_alive=round(live / max(1, entries), 4),
        good=round(good / max(1, entries), 4),
        mean_table=round(entries / max(1, len(alive)), 1),
        lookups_exact=round(exact / lookups, 3),
        lookups_found=round(found / (8 * lookups), 4),
        wall_s=round(time.monotonic() - started, 1),
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--churn", type=float, default=0.02, help="share replaced every 10 minutes")
    p.add_argument("--every", type=float, default=4.0, help="hours between checkpoints")
    p.add_argument("--seed", type=int, default=24)
    args = p.parse_args()
    run(args.nodes, args.hours, args.churn, every_h=args.every, seed=args.seed)


if __name__ == "__main__":
    main()
