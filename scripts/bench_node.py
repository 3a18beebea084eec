#!/usr/bin/env python3
"""Flood DHT nodes with KRPC queries and compare answered queries per second.

Targets, each flooded in turn by the same load generator (scripts/krpc_load.py) running in
its own process, from ``--sources`` loopback addresses with ``--window`` queries in flight:

* ``libtorrent``: a libtorrent 2.1.1 node (tests/interop/ltswarm.py) with its DHT rate limits
  raised, inside a swarm of ``--swarm`` more nodes so its routing table is full and its
  find_node/get_peers replies carry 8 nodes;
* ``ours``: magnetar's node, started from ``--ours-cmd`` (placeholders ``{host}``, ``{port}``,
  ``{bootstrap}`` = comma-separated ``host:port`` of the swarm); the swarm's nodes are told
  about it. Skipped, with a message, when the option is absent or the node does not answer a
  ping within ``--ours-startup`` seconds;
* ``trivial``: a uvloop responder that only decodes and encodes (the generator's ceiling).

Example::

    python scripts/bench_node.py --seconds 3 --sources 10000 \\
        --ours-cmd 'python -m magnet node --host {host} --port {port} --bootstrap {bootstrap}'

Everything stays on 127.0.0.0/8; every process this script starts is stopped before it exits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bencode2  # noqa: E402

from scripts.krpc_load import (  # noqa: E402
    LoadConfig,
    LoadResult,
    parse_mix,
    run_load_in_process,
    run_trivial_responder,
)
from scripts.lt_resolve_client import setting_value  # noqa: E402

Addr = tuple[str, int]
TARGETS = ("trivial", "libtorrent", "ours")
#: where targets live; the load generator's sources start at 127.100.0.1
LT_FIRST_IP = "127.0.0.2"
OURS_HOST = "127.0.1.2"
DEFAULT_OURS_CMD = (
    f"{sys.executable} -m magnet -q node --host {{host}} --port {{port}}"
    " --bootstrap {bootstrap} --rate-limit 0 --max-out-rate 0"
)
TRIVIAL_HOST = "127.0.1.3"


@dataclass(slots=True)
class Outcome:
    """One target's runs (median reported), or why it was skipped."""

    target: str
    runs: list[tuple[LoadResult, float]] = field(default_factory=list)  # (result, target CPU)
    skipped: str | None = None

    @property
    def answered_per_s(self) -> float | None:
        """Median answered queries per second over the runs."""
        if not self.runs:
            return None
        return statistics.median(r.answered_per_s for r, _ in self.runs)

    @property
    def answered_per_cpu_s(self) -> float | None:
        """Median answered queries per CPU-second of the target: steadier than the rate on a
        shared machine, where the target gets a varying share of a core."""
        per_cpu = [r.answered_per_s / cpu for r, cpu in self.runs if cpu > 0]
        return statistics.median(per_cpu) if per_cpu else None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "target": self.target,
            "answered_per_s": self.answered_per_s,
            "answered_per_cpu_s": self.answered_per_cpu_s,
        }
        if self.skipped is not None:
            d["skipped"] = self.skipped
        d["runs"] = [{**r.as_dict(), "target_cpu": cpu} for r, cpu in self.runs]
        return d


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def ping(addr: Addr, timeout: float) -> bool:
    """Whether ``addr`` answers a read-only KRPC ping within ``timeout`` seconds."""
    query = bencode2.bencode(
        {b"a": {b"id": os.urandom(20)}, b"q": b"ping", b"ro": 1, b"t": b"pi", b"y": b"q"}
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        try:
            s.sendto(query, addr)
            while True:
                data, src = s.recvfrom(4096)
                if src == addr and bencode2.bdecode(data).get(b"t") == b"pi":
                    return True
        except (OSError, ValueError, TypeError):
            return False


def flood(cfg: LoadConfig, target_pid: int) -> tuple[LoadResult, float]:
    """Run the load generator against ``cfg.target``; also the target's CPU use."""
    cpu0, t0 = _cpu_seconds(target_pid), time.monotonic()
    result = run_load_in_process(cfg)
    cpu = (_cpu_seconds(target_pid) - cpu0) / (time.monotonic() - t0)
    return result, round(cpu, 3)


# --------------------------------------------------------------------------------------------
# Targets


@contextlib.contextmanager
def trivial_target(use_uvloop: bool) -> Iterator[tuple[Addr, int]]:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    addr = (TRIVIAL_HOST, _free_udp_port(TRIVIAL_HOST))
    proc = ctx.Process(
        target=run_trivial_responder,
        args=(*addr, ready),
        kwargs={"use_uvloop": use_uvloop},
        name="trivial-krpc",
        daemon=True,
    )
    proc.start()
    try:
        if not ready.wait(20):
            raise RuntimeError("the trivial responder did not start")
        assert proc.pid is not None
        yield addr, proc.pid
    finally:
        proc.kill()
        proc.join(5)


@contextlib.contextmanager
def ours_target(
    cmd: str, bootstrap: list[Addr], startup: float
) -> Iterator[tuple[Addr, int] | str]:
    """Start our node; yield its address and pid, or a reason to skip it."""
    port = _free_udp_port(OURS_HOST)
    argv = shlex.split(
        cmd.format(
            host=OURS_HOST,
            port=port,
            # Never empty: an empty list would send our node to the public routers.
            bootstrap=",".join(f"{h}:{p}" for h, p in bootstrap) or "127.0.0.1:9",
        )
    )
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=errors, stderr=errors, start_new_session=True
            )
        except OSError as e:
            yield f"could not start {argv[0]!r}: {e}"
            return
        try:
            deadline = time.monotonic() + startup
            while not ping((OURS_HOST, port), 0.2):
                if proc.poll() is not None or time.monotonic() > deadline:
                    errors.seek(0)
                    lines = errors.read().decode(errors="replace").strip().splitlines()
                    tail = " | ".join(line.strip() for line in lines[-6:] if line.strip())
                    state = "exited" if proc.poll() is not None else "is not answering"
                    yield f"our node {state} ({' '.join(argv)}): {tail or 'no output'}"
                    return
            yield (OURS_HOST, port), proc.pid
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM our child's process group, SIGKILL after 3 s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(3)


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=3.0, help="measured flood per target")
    p.add_argument("--warmup", type=float, default=0.5, help="flood before measuring")
    p.add_argument("--sources", type=int, default=1000, help="distinct source addresses")
    p.add_argument("--window", type=int, default=192, help="queries in flight")
    p.add_argument("--mix", default="ping:1,find_node:1,get_peers:1", help="method weights")
    p.add_argument(
        "--target",
        action="append",
        choices=TARGETS,
        help="what to flood (repeatable; default: libtorrent and ours)",
    )
    p.add_argument(
        "--ours-cmd",
        default=DEFAULT_OURS_CMD,
        help="command starting our node: {host} {port} {bootstrap} (default: magnetar node"
        " without rate limits; for a bootstrap router with a full pool use"
        " 'python scripts/bench_pool.py serve {host} {port} --fill 100000')",
    )
    p.add_argument("--ours-startup", type=float, default=10.0, help="seconds to answer a ping")
    p.add_argument("--repeat", type=int, default=1, help="rounds over the targets (median)")
    p.add_argument("--swarm", type=int, default=8, help="libtorrent nodes around the target")
    p.add_argument(
        "--lt-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="libtorrent setting for the swarm (repeatable), e.g. dht_upload_rate_limit=10000000",
    )
    p.add_argument("--no-uvloop", action="store_true", help="trivial responder on asyncio")
    p.add_argument("--json", action="store_true", help="print JSON on stdout (text on stderr)")
    args = p.parse_args(argv)
    try:
        args.mix = parse_mix(args.mix)
    except ValueError as e:
        p.error(str(e))
    if not 1 <= args.sources <= 60000 or args.window < 1 or args.seconds <= 0 or args.repeat < 1:
        p.error("need 1 <= --sources <= 60000, --window >= 1, --seconds > 0, --repeat >= 1")
    if not 0 <= args.swarm <= 11:
        p.error("--swarm must be in 0..11 (2 cores: keep swarms small)")
    args.target = args.target or ["libtorrent", "ours"]
    args.lt_settings = {}
    for item in args.lt_setting:
        name, sep, value = item.partition("=")
        if not sep:
            p.error(f"--lt-setting wants NAME=VALUE, got {item!r}")
        args.lt_settings[name] = setting_value(value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    say: Callable[[str], None] = log if args.json else print
    load = os.getloadavg()[0]
    say(
        f"flood: {args.seconds:g} s per target x {args.repeat}, {args.sources} sources, "
        f"window {args.window}, mix {args.mix}; load average {load:.2f} on {os.cpu_count()} CPUs"
    )
    outcomes = {t: Outcome(t) for t in TARGETS if t in args.target}
    targets: dict[str, tuple[Addr, int]] = {}  # name -> (address, pid to watch for CPU)
    with contextlib.ExitStack() as stack:
        if "trivial" in outcomes:
            targets["trivial"] = stack.enter_context(trivial_target(not args.no_uvloop))
        swarm: Any = None
        if "libtorrent" in outcomes or "ours" in outcomes:
            try:
                from tests.interop.ltswarm import LOAD_TEST_SETTINGS, LtSwarm
            except ImportError as e:
                if "libtorrent" in outcomes:
                    outcomes["libtorrent"].skipped = f"libtorrent is not importable: {e}"
            else:
                settings = {**LOAD_TEST_SETTINGS, **args.lt_settings}
                swarm = LtSwarm(1 + args.swarm, first_ip=LT_FIRST_IP, **settings)
                stack.callback(swarm.close)
                if "libtorrent" in outcomes:
                    targets["libtorrent"] = (swarm[0].addr, os.getpid())
        if "ours" in outcomes:
            if not args.ours_cmd:
                outcomes["ours"].skipped = "no --ours-cmd given"
            else:
                bootstrap = swarm.bootstrap_addrs() if swarm is not None else []
                started = stack.enter_context(
                    ours_target(args.ours_cmd, bootstrap, args.ours_startup)
                )
                if isinstance(started, str):
                    outcomes["ours"].skipped = started
                else:
                    targets["ours"] = started
                    if swarm is not None:
                        swarm.add_external_node(started[0])
                        time.sleep(0.5)  # let the swarm's pings reach it
        for o in outcomes.values():
            if o.skipped:
                say(f"{o.target}: skipped: {o.skipped}")
        # Rounds alternate between targets so that a busy neighbour on the machine hurts all.
        for _ in range(args.repeat):
            for name, (addr, pid) in targets.items():
                result, cpu = flood(
                    LoadConfig(
                        target=addr,
                        seconds=args.seconds,
                        warmup=args.warmup,
                        sources=args.sources,
                        window=args.window,
                        mix=args.mix,
                    ),
                    pid,
                )
                outcomes[name].runs.append((result, cpu))
                bad = result.unmatched + result.malformed
                say(
                    f"{name}: {result.answered_per_s:,.0f} answered/s (sent "
                    f"{result.sent_per_s:,.0f}/s, errors {result.errors}, lost {result.lost}"
                    + (f", unmatched/malformed {bad}" if bad else "")
                    + f", {result.mean_reply_bytes:.0f} B/reply"
                    + f", p50 {result.latency_ms_p50} ms, p99 {result.latency_ms_p99} ms; CPU "
                    f"target {cpu:.2f}, generator {result.generator_cpu:.2f})"
                    + (" [generator-bound: a lower bound]" if result.generator_cpu > 0.9 else "")
                )

    summary = []
    for name, label in (("libtorrent", "libtorrent"), ("ours", "magnetar"), ("trivial", "trivial")):
        if (outcome := outcomes.get(name)) is not None:
            rate, per_cpu = outcome.answered_per_s, outcome.answered_per_cpu_s
            if rate is None:
                summary.append(f"{label}: skipped")
            else:
                summary.append(f"{label}: {rate:,.0f} answered/s ({per_cpu or 0:,.0f}/CPU-s)")
    lt, ours = outcomes.get("libtorrent"), outcomes.get("ours")
    ratio = ratio_cpu = None
    if lt and ours and lt.answered_per_s and ours.answered_per_s is not None:
        ratio = ours.answered_per_s / lt.answered_per_s
        summary.append(f"ratio ours/libtorrent {ratio:.2f}")
        if lt.answered_per_cpu_s and ours.answered_per_cpu_s is not None:
            ratio_cpu = ours.answered_per_cpu_s / lt.answered_per_cpu_s
            summary[-1] += f" (per CPU-second {ratio_cpu:.2f})"
    median = " (medians)" if args.repeat > 1 else ""
    say("; ".join(summary) + median)
    if args.json:
        doc = {
            "load_average": load,
            "config": {
                "seconds": args.seconds,
                "warmup": args.warmup,
                "sources": args.sources,
                "window": args.window,
                "mix": args.mix,
                "repeat": args.repeat,
                "swarm": args.swarm,
                "lt_settings": args.lt_settings,
            },
            "results": [o.as_dict() for o in outcomes.values()],
            "ratio_ours_libtorrent": None if ratio is None else round(ratio, 3),
            "ratio_ours_libtorrent_per_cpu_s": None if ratio_cpu is None else round(ratio_cpu, 3),
        }
        print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
