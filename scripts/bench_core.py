#!/usr/bin/env python3
"""Queries per second of the DHT core alone: no sockets, no event loop, no other process.

Feeds ``DhtProtocol.receive_datagram`` pre-built queries (the mix and shape of
scripts/krpc_load.py: ping/find_node/get_peers, BEP 43 ``ro`` unless ``--no-ro``) from
``--sources`` addresses and drains ``datagrams_to_send`` after each one, as ``dht.io.node`` does.
The core has the CLI's default limits and a routing table of ``--table`` nodes. Prints the
best of ``--repeat`` rounds in queries/s and microseconds per query: a steady figure for
comparing changes to the hot path, unlike a flood over loopback on a shared machine.

    python scripts/bench_core.py --repeat 5
    python scripts/bench_core.py --public --no-ro   # rate-limited sources that join the table
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dht.addresses import AddressPolicy  # noqa: E402
from dht.config import DhtConfig  # noqa: E402
from dht.protocol import DhtProtocol  # noqa: E402

METHODS = (b"ping", b"find_node", b"get_peers")


def build_queries(n: int, rng: random.Random, read_only: bool) -> list[bytes]:
    """``n`` queries cycling through the methods, each with its own id, target and ``t``."""
    ro = b"2:roi1e" if read_only else b""
    out = []
    for i in range(n):
        m = METHODS[i % 3]
        nid = rng.randbytes(20)
        if m == b"ping":
            args = b"d2:id20:" + nid + b"e"
        elif m == b"find_node":
            args = b"d2:id20:" + nid + b"6:target20:" + rng.randbytes(20) + b"e"
        else:
            args = b"d2:id20:" + nid + b"9:info_hash20:" + rng.randbytes(20) + b"e"
        head = b"d1:a" + args + b"1:q" + str(len(m)).encode() + b":" + m + ro
        out.append(head + b"1:t4:" + i.to_bytes(4, "big") + b"1:y1:qe")
    return out


def make_core(table: int, public: bool, rng: random.Random) -> DhtProtocol:
    host = "0.0.0.0" if public else "127.0.1.2"
    config = DhtConfig(
        secure_id=True,
        rate_per_ip=50.0,
        rate_burst=200.0,
        max_out_rate=500.0,
        address_policy=AddressPolicy.for_network(host, ()),
    )
    core = DhtProtocol(rng=rng, now=0.0, config=config)
    for i in range(table):
        ip = (
            f"{1 + i // 65536 % 200}.{i // 256 % 256}.{i % 256}.7"
            if public
            else f"127.2.{i // 256}.{i % 256}"
        )
        core.routing.node_seen(rng.randbytes(20), (ip, 6881), 0.0)
    return core


def run_round(core: DhtProtocol, packets: list[tuple[bytes, tuple[str, int]]], now: float) -> float:
    receive = core.receive_datagram
    drain = core.datagrams_to_send
    start = time.perf_counter()
    for data, addr in packets:
        receive(data, addr, now)
        drain(now)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queries", type=int, default=60_000, help="queries per round")
    p.add_argument("--sources", type=int, default=1000, help="distinct source addresses")
    p.add_argument("--table", type=int, default=8, help="nodes in the routing table")
    p.add_argument("--repeat", type=int, default=5, help="rounds (the best is reported)")
    p.add_argument("--public", action="store_true", help="public sources (rate-limited)")
    p.add_argument("--no-ro", action="store_true", help="queries without BEP 43 ro=1")
    p.add_argument("--profile", action="store_true", help="cProfile one round")
    args = p.parse_args(argv)
    rng = random.Random(1)
    core = make_core(args.table, args.public, rng)
    queries = build_queries(args.queries, rng, not args.no_ro)
    if args.public:
        srcs = [
            (f"{20 + i // 65536}.{i // 256 % 256}.{i % 256}.9", 40000 + i % 20000)
            for i in range(args.sources)
        ]
    else:
        srcs = [
            (f"127.100.{i // 250}.{1 + i % 250}", 40000 + i % 20000) for i in range(args.sources)
        ]
    packets = [(q, srcs[i % len(srcs)]) for i, q in enumerate(queries)]
    # Advance virtual time per round so per-source rate limits refill as in a real flood of
    # --sources addresses at this rate (~60k/s spread over them).
    now = 1.0
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        run_round(core, packets, now)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0
    best = float("inf")
    for _ in range(args.repeat):
        now += 1.0
        best = min(best, run_round(core, packets, now))
    sent = core.stats.sent
    per_q = best / len(packets)
    print(
        f"core: {len(packets) / best:,.0f} queries/s ({per_q * 1e6:.2f} us/query; best of "
        f"{args.repeat}; {args.sources} sources, table {len(core.routing)}, "
        f"{'public' if args.public else 'loopback'}, {'no ro' if args.no_ro else 'ro'}; "
        f"sent {sent}, dropped {dict(core.stats.dropped)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
