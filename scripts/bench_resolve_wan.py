"""``bench_resolve.py --wan``: magnetar and libtorrent resolving bare magnets in the WAN lab.

The loopback benchmarks have a 0.1 ms round trip; the real DHT has 50-300 ms, loss and dead
nodes. This one builds an emulated internet (``wanlab``, in a private network namespace made
with ``unshare -n``; root) and in it:

* a libtorrent 2.1.1 DHT of ``--nodes`` sessions (default 30), one per lab address, each told
  of a few others (``add_dht_node``), all in this process;
* ``--dead`` (default 10) more sessions that join, get into the others' tables, then exit:
  dead entries, silent as behind a NAT (the lab drops ICMP port unreachable), like the
  short-lived clients real tables keep;
* per round, a fresh torrent seeded by a random live node and announced; its bare magnet (no
  ``x.pe``, no trackers) is resolved by ``magnetar resolve`` and by libtorrent as a client
  (``scripts/lt_resolve_client.py``, a lab address of its own), one after the other, the
  order alternating; both are given the same three DHT nodes.

Every tool is timed from process start to exit, its .torrent checked byte for byte. Printed:
per tool the median wall time and success rate, magnetar's trace medians, and the ratio.

    python scripts/bench_resolve.py --wan --rounds 5
    python scripts/bench_resolve.py --wan --rounds 1 --nodes 10 --dead 3 --json  # the test's

Nothing leaves the namespace: every address is in the lab prefix, and the lab is torn down
(with every session and child) on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.bench_resolve import (  # noqa: E402
    GRACE_S,
    LT_CLIENT,
    Sample,
    find_magnetar,
    python_env,
    run_timed,
    verify_torrent,
)

TOOLS = ("magnetar", "libtorrent")
LAB_PREFIX = "198.18.0.0/15"
DHT_PORT = 6881
#: Each live node is told of this many others (and the first node) at start.
DEGREE = 8
INSIDE_FLAG = "--wan-inside"
#: DHT nodes both tools are given (the first live ones).
ENTRY_NODES = 3
#: How long a round waits for its seed's announce to be stored, re-announcing meanwhile.
ANNOUNCE_WAIT_S = 15.0
#: How many nodes may try to seed a round's torrent before the round goes on regardless.
SEEDERS_TRIED = 3
REANNOUNCE_S = 3.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench_resolve.py --wan",
        description="magnetar vs libtorrent resolving bare magnets in the WAN lab (root).",
    )
    p.add_argument("--rounds", type=int, default=5, help="magnets resolved by each tool")
    p.add_argument("--nodes", type=int, default=30, help="live libtorrent DHT nodes")
    p.add_argument("--dead", type=int, default=10, help="nodes that join, then exit")
    p.add_argument("--delay", default="10-150", help="one-way delay per pair, ms (MIN-MAX)")
    p.add_argument("--jitter", type=float, default=5.0, help="ms of jitter per packet")
    p.add_argument("--loss", type=float, default=0.02, help="loss probability per packet")
    p.add_argument("--seed", type=int, default=1, help="seeds the lab and the choices here")
    p.add_argument("--timeout", type=float, default=30.0, help="per tool and round, seconds")
    p.add_argument("--magnetar-src", type=Path, default=ROOT, help="magnetar's source tree")
    p.add_argument(
        "--magnetar-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for magnetar resolve (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print JSON on stdout (text on stderr)")
    p.add_argument(INSIDE_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rounds < 1 or args.nodes < 4 or args.dead < 0 or args.timeout <= 0:
        p.error("need --rounds >= 1, --nodes >= 4, --dead >= 0, --timeout > 0")
    return args


def main(argv: list[str]) -> int:
    """Entry from ``bench_resolve.py --wan``: re-run inside ``unshare -n``, or do the work."""
    args = parse_args(argv)
    if args.wan_inside:
        return inside(args)
    problem = _lab_problem()
    if problem is not None:
        print(f"bench_resolve --wan: {problem}", file=sys.stderr)
        return 2
    env = dict(os.environ, WANLAB_UNSHARED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    bound = 120 + args.rounds * 2 * (args.timeout + GRACE_S)
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_resolve.py"), "--wan", *argv]
    argv_inside = ["timeout", f"{bound:.0f}", "unshare", "-n", *cmd, INSIDE_FLAG]
    return subprocess.run(argv_inside, env=env).returncode


def _lab_problem() -> str | None:
    if os.geteuid() != 0:
        return "the WAN lab needs root (unshare -n, a TUN device, policy routing)"
    for tool in ("unshare", "ip", "timeout"):
        if shutil.which(tool) is None:
            return f"the WAN lab needs the {tool} command"
    try:
        import libtorrent  # noqa: F401
    except ImportError as exc:
        return f"libtorrent is not importable ({exc}): pip install libtorrent==2.1.1"
    return None


# --------------------------------------------------------------------------------------------
# Inside the namespace


def inside(args: argparse.Namespace) -> int:
    from wanlab import Profile, WanLab

    say: Callable[[str], None] = _log if args.json else print
    rng = random.Random(args.seed)
    profile = Profile(
        delay_ms=Profile.parse_delay(args.delay),
        jitter_ms=args.jitter,
        loss=args.loss,
        seed=args.seed,
    )
    # .1: magnetar (the lab route's source address); then the live nodes, the dead ones and
    # one address per libtorrent client run.
    hosts = 1 + args.nodes + args.dead + args.rounds
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-wan-") as tmp,
        WanLab(profile, prefix=LAB_PREFIX, hosts=hosts) as lab,
    ):
        workdir = Path(tmp)
        addrs = lab.addresses
        live_ips = addrs[1 : 1 + args.nodes]
        dead_ips = addrs[1 + args.nodes : 1 + args.nodes + args.dead]
        client_ips = addrs[1 + args.nodes + args.dead :]
        say(
            f"bench_resolve --wan: {args.nodes} libtorrent DHT nodes and {args.dead} dead"
            f" entries in the WAN lab (one-way {args.delay} ms, jitter {args.jitter:g} ms,"
            f" loss {args.loss:g}), {args.rounds} rounds, timeout {args.timeout:g} s"
        )
        with _swarm(live_ips, dead_ips, workdir, rng) as (nodes, dead_entries):
            say(
                f"  DHT up in {time.monotonic() - started:.1f} s; dead entries in live tables:"
                f" {dead_entries}"
            )
            samples = _rounds(args, nodes, client_ips, workdir, rng)
    summary = _summarize(samples)
    _report(summary, say)
    say(f"  lab: {', '.join(f'{k} {v}' for k, v in lab.stats.items())}")
    if args.json:
        doc = {
            "config": {
                k: getattr(args, k)
                for k in ("rounds", "nodes", "dead", "delay", "jitter", "loss", "seed", "timeout")
            },
            "magnetar_args": args.magnetar_arg,
            "summary": summary,
            "samples": [s.as_dict() for s in samples],
            "lab": lab.stats,
        }
        print(json.dumps(doc, indent=2))
    return 0


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _lab_filter(lt: Any) -> Any:
    """An IP filter that lets only the lab's prefix through."""
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1)
    f.add_rule("198.18.0.0", "198.19.255.255", 0)
    f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    return f


