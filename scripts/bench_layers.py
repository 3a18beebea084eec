#!/usr/bin/env python3
"""Time to a complete v2 .torrent (info dict and BEP 52 piece layers) from a bare magnet.

Per run: a fresh 8-node libtorrent DHT on loopback (tests/interop/ltswarm.py) and, for each
tool, a fresh v2 (or hybrid, ``--version``) torrent of several files over one piece
(tests/interop/ltlayers.py: one of 514 pieces, whose layer takes two requests), seeded by
one libtorrent node. Tools, in an order that rotates from run to run:

* ``magnetar``: ``python -m magnet resolve MAGNET -b NODE -o OUT --json`` (the complete
  .torrent); its ``info`` and ``piece layers`` must equal the original's byte for byte.
* ``magnetar-info``: the same with ``--no-piece-layers`` (the info dict alone).
* ``libtorrent``: a libtorrent node already in the DHT adds the magnet with every file at
  priority 0 and ``close_redundant_connections`` off, and is timed until the .torrent it
  writes from its resume data holds every piece layer (polled every ~1 ms: a save of
  resume data per poll); its layers must equal the original's too.

Reported per tool, in seconds, medians: ``in-process`` (magnetar: the ``seconds`` of its
JSON, resolve call to result; libtorrent: add_torrent to layers complete), ``metadata``
(the same clock to the info dict verified: magnetar's trace, libtorrent's has_metadata),
``layers`` (the layers phase alone: magnetar's trace, metadata verified to piece layers
verified; libtorrent's in-process minus metadata), and for magnetar ``wall`` (the
process, start-up and imports included). Ratios compare the
in-process medians. libtorrent runs warm (its session has joined the DHT before the clock
starts);
magnetar joins the DHT from its bootstrap address inside the time measured.

Example::

    python scripts/bench_layers.py --runs 7

Everything stays on 127.0.0.0/8; every subprocess is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOOLS = ("magnetar", "magnetar-info", "libtorrent")


def magnetar(magnet: str, boot: tuple[str, int], out: Path, timeout: float, *extra: str) -> Any:
    """Run ``magnetar resolve``; return (wall seconds, JSON record)."""
    start = time.monotonic()
    command = [sys.executable, "-m", "magnet", "resolve", magnet, "-b", f"{boot[0]}:{boot[1]}"]
    proc = subprocess.run(
        [*command, "-o", str(out), "--json", "--timeout", str(timeout), *extra],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"magnetar exited {proc.returncode}: {proc.stderr.strip()}")
    return wall, json.loads(proc.stdout)


def run_once(tool: str, workdir: Path, version: str, timeout: float, seed: int) -> dict[str, float]:
    """One resolve by ``tool`` of a fresh torrent on a fresh swarm; its times in seconds."""
    from magnet.torrentfile import info_span
    from tests.interop.ltlayers import (
        lt_fetch_layers,
        make_layered,
        no_download_settings,
        piece_layers_value,
    )
    from tests.interop.ltswarm import LtSwarm

    spec = make_layered(workdir, version, seed=seed)  # type: ignore[arg-type]
    original = piece_layers_value(spec.torrent)
    with LtSwarm(8) as swarm:
        swarm.seed(spec, node=3)
        boot = swarm.bootstrap_addrs()[0]
        if tool == "libtorrent":
            client = swarm.add_node(**no_download_settings())
            metadata: list[float] = []
            torrent, seconds = lt_fetch_layers(
                client, spec.magnet_full, timeout, on_metadata=metadata.append
            )
            if piece_layers_value(torrent) != original:
                raise RuntimeError("libtorrent's piece layers differ from the original")
            layers = seconds - metadata[0]
            return {"in_process": seconds, "metadata": metadata[0], "layers_phase": layers}
        out = workdir / f"{tool}-{seed}.torrent"
        extra = ["--no-piece-layers"] if tool == "magnetar-info" else []
        wall, record = magnetar(spec.magnet_full, boot, out, timeout, *extra)
        data = out.read_bytes()
        if data[info_span(data)] != spec.info:
            raise RuntimeError("magnetar's info dict differs from the original")
        times = {"in_process": float(record["seconds"]), "wall": wall}
        if tool == "magnetar":
            if piece_layers_value(data) != original:
                raise RuntimeError("magnetar's piece layers differ from the original")
            trace = {t["phase"]: t["seconds"] for t in record["trace"]}
            times["metadata"] = trace["metadata verified"]
            times["layers_phase"] = trace["piece layers verified"] - trace["metadata verified"]
        return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per tool (default 5)")
    parser.add_argument("--version", choices=("v2", "hybrid"), default="v2")
    parser.add_argument("--timeout", type=float, default=30.0, help="per resolve, seconds")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, float]]] = {t: [] for t in args.tools}
    failures: dict[str, list[str]] = {t: [] for t in args.tools}
    workdir = Path(tempfile.mkdtemp(prefix="bench-layers-"))
    try:
        for run in range(args.runs):
            tools = args.tools[run % len(args.tools) :] + args.tools[: run % len(args.tools)]
            for i, tool in enumerate(tools):
                try:
                    times = run_once(tool, workdir, args.version, args.timeout, 1000 * run + i)
                except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as exc:
                    failures[tool].append(str(exc))
                    print(f"run {run + 1} {tool}: FAILED {exc}", file=sys.stderr)
                    continue
                results[tool].append(times)
                shown = ", ".join(f"{k} {v:.3f} s" for k, v in times.items())
                print(f"run {run + 1} {tool}: {shown}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, failures, args)
    return 1 if any(failures.values()) else 0


def report(
    results: dict[str, list[dict[str, float]]],
    failures: dict[str, list[str]],
    args: argparse.Namespace,
) -> None:
    def median(tool: str, key: str) -> float | None:
        values = [r[key] for r in results.get(tool, []) if key in r]
        return statistics.median(values) if values else None

    print(f"bench_layers: {args.version} torrent, {args.runs} runs per tool, 8-node lt DHT")
    print(f"{'tool':<15}{'ok':>6}{'in-process':>12}{'metadata':>10}{'wall':>9}{'layers':>9}")
    for tool in args.tools:
        cells = [median(tool, k) for k in ("in_process", "metadata", "wall", "layers_phase")]
        shown = [f"{c:.3f}" if c is not None else "-" for c in cells]
        ok = f"{len(results[tool])}/{len(results[tool]) + len(failures[tool])}"
        print(f"{tool:<15}{ok:>6}{shown[0]:>12}{shown[1]:>10}{shown[2]:>9}{shown[3]:>9}")

    def ratio(a: str, b: str, key: str = "in_process") -> str:
        x, y = median(a, key), median(b, key)
        return f"{x / y:.2f}" if x is not None and y else "-"

    print(f"complete / info-only (magnetar, in-process): {ratio('magnetar', 'magnetar-info')}")
    versus = ratio("magnetar", "libtorrent")
    print(f"magnetar complete / libtorrent complete (in-process): {versus}")
    layers = ratio("magnetar", "libtorrent", "layers_phase")
    print(f"layers phase alone, magnetar / libtorrent: {layers}")


if __name__ == "__main__":
    sys.exit(main())
