#!/usr/bin/env python3
"""A libtorrent client with default settings fetching metadata from ``magnetar serve`` and
from a libtorrent seed, on loopback: how long from adding the magnet to having the metadata.

libtorrent dials uTP first and falls back to TCP only once that attempt times out, so a
server without uTP costs every libtorrent client (most of the swarm) seconds. The setup: a
private DHT of 8 libtorrent nodes (tests/interop/ltswarm.py), ``magnetar serve`` in its own
process (DHT, TCP and uTP on one port) serving torrent A, a libtorrent seed with default
settings serving torrent B. Each round a fresh libtorrent client (default settings, its own
loopback address, joined to the DHT) resolves A's bare magnet, another fresh one B's; the
order alternates between rounds. Prints every fetch, the medians and their ratio.

    python scripts/bench_serve_lt.py --rounds 10
    python scripts/bench_serve_lt.py --rounds 5 --no-utp     # serve as it was: TCP only

Only loopback addresses are used (127.0.8.x for the DHT, 127.0.9.x for clients).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from tests.interop.ltswarm import LtNode

#: libtorrent's defaults for peer connections (the harness switches uTP off): uTP and TCP.
DEFAULT_TRANSPORTS: dict[str, Any] = {"enable_outgoing_utp": True, "enable_incoming_utp": True}


def wait_bootstrapped(node: LtNode) -> None:
    """Until the client's DHT has joined: a magnet added earlier waits for an announce timer."""
    node.wait_for(lambda: node._state.bootstrapped, 5.0, "dht_bootstrap_alert")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=10, help="fetches from each (default 10)")
    p.add_argument("--kind", default="multi", choices=["single", "multi", "big"])
    p.add_argument("--timeout", type=float, default=30.0, help="per fetch, seconds")
    p.add_argument("--no-utp", action="store_true", help="run serve with --no-utp (TCP only)")
    p.add_argument("--json", action="store_true", help="one JSON object at the end")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tests.interop.ltswarm import LtNode, LtSwarm, make_torrent
    from tests.interop.ports import free_tcp_udp_port

    times: dict[str, list[float]] = {"serve": [], "libtorrent": []}
    with tempfile.TemporaryDirectory(prefix="bench-serve-lt-") as tmp, LtSwarm(
        8, first_ip="127.0.8.2"
    ) as swarm:
        work = Path(tmp)
        served = make_torrent(work, args.kind, name="served-by-magnetar")
        seeded = make_torrent(work, args.kind, name="seeded-by-libtorrent")
        seed = swarm.add_node(**DEFAULT_TRANSPORTS)
        swarm.seed(seeded, node=seed)
        torrent = work / "served.torrent"
        torrent.write_bytes(served.torrent)
        port = free_tcp_udp_port()
        command = [
            sys.executable, "-m", "magnet", "serve", str(torrent),
            "--host", "127.0.0.1", "--port", str(port), "--no-trackers",
            *[f"-b{h}:{p}" for h, p in swarm.bootstrap_addrs()[:4]],
        ]  # fmt: skip
        if args.no_utp:
            command.append("--no-utp")
        server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            assert server.stdout is not None
            if not server.stdout.readline():  # its magnet link: it listens
                raise RuntimeError("magnetar serve exited before listening")
            swarm.wait_announced(served.info_hash, 2, 20.0, peer=("127.0.0.1", port))
            client = 2
            for round_ in range(args.rounds):
                pairs = [("serve", served), ("libtorrent", seeded)]
                for name, spec in pairs if round_ % 2 == 0 else pairs[::-1]:
                    ip = f"127.0.9.{client}"
                    client += 1
                    with LtNode(ip, dht_nodes=swarm.bootstrap_addrs(), **DEFAULT_TRANSPORTS) as c:
                        wait_bootstrapped(c)
                        got = c.resolve_magnet(spec.magnet, timeout=args.timeout)
                    if got.info != spec.info:
                        raise RuntimeError(f"{name}: the metadata differs")
                    times[name].append(got.elapsed)
                    if not args.json:
                        print(f"round {round_ + 1:2d}  from {name:10s} {got.elapsed:7.3f} s")
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    serve_median = statistics.median(times["serve"])
    lt_median = statistics.median(times["libtorrent"])
    summary = {
        "rounds": args.rounds,
        "kind": args.kind,
        "serve_utp": not args.no_utp,
        "serve_median_s": round(serve_median, 4),
        "libtorrent_median_s": round(lt_median, 4),
        "ratio": round(serve_median / lt_median, 2),
        "serve_s": [round(t, 4) for t in times["serve"]],
        "libtorrent_s": [round(t, 4) for t in times["libtorrent"]],
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"median: from magnetar serve{'' if summary['serve_utp'] else ' (--no-utp)'}"
            f" {serve_median:.3f} s, from a libtorrent seed {lt_median:.3f} s,"
            f" ratio {summary['ratio']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