@contextlib.contextmanager
def _swarm(
    live_ips: list[str], dead_ips: list[str], workdir: Path, rng: random.Random
) -> Iterator[tuple[list[Any], int]]:
    """The live nodes (yielded with the count of dead entries in their tables), the dead
    ones already gone."""
    import libtorrent as lt

    from tests.interop.ltswarm import LtNode

    def start(ip: str) -> LtNode:
        node = LtNode(ip, port=DHT_PORT, workdir=workdir / ip, start_timeout=10.0)
        node.session.set_ip_filter(_lab_filter(lt))
        return node

    nodes: list[LtNode] = []
    try:
        for ip in live_ips:
            nodes.append(start(ip))
        for i, node in enumerate(nodes):
            others = [n for n in nodes if n is not node]
            for other in {nodes[0], *rng.sample(others, min(DEGREE, len(others)))} - {node}:
                node.add_dht_node(other.addr)
            if i % 5 == 4:
                _pump(nodes, 0.05)
        _wait(lambda: all(len(n.routing_table()) >= 4 for n in nodes), 30.0, "tables filled")
        leavers = [start(ip) for ip in dead_ips]
        for node in leavers:
            for other in rng.sample(nodes, min(DEGREE, len(nodes))):
                node.add_dht_node(other.addr)
                other.add_dht_node(node.addr)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:  # they look themselves up: others insert them
            _pump([*nodes, *leavers], 0.05)
        for node in leavers:
            node.close()
        dead = {(ip, DHT_PORT) for ip in dead_ips}
        entries = sum(1 for n in nodes for _, addr in n.routing_table() if addr in dead)
        yield nodes, entries
    finally:
        for node in nodes:
            node.close()


