#!/usr/bin/env python3
"""The TCP/uTP race of ``magnet.io.dial`` under internet latency and loss (the WAN lab).

Runs inside ``python -m wanlab run`` (it reads the lab's addresses from ``WANLAB_HOSTS``):
four ``serve_torrents`` on lab hosts 2-5 (TCP and uTP), each serving a 96 KiB info dict,
and from host 1 ``magnet.resolve`` with the peer in the link's ``x.pe`` (no DHT), over each
way of dialling in turn: TCP and uTP at once, TCP first and uTP after 250 ms (the default),
TCP only, uTP only. Each pair of hosts has its own one-way delay, drawn once by the lab.
Prints one JSON object: per variant the resolves, median, p90, mean, failures, and which
transport carried the metadata.

    python -m wanlab run --unshare --hosts 6 --delay 10-150 --jitter 5 --loss 0.02 -- \\
        python scripts/bench_dial_wan.py --rounds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import magnet  # noqa: E402
from dht.io.node import Node  # noqa: E402
from magnet.io import dial  # noqa: E402
from magnet.io.serve import serve_torrents  # noqa: E402
from magnet.metadata import METADATA_PIECE  # noqa: E402
from magnet.torrentfile import parse_info  # noqa: E402
from tests.magnet.fakepeers import info_hash, make_info  # noqa: E402

INFO = make_info(6 * METADATA_PIECE)
#: name: (transport, stagger, order)
VARIANTS: dict[str, tuple[str, float, tuple[str, str]]] = {
    "auto, both at once": ("auto", 0.0, ("tcp", "utp")),
    "auto, TCP then uTP after 250 ms (default)": ("auto", 0.25, ("tcp", "utp")),
    "tcp only": ("tcp", 0.0, ("tcp", "utp")),
    "utp only": ("utp", 0.0, ("tcp", "utp")),
}
DefaultDialer = dial.Dialer


def dialer_with(stagger: float, order: tuple[str, str]) -> type[dial.Dialer[Any]]:
    """``magnet.io.dial.Dialer`` with other defaults (resolve makes one per link)."""

    class Variant(DefaultDialer[Any]):
        def __init__(self, transport: str = "auto", **kw: Any) -> None:
            super().__init__(transport, **{**kw, "stagger": stagger, "order": order})

    return Variant


async def bench(hosts: list[str], rounds: int) -> dict[str, Any]:
    stop = asyncio.Event()
    nodes, jobs, peers = [], [], []
    for host in hosts[1:5]:
        node = await Node(host, 0, bootstrap_routers=[]).start()
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        jobs.append(
            asyncio.create_task(
                serve_torrents(
                    [parse_info(INFO)],
                    node=node,
                    host=host,
                    stop=stop,
                    ready=ready,
                    use_trackers=False,
                )
            )
        )
        nodes.append(node)
        peers.append((host, await ready))
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    failed: Counter[str] = Counter()
    carried: dict[str, Counter[str]] = {name: Counter() for name in VARIANTS}
    try:
        for _ in range(rounds):
            for host, port in peers:
                link = f"magnet:?xt=urn:btih:{info_hash(INFO).hex()}&x.pe={host}:{port}"
                for name, (transport, stagger, order) in VARIANTS.items():
                    dial.Dialer = dialer_with(stagger, order)  # type: ignore[misc]
                    start = time.monotonic()
                    try:
                        result = await magnet.resolve(
                            link, use_dht=False, use_trackers=False, transport=transport,
                            timeout=20, allow_private=True,
                        )  # fmt: skip
                    except magnet.ResolveError as exc:
                        failed[name] += 1
                        print(f"{name}: {exc}", file=sys.stderr)
                        continue
                    finally:
                        dial.Dialer = DefaultDialer  # type: ignore[misc]
                    times[name].append(time.monotonic() - start)
                    carried[name][result.transport] += 1
    finally:
        stop.set()
        for job in jobs:
            await job
        for node in nodes:
            node.close()
    out: dict[str, Any] = {}
    for name, ts in times.items():
        ts.sort()
        out[name] = {
            "resolves": len(ts),
            "median_s": round(statistics.median(ts), 3) if ts else None,
            "p90_s": round(ts[int(0.9 * (len(ts) - 1))], 3) if ts else None,
            "mean_s": round(statistics.mean(ts), 3) if ts else None,
            "failed": failed[name],
            "metadata_over": dict(carried[name]),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=10, help="resolves per variant and peer")
    args = p.parse_args(argv)
    hosts = os.environ.get("WANLAB_HOSTS", "").split()
    if len(hosts) < 5:
        print("run me inside `python -m wanlab run --hosts 5 (or more) -- ...`", file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(bench(hosts, args.rounds)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