def _pump(nodes: list[Any], wait: float) -> None:
    for node in nodes:
        node.pump()
    time.sleep(wait)


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"WAN lab swarm: no {what} after {timeout:g} s")
        time.sleep(0.1)


def _rounds(
    args: argparse.Namespace,
    nodes: list[Any],
    client_ips: list[str],
    workdir: Path,
    rng: random.Random,
) -> list[Sample]:
    from tests.interop.ltswarm import make_torrent

    env = python_env("cached", workdir)
    magnetar_argv, magnetar_env, _ = find_magnetar(args.magnetar_src, env)
    # The same few DHT nodes for both tools, as a client has a few routers: with one, a
    # libtorrent client whose first ping to it was lost kept an empty table (1 round in 20).
    entries = [f"{ip}:{port}" for ip, port in (n.addr for n in nodes[:ENTRY_NODES])]
    samples: list[Sample] = []
    for r in range(args.rounds):
        spec = make_torrent(workdir, "single")
        # A libtorrent node whose announce reaches nobody within the wait (it happens in a
        # small lab, about one seed in three with 10 nodes) would make the round measure
        # nothing: another node seeds instead, up to SEEDERS_TRIED.
        for seeder in rng.sample(nodes[1:], min(SEEDERS_TRIED, len(nodes) - 1)):
            handle = seeder.seed(spec, timeout=10.0)
            if _announced(nodes, handle, spec.info_hash, seeder.addr):
                break
            with contextlib.suppress(Exception):
                seeder.session.remove_torrent(handle)
        order = TOOLS if r % 2 == 0 else TOOLS[::-1]
        for tool in order:
            where = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=workdir))
            out = where / "out.torrent"
            if tool == "magnetar":
                argv = [*magnetar_argv, "resolve", spec.magnet]
                argv += [arg for entry in entries for arg in ("-b", entry)]
                argv += ["-o", str(out), "--json", "--timeout", f"{args.timeout:g}"]
                argv += args.magnetar_arg
                run_env = magnetar_env
            else:
                argv = [sys.executable, str(LT_CLIENT), spec.magnet, "-o", str(out)]
                argv += ["--ip", client_ips[r]]
                argv += [arg for entry in entries for arg in ("--dht-node", entry)]
                argv += ["--timeout", f"{args.timeout:g}", "--kick", "0.1"]
                run_env = env
            t = run_timed(argv, timeout=args.timeout + GRACE_S, cwd=where, env=run_env)
            sample = Sample(tool, r, t.wall, False)
            if t.returncode is None:
                sample.error = f"killed after {args.timeout + GRACE_S:g} s"
            elif not out.exists():
                tail = " | ".join((t.stderr or t.stdout).strip().splitlines()[-2:])
                sample.error = f"exit {t.returncode}, no .torrent: {tail[-300:]}"
            else:
                sample.error = verify_torrent(out.read_bytes(), spec.info)
            sample.ok = sample.error is None
            with contextlib.suppress(ValueError, IndexError):
                rec = json.loads(t.stdout.strip().splitlines()[-1])
                sample.in_process = rec.get("seconds")
                keys = ("trace", "peer", "marks", "error")
                sample.detail = {k: rec[k] for k in keys if k in rec}
            status = "ok" if sample.ok else f"FAILED ({sample.error})"
            _log(f"  [wan round {r + 1}/{args.rounds}] {tool}: {t.wall:.3f} s {status}")
            samples.append(sample)
            shutil.rmtree(where, ignore_errors=True)
        with contextlib.suppress(Exception):
            seeder.session.remove_torrent(seeder.session.get_torrents()[0])
    return samples


def _announced(nodes: list[Any], handle: Any, info_hash: bytes, peer: tuple[str, int]) -> bool:
    """Wait until several nodes stored the seed's announce (a lookup from anywhere can then
    find it), announcing again every few seconds: an announce may be lost like any packet.
    False if it never reached that many."""
    deadline = time.monotonic() + ANNOUNCE_WAIT_S
    next_kick = time.monotonic() + REANNOUNCE_S
    while _stored(nodes, info_hash, peer) < 3:
        now = time.monotonic()
        if now > deadline:
            _log(f"  (the announce of {info_hash.hex()} from {peer[0]} reached fewer than 3 nodes)")
            return False
        if now > next_kick:
            handle.force_dht_announce()
            next_kick = now + REANNOUNCE_S
        time.sleep(0.1)
    return True


def _stored(nodes: list[Any], info_hash: bytes, peer: tuple[str, int]) -> int:
    """How many nodes other than ``peer`` have stored its announce for ``info_hash``."""
    count = 0
    for node in nodes:
        if node.addr != peer and any(p[0] == peer[0] for p in node.announces_seen(info_hash)):
            count += 1
    return count


# --------------------------------------------------------------------------------------------
# Summary


def _summarize(samples: list[Sample]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tool in TOOLS:
        mine = [s for s in samples if s.tool == tool]
        good = [s for s in mine if s.ok]
        walls = [s.wall for s in good]
        d: dict[str, Any] = {
            "runs": len(mine),
            "ok": len(good),
            "success_rate": round(len(good) / len(mine), 3) if mine else None,
            "wall_median": round(statistics.median(walls), 3) if walls else None,
            "wall_min": round(min(walls), 3) if walls else None,
            "wall_max": round(max(walls), 3) if walls else None,
        }
        if tool == "magnetar":
            phases: dict[str, list[float]] = {}
            for s in good:
                for item in s.detail.get("trace") or ():
                    phases.setdefault(str(item["phase"]), []).append(float(item["seconds"]))
            d["trace"] = {p: round(statistics.median(v), 3) for p, v in phases.items()}
        errors = sorted({s.error for s in mine if s.error})
        if errors:
            d["errors"] = errors[:5]
        out[tool] = d
    mg, lt = out["magnetar"]["wall_median"], out["libtorrent"]["wall_median"]
    out["ratio_magnetar_libtorrent"] = round(mg / lt, 3) if mg and lt else None
    return out


def _report(summary: dict[str, Any], say: Callable[[str], None]) -> None:
    for tool in TOOLS:
        d = summary[tool]
        med = "-" if d["wall_median"] is None else f"{d['wall_median']:.3f} s"
        spread = "" if d["wall_median"] is None else f" (min {d['wall_min']}, max {d['wall_max']})"
        say(f"  {tool:<10} median {med}{spread}, {d['ok']}/{d['runs']} resolved")
        if d.get("trace"):
            say(
                "             trace (median s): "
                + ", ".join(f"{p} {v}" for p, v in d["trace"].items())
            )
        for err in d.get("errors", []):
            say(f"             error: {err}")
    if summary["ratio_magnetar_libtorrent"] is not None:
        say(
            f"  ratio magnetar/libtorrent (median wall): {summary['ratio_magnetar_libtorrent']:.2f}"
        )
