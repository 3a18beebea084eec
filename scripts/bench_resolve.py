#!/usr/bin/env python3
"""Time magnet resolution, process start to verified .torrent, against libtorrent and aria2c.

Every tool runs as a subprocess and is timed from just before it is started until it has
exited, so Python start-up and imports count; the .torrent it wrote must hold the exact info
dict (byte for byte, ``magnet.torrentfile.info_span``), else the run is a failure.

Tools (``--tools``, default all that are installed):

* ``magnetar``: ``magnetar resolve MAGNET -b HOST:PORT -o OUT --json --timeout S``, with the
  console script next to this interpreter (a pyenv *shim* adds ~0.1 s of bash and is
  avoided), else the one on ``PATH``, else ``python -m magnet``. Its JSON ``seconds`` (the
  resolve in-process) and ``trace`` are recorded next to the wall time. The command imports
  ``magnet`` from wherever it is installed; ``--magnetar-src DIR`` puts DIR first on
  ``PYTHONPATH`` instead (e.g. ``--magnetar-src .`` for this checkout).
* ``libtorrent``: ``scripts/lt_resolve_client.py``, a Python process that imports libtorrent
  2.1.1, joins the DHT from its own loopback address, adds the magnet in upload mode and
  announces until ``metadata_received_alert`` (see its docstring).
* ``aria2c`` (if installed): ``--bt-metadata-only --bt-save-metadata`` with
  ``--dht-entry-point``, bound to its own loopback address. v1 only.

Scenarios (``--scenario``, repeatable; default all):

* ``dht-single``, ``dht-multi``, ``dht-big``: a fresh 12-node libtorrent DHT on loopback for
  every tool and run (tests/interop/ltswarm.py), one node (not the bootstrap node) seeding, a
  bare magnet (``xt`` only); each tool gets the first node's address. ``big``: info dict over
  1 MiB.
* ``tracker-udp``, ``tracker-http``: opentracker on loopback (tests/interop/opentracker.py), a
  libtorrent seed without DHT that announces only to it, a magnet with only ``tr=``, and a
  DHT that goes nowhere for every tool (bootstrap ``127.0.0.1:9``). Skipped when opentracker
  is missing.
* ``dht-dead-tracker``: as dht-single, the magnet also naming a refused UDP tracker
  (``udp://127.0.0.1:1``) and a black hole (a bound socket that never answers).
* ``encrypted-seeds``: as dht-single, the seed accepting only RC4-encrypted connections;
  every tool with its default settings.
* ``bulk``: ``--bulk-count`` torrents (default 50) seeded over the 11 nodes of a fresh 12-node
  DHT (per tool and run) other than the first, and all their bare magnets given to one process
  of each tool, timed until it exits: ``magnetar resolve M1 M2 ... -o DIR`` (one DHT node, its
  default ``--concurrency``), the libtorrent client with every magnet in its one session, and
  aria2c with an ``--input-file`` of them, all downloads at once. Every .torrent in the
  directory is checked (matched by the SHA-1 of its info dict); a run is good only if all are
  there, byte-exact. Also reported: magnets/s (count / wall time).

Tools run one after another within a run, their order rotating from run to run, so that noise
from the rest of the machine hits all of them. Baselines first: ``python -c pass``,
``python -c "import libtorrent"`` and ``magnetar version`` (CLI start-up, no resolve).

Example::

    python scripts/bench_resolve.py --runs 10 --scenario dht-single --scenario dht-multi

``--wan`` runs the WAN lab benchmark instead (``scripts/bench_resolve_wan.py``: a libtorrent
DHT with dead entries under emulated internet latency and loss; root)::

    python scripts/bench_resolve.py --wan --rounds 5

Everything stays on 127.0.0.0/8 (``--wan``: inside the lab's private network namespace).
Every process is started in its own session and killed (with its group) when it overruns
``--timeout`` or on Ctrl-C; swarms and trackers are torn down.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from magnet.torrentfile import info_span  # noqa: E402

Addr = tuple[str, int]
TOOLS = ("magnetar", "libtorrent", "aria2c")
SCENARIOS = (
    "dht-single",
    "dht-multi",
    "dht-big",
    "tracker-udp",
    "tracker-http",
    "dht-dead-tracker",
    "encrypted-seeds",
    "bulk",
)
#: Torrents in the bulk scenario, unless --bulk-count says otherwise.
BULK_COUNT = 50
LT_CLIENT = ROOT / "scripts" / "lt_resolve_client.py"
#: A "DHT" that never answers (the discard port on loopback).
NOWHERE: Addr = ("127.0.0.1", 9)
#: A UDP tracker that refuses at once (nothing listens on port 1).
REFUSED_TRACKER = "udp://127.0.0.1:1/announce"
#: Loopback addresses: the swarm under test, libtorrent clients, aria2c, the tracker seed.
SWARM_FIRST_IP = "127.0.60.2"
SWARM_SIZE = 12
LT_CLIENT_NET = "127.0.61"
ARIA2_NET = "127.0.62"
TRACKER_SEED_IP = "127.0.63.2"
#: Kill a tool this long after its own --timeout has passed.
GRACE_S = 10.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Running one timed subprocess


@dataclass(slots=True)
class Timed:
    wall: float
    returncode: int | None  # None: killed after the time limit
    stdout: str
    stderr: str


def run_timed(argv: Sequence[str], *, timeout: float, cwd: Path, env: dict[str, str]) -> Timed:
    """Run ``argv``; its wall time from just before start to after exit.

    The child gets a session of its own (a Ctrl-C on the terminal does not reach it); it and
    its group are killed after ``timeout`` seconds or if this process is interrupted.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        wall = time.perf_counter() - start
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        wall = time.perf_counter() - start
        _kill_group(proc)
        out, err = proc.communicate()
        code = None
    finally:
        _kill_group(proc)
    return Timed(wall, code, out.decode(errors="replace"), err.decode(errors="replace"))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def free_port(ip: str) -> int:
    """A port free in both UDP and TCP on ``ip`` (aria2c uses one of each)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((ip, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((ip, port))
                except OSError:
                    continue
        return port
    raise OSError(f"no free port on {ip}")


# --------------------------------------------------------------------------------------------
# What a tool is given, and what it did


@dataclass(frozen=True, slots=True)
class Target:
    """One magnet to resolve, with everything needed to check the answer."""

    magnet: str
    info: bytes
    info_hash: bytes
    dht: Addr  # the one DHT node every tool is given
    seed: Addr


@dataclass(slots=True)
class Sample:
    """One tool's run."""

    tool: str
    run: int
    wall: float
    ok: bool
    error: str | None = None
    in_process: float | None = None  # the tool's own figure: magnetar's "seconds"
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "tool": self.tool,
            "run": self.run,
            "wall": round(self.wall, 4),
            "ok": self.ok,
            "in_process": self.in_process,
        }
        if self.error:
            d["error"] = self.error
        d.update(self.detail)
        return d


@dataclass(slots=True)
class Runner:
    """How to start each tool; :meth:`run` gives a :class:`Sample`."""

    magnetar_argv: list[str]
    magnetar_env: dict[str, str]
    aria2c: str | None
    timeout: float
    workdir: Path
    lt_settings: list[str] = field(default_factory=list)  # NAME=VALUE for the client
    lt_teardown: str = "exit"
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    _runs: int = 0

    def run(self, tool: str, run: int, target: Target | list[Target], *, lt_kick: float) -> Sample:
        """One tool's run on one target, or on all of a list at once (the bulk scenario)."""
        self._runs += 1
        where = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=self.workdir))
        try:
            if isinstance(target, list):
                return self._bulk(tool, run, target, where, lt_kick)
            if tool == "magnetar":
                return self._magnetar(run, target, where)
            if tool == "libtorrent":
                return self._libtorrent(run, target, where, lt_kick)
            return self._aria2c(run, target, where)
        finally:
            shutil.rmtree(where, ignore_errors=True)

    def _killed(self, t: Timed) -> str | None:
        """Why a run failed before its output is even looked at (None: it exited)."""
        if t.returncode is None:
            return f"killed after {self.timeout + GRACE_S:g} s"
        return None

    def _check(self, sample: Sample, out: Path, target: Target, t: Timed) -> Sample:
        if (killed := self._killed(t)) is not None:
            sample.ok, sample.error = False, killed
        elif not out.exists():
            tail = " | ".join((t.stderr or t.stdout).strip().splitlines()[-3:])
            sample.ok, sample.error = False, f"exit {t.returncode}, no .torrent: {tail[-300:]}"
        else:
            sample.error = verify_torrent(out.read_bytes(), target.info)
            sample.ok = sample.error is None
            if sample.ok and t.returncode != 0:
                sample.ok, sample.error = False, f"exit {t.returncode} with a good .torrent"
        return sample

    def _check_bulk(self, sample: Sample, out: Path, targets: list[Target], t: Timed) -> Sample:
        """Every target's info dict, byte for byte, in some .torrent under ``out``.

        Files are matched by the SHA-1 of the info dict they hold, not by name: each tool names
        its files its own way (magnetar by torrent name, the others by info-hash).
        """
        found: dict[bytes, bytes] = {}  # sha1(info) -> info, of every well-formed file
        bad = 0
        for path in sorted(out.glob("*.torrent")) if out.is_dir() else ():
            data = path.read_bytes()
            try:
                info = data[info_span(data)]
            except ValueError:
                bad += 1
                continue
            found[hashlib.sha1(info).digest()] = info
        verified = sum(1 for tg in targets if found.get(tg.info_hash) == tg.info)
        sample.detail["verified"] = verified
        sample.detail["magnets"] = len(targets)
        missing = len(targets) - verified
        if (killed := self._killed(t)) is not None:
            sample.ok, sample.error = False, f"{killed}, {verified}/{len(targets)} verified"
        elif missing or bad:
            tail = " | ".join((t.stderr or t.stdout).strip().splitlines()[-2:])
            sample.ok = False
            sample.error = (
                f"exit {t.returncode}, {verified}/{len(targets)} verified, {bad} malformed:"
                f" {tail[-300:]}"
            )
        elif t.returncode != 0:
            sample.ok, sample.error = False, f"exit {t.returncode} with all files good"
        else:
            sample.ok = True
        return sample

    def _magnetar_cmd(self, magnets: Sequence[str], dht: Addr, out: Path) -> list[str]:
        return [
            *self.magnetar_argv,
            "resolve",
            *magnets,
            "-b",
            f"{dht[0]}:{dht[1]}",
            "-o",
            str(out),
            "--json",
            "--timeout",
            f"{self.timeout:g}",
        ]

    def _magnetar(self, run: int, target: Target, where: Path) -> Sample:
        out = where / "out.torrent"
        argv = self._magnetar_cmd([target.magnet], target.dht, out)
        t = run_timed(argv, timeout=self.timeout + GRACE_S, cwd=where, env=self.magnetar_env)
        sample = self._check(Sample("magnetar", run, t.wall, False), out, target, t)
        with contextlib.suppress(ValueError, IndexError):
            rec = json.loads(t.stdout.strip().splitlines()[-1])
            sample.in_process = rec.get("seconds")
            sample.detail = {
                k: rec[k] for k in ("peer", "source", "trace", "sources", "error") if k in rec
            }
        return sample

    def _libtorrent_cmd(
        self, magnets: Sequence[str], dht: Addr, out: Path, kick: float
    ) -> list[str]:
        return [
            sys.executable,
            str(LT_CLIENT),
            *magnets,
            "-o",
            str(out),
            "--ip",
            f"{LT_CLIENT_NET}.{2 + self._runs % 250}",
            "--dht-node",
            f"{dht[0]}:{dht[1]}",
            "--timeout",
            f"{self.timeout:g}",
            "--kick",
            f"{kick:g}",
            f"--teardown={self.lt_teardown}",
            *(f"--setting={item}" for item in self.lt_settings),
        ]

    def _libtorrent(self, run: int, target: Target, where: Path, kick: float) -> Sample:
        out = where / "out.torrent"
        argv = self._libtorrent_cmd([target.magnet], target.dht, out, kick)
        t = run_timed(argv, timeout=self.timeout + GRACE_S, cwd=where, env=self.env)
        sample = self._check(Sample("libtorrent", run, t.wall, False), out, target, t)
        with contextlib.suppress(ValueError, IndexError):
            rec = json.loads(t.stdout.strip().splitlines()[-1])
            sample.in_process = rec.get("seconds")
            sample.detail = {
                k: rec[k] for k in ("peer", "peer_encryption", "marks", "errors") if k in rec
            }
        return sample

    def _aria2c_cmd(self, dht: Addr, where: Path) -> list[str]:
        """aria2c's options, magnets (or ``--input-file``) to be appended."""
        assert self.aria2c is not None
        ip = f"{ARIA2_NET}.{2 + self._runs % 250}"
        port = free_port(ip)
        return [
            self.aria2c,
            "--no-conf=true",
            f"--dir={where}",
            f"--interface={ip}",
            "--disable-ipv6=true",
            "--async-dns=false",
            "--enable-dht=true",
            "--enable-dht6=false",
            f"--dht-entry-point={dht[0]}:{dht[1]}",
            f"--dht-listen-port={port}",
            f"--listen-port={port}",
            f"--dht-file-path={where / 'dht.dat'}",
            "--bt-enable-lpd=false",
            "--bt-metadata-only=true",
            "--bt-save-metadata=true",
            "--follow-torrent=false",
            "--seed-time=0",
            f"--bt-stop-timeout={max(1, int(self.timeout))}",
            "--summary-interval=0",
            "--console-log-level=warn",
        ]

    def _aria2c(self, run: int, target: Target, where: Path) -> Sample:
        argv = [*self._aria2c_cmd(target.dht, where), target.magnet]
        t = run_timed(argv, timeout=self.timeout + GRACE_S, cwd=where, env=self.env)
        out = where / f"{target.info_hash.hex()}.torrent"
        return self._check(Sample("aria2c", run, t.wall, False), out, target, t)

    def _bulk(self, tool: str, run: int, targets: list[Target], where: Path, kick: float) -> Sample:
        """All ``targets`` given to one process of ``tool``; timed until it exits.

        Each tool gets its bulk mode: magnetar all links as arguments (one DHT node, links
        resolved concurrently), the libtorrent client all magnets in one session, aria2c an
        ``--input-file`` with every magnet as a download of its own, all run at once (several
        magnets as arguments would be mirrors of *one* download to aria2c).
        """
        out = where / "out"
        out.mkdir()
        magnets = [tg.magnet for tg in targets]
        dht = targets[0].dht
        if tool == "magnetar":
            argv, env = self._magnetar_cmd(magnets, dht, out), self.magnetar_env
        elif tool == "libtorrent":
            argv, env = self._libtorrent_cmd(magnets, dht, out, kick), self.env
        else:
            listing = where / "magnets.txt"
            listing.write_text("".join(m + "\n" for m in magnets))
            argv = [
                *self._aria2c_cmd(dht, out),
                f"--input-file={listing}",
                f"--max-concurrent-downloads={len(magnets)}",
            ]
            env = self.env
        t = run_timed(argv, timeout=self.timeout + GRACE_S, cwd=where, env=env)
        sample = self._check_bulk(Sample(tool, run, t.wall, False), out, targets, t)
        records = _json_lines(t.stdout)
        if tool == "magnetar":
            # One record per link, as each finished: their own resolve times, and why any failed.
            link_s = [float(r["seconds"]) for r in records if r.get("ok") and "seconds" in r]
            sample.detail["link_seconds"] = _stats(link_s)
            fails = sorted({str(r.get("error")) for r in records if r.get("ok") is False})
            if fails:
                sample.detail["link_errors"] = fails[:5]
        elif tool == "libtorrent" and records:
            rec = records[-1]
            sample.in_process = rec.get("seconds")
            sample.detail.update({k: rec[k] for k in ("marks", "errors", "resolved") if k in rec})
        return sample


def _json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among ``text``'s lines (others skipped)."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            if isinstance(rec, dict):
                out.append(rec)
    return out


def verify_torrent(data: bytes, info: bytes) -> str | None:
    """None if the .torrent ``data`` holds exactly ``info``, else what is wrong."""
    try:
        got = data[info_span(data)]
    except ValueError as exc:
        return f"bad .torrent: {exc}"
    return None if got == info else "info dict differs from the seed's"


# --------------------------------------------------------------------------------------------
# Scenarios


class Scenario(Protocol):
    name: str
    description: str

    def target(
        self, run: int, slot: int
    ) -> contextlib.AbstractContextManager[Target | list[Target]]:
        """A fresh target (or all of the bulk scenario's) for tool ``slot`` of run ``run``."""
        ...


def _seed_addr(node: Any) -> Addr:
    return (str(node.ip), int(node.port))


class DhtScenario:
    """A fresh 12-node libtorrent swarm per tool and run; one torrent per run."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        kind: str,
        *,
        dead_trackers: bool = False,
        encrypted: bool = False,
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.kind = kind
        self.dead_trackers = dead_trackers
        self.encrypted = encrypted
        self._specs: dict[int, Any] = {}
        what = {"single": "single-file", "multi": "multi-file", "big": "info dict > 1 MiB"}[kind]
        self.description = (
            f"{SWARM_SIZE}-node libtorrent DHT (fresh per tool and run), {what}, bare magnet"
        )
        if dead_trackers:
            self.description += " + a refused and a silent UDP tracker"
        if encrypted:
            self.description += ", the seed accepts RC4-encrypted connections only"

    def _spec(self, run: int) -> Any:
        from tests.interop.ltswarm import make_torrent

        if run not in self._specs:
            self._specs.clear()  # one run at a time: drop the last run's data
            self._specs[run] = make_torrent(self.workdir, self.kind)  # type: ignore[arg-type]
        return self._specs[run]

    @contextlib.contextmanager
    def target(self, run: int, slot: int) -> Iterator[Target]:
        import libtorrent as lt

        from tests.interop.ltswarm import LtSwarm

        spec = self._spec(run)
        with contextlib.ExitStack() as stack:
            magnet = spec.magnet
            if self.dead_trackers:
                hole = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                hole.bind(("127.0.0.1", 0))
                silent = f"udp://127.0.0.1:{hole.getsockname()[1]}/announce"
                magnet += f"&tr={REFUSED_TRACKER}&tr={silent}"
            size = SWARM_SIZE - 1 if self.encrypted else SWARM_SIZE
            swarm = stack.enter_context(LtSwarm(size, first_ip=SWARM_FIRST_IP))
            if self.encrypted:
                forced = int(lt.enc_policy.forced)
                seeder = swarm.add_node(
                    in_enc_policy=forced,
                    out_enc_policy=forced,
                    allowed_enc_level=int(lt.enc_level.rc4),
                )
                swarm.seed(spec, node=seeder)
            else:
                seeder = swarm.seed(spec, node=SWARM_SIZE // 2)
            yield Target(magnet, spec.info, spec.info_hash, swarm[0].addr, _seed_addr(seeder))


class BulkScenario:
    """A fresh 12-node libtorrent swarm per tool and run, seeding ``count`` torrents at once.

    The torrents are made once for the scenario, not per run as in :class:`DhtScenario`: every
    swarm is fresh (no announce, no client left from another tool) and making hundreds of
    torrents takes seconds. Seeding spreads them over the nodes other than the first (which
    every tool is given), so that lookups and metadata fetches go to many peers at once, as
    with real torrents.
    """

    def __init__(self, name: str, workdir: Path, count: int) -> None:
        from tests.interop.ltswarm import make_torrent

        self.name = name
        self.description = (
            f"{SWARM_SIZE}-node libtorrent DHT (fresh per tool and run), {count} single-file"
            f" torrents seeded over {SWARM_SIZE - 1} nodes, all {count} bare magnets given to"
            " one process"
        )
        self._specs = [make_torrent(workdir, "single") for _ in range(count)]

    @contextlib.contextmanager
    def target(self, run: int, slot: int) -> Iterator[list[Target]]:
        from tests.interop.ltswarm import LtSwarm

        with LtSwarm(SWARM_SIZE, first_ip=SWARM_FIRST_IP) as swarm:
            seeders = [swarm[1 + i % (SWARM_SIZE - 1)] for i in range(len(self._specs))]
            # Seed all first, then wait for the announces: they then spread in parallel.
            for spec, node in zip(self._specs, seeders, strict=True):
                node.seed(spec)
            deadline = time.monotonic() + 30
            for spec, node in zip(self._specs, seeders, strict=True):
                left = max(0.1, deadline - time.monotonic())
                swarm.wait_announced(spec.info_hash, min(3, SWARM_SIZE - 1), left, peer=node.addr)
            yield [
                Target(s.magnet, s.info, s.info_hash, swarm[0].addr, _seed_addr(node))
                for s, node in zip(self._specs, seeders, strict=True)
            ]


class TrackerScenario:
    """opentracker on loopback, one DHT-less libtorrent seed announcing only to it.

    Each tool and run gets a torrent of its own (all whitelisted when the tracker starts), so
    that no tool meets peers left behind by another (clients announce themselves too).
    """

    def __init__(
        self, name: str, workdir: Path, scheme: str, runs: int, slots: int, stack: Any
    ) -> None:
        from tests.interop.ltswarm import LtNode, make_torrent
        from tests.interop.opentracker import OpenTracker

        self.name = name
        self.description = (
            f"opentracker ({scheme}), a seed without DHT, magnet with only tr=, DHT unreachable"
        )
        self._specs = [make_torrent(workdir, "single") for _ in range(runs * slots)]
        self._slots = slots
        tracker = stack.enter_context(OpenTracker([s.info_hash for s in self._specs]))
        self._tracker = tracker
        self._url: str = tracker.udp_url if scheme == "udp" else tracker.http_url
        self._seed = stack.enter_context(LtNode(TRACKER_SEED_IP, workdir=workdir, enable_dht=False))

    def _scraped_complete(self, info_hash: bytes) -> int:
        """Seeds the tracker knows for ``info_hash`` (HTTP scrape: adds no peer)."""
        import urllib.request
        from urllib.parse import quote_from_bytes

        import bencode2

        url = self._tracker.http_url.replace("/announce", "/scrape")
        url += f"?info_hash={quote_from_bytes(info_hash, safe='')}"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                doc = bencode2.bdecode(resp.read())
            return int(doc[b"files"][info_hash][b"complete"])
        except (OSError, KeyError, TypeError, ValueError):
            return 0

    @contextlib.contextmanager
    def target(self, run: int, slot: int) -> Iterator[Target]:
        spec = self._specs[run * self._slots + slot]
        handle = self._seed.seed(spec)
        try:
            handle.add_tracker({"url": self._url})
            handle.force_reannounce()
            deadline = time.monotonic() + 10
            while self._scraped_complete(spec.info_hash) < 1:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the seed's announce never reached {self._url}")
                self._seed.pump(0.02)
            magnet = f"magnet:?xt=urn:btih:{spec.info_hash.hex()}&tr={self._url}"
            yield Target(magnet, spec.info, spec.info_hash, NOWHERE, _seed_addr(self._seed))
        finally:
            with contextlib.suppress(Exception):
                self._seed.session.remove_torrent(handle)


# --------------------------------------------------------------------------------------------
# Tools and baselines


def python_env(mode: str, workdir: Path) -> dict[str, str]:
    """The environment of every Python subprocess.

    ``cached``: bytecode is written to and read from a cache under ``workdir``
    (``PYTHONPYCACHEPREFIX``), whatever ``PYTHONDONTWRITEBYTECODE`` says, so that after a
    warm-up run no module is compiled from source (a pip-installed package ships its
    bytecode; an editable install with ``PYTHONDONTWRITEBYTECODE=1`` compiles every module of
    magnetar at every start). No ``__pycache__`` is written next to any source. ``as-is``: the
    environment as it is.
    """
    env = dict(os.environ)
    if mode == "cached":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def find_magnetar(
    src: Path | None, base_env: dict[str, str]
) -> tuple[list[str], dict[str, str], str]:
    """The magnetar command, its environment, and a line saying what it is."""
    env = dict(base_env)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(src.resolve()), env.get("PYTHONPATH")) if p
        )
    scripts = sysconfig.get_path("scripts")
    found = shutil.which("magnetar", path=scripts) if scripts else None
    note = f"console script {found} (next to {sys.executable})"
    if found is None:
        found = shutil.which("magnetar")
        note = f"console script {found} (on PATH)"
        if found is not None and _is_shim(found):
            note += " [a pyenv shim: bash + `pyenv exec` before Python starts]"
    argv = [found] if found else [sys.executable, "-m", "magnet"]
    if found is None:
        note = f"{sys.executable} -m magnet (no magnetar console script found)"
    interpreter = _interpreter_of(found) if found else sys.executable
    probe = subprocess.run(
        [interpreter, "-c", "import magnet; print(magnet.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        timeout=30,
    )
    where = probe.stdout.strip() or probe.stderr.strip().splitlines()[-1:]
    note += f"; imports magnet from {where}"
    return argv, env, note


def _is_shim(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(200)
    except OSError:
        return False
    return b"pyenv" in head or "/shims/" in path


def _interpreter_of(script: str) -> str:
    try:
        with open(script, "rb") as f:
            first = f.readline().decode(errors="replace")
    except OSError:
        return sys.executable
    if first.startswith("#!"):
        cmd = first[2:].split()
        if cmd and "env" not in Path(cmd[0]).name and Path(cmd[0]).exists():
            return cmd[0]
    return sys.executable


def baselines(
    runs: int,
    magnetar_argv: list[str],
    magnetar_env: dict[str, str],
    env: dict[str, str],
    workdir: Path,
) -> dict[str, list[float]]:
    """Start-up figures: each command ``runs`` times, interleaved, after one warm-up round."""
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], env),
        "python -c 'import libtorrent'": ([sys.executable, "-c", "import libtorrent"], env),
        "magnetar version": ([*magnetar_argv, "version"], magnetar_env),
    }
    walls: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(runs + 1):
        for name, (argv, cmd_env) in commands.items():
            t = run_timed(argv, timeout=30, cwd=workdir, env=cmd_env)
            if t.returncode == 0 and i > 0:
                walls[name].append(t.wall)
    return walls


# --------------------------------------------------------------------------------------------
# Summaries


def _stats(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def summarize(
    samples: list[Sample], tools: Sequence[str], *, magnets: int | None = None
) -> dict[str, Any]:
    """Per tool: wall and in-process figures of the good runs, failures and their errors;
    ``magnets``: how many each run resolved (bulk), for a throughput in magnets/s."""
    out: dict[str, Any] = {}
    for tool in tools:
        mine = [s for s in samples if s.tool == tool]
        good = [s for s in mine if s.ok]
        d: dict[str, Any] = {
            "runs": len(mine),
            "failures": len(mine) - len(good),
            "wall": _stats([s.wall for s in good]),
            "in_process": _stats([s.in_process for s in good if s.in_process is not None]),
        }
        if magnets is not None:
            d["magnets_per_s"] = _stats([magnets / s.wall for s in good])
            # magnetar's own time per link (each from its start, links overlapping): the
            # median over runs of each run's median.
            links = [
                s.detail["link_seconds"]["median"] for s in good if s.detail.get("link_seconds")
            ]
            if links:
                d["link_seconds_median"] = round(statistics.median(links), 4)
        if tool == "magnetar":
            outside = [s.wall - s.in_process for s in good if s.in_process is not None]
            d["outside_resolve"] = _stats(outside)
            d["trace"] = _trace_medians(good)
        if tool == "libtorrent":
            d["marks"] = _mark_medians(good)
        errors = sorted({s.error for s in mine if s.error})
        if errors:
            d["errors"] = errors[:5]
        out[tool] = d
    mg, lt = out.get("magnetar"), out.get("libtorrent")
    if mg and lt and mg["wall"] and lt["wall"]:
        out["ratio_magnetar_libtorrent"] = round(mg["wall"]["median"] / lt["wall"]["median"], 3)
    return out


def _trace_medians(samples: list[Sample]) -> dict[str, float]:
    phases: dict[str, list[float]] = {}
    for s in samples:
        for item in s.detail.get("trace") or ():
            phases.setdefault(str(item["phase"]), []).append(float(item["seconds"]))
    return {p: round(statistics.median(v), 4) for p, v in phases.items()}


def _mark_medians(samples: list[Sample]) -> dict[str, float]:
    marks: dict[str, list[float]] = {}
    for s in samples:
        for name, value in (s.detail.get("marks") or {}).items():
            marks.setdefault(name, []).append(float(value))
    return {m: round(statistics.median(v), 4) for m, v in marks.items()}


def _fmt(st: dict[str, float] | None) -> str:
    if st is None:
        return "-"
    return f"{st['median']:.3f} s (min {st['min']:.3f}, max {st['max']:.3f})"


def report_scenario(name: str, description: str, summary: dict[str, Any], say: Any) -> None:
    say(f"{name}: {description}")
    for tool, d in summary.items():
        if not isinstance(d, dict):
            continue
        fails = f", {d['failures']}/{d['runs']} failed" if d["failures"] else ""
        line = f"  {tool:<10} {_fmt(d['wall'])}{fails}"
        if d.get("magnets_per_s"):
            line += f"; {d['magnets_per_s']['median']:.1f} magnets/s"
        if tool == "magnetar" and d["in_process"]:
            line += (
                f"; in-process {d['in_process']['median']:.4f} s, outside the resolve"
                f" {d['outside_resolve']['median']:.3f} s"
            )
        if tool == "libtorrent" and d["in_process"]:
            line += f"; in-process {d['in_process']['median']:.4f} s"
        if "link_seconds_median" in d:
            line += f"; each link {d['link_seconds_median']:.4f} s in-process (median)"
        say(line)
        if tool == "magnetar" and d.get("trace"):
            say(
                "             trace (median s): "
                + ", ".join(f"{p} {v}" for p, v in d["trace"].items())
            )
        if tool == "libtorrent" and d.get("marks"):
            say(
                "             marks (median s from start): "
                + ", ".join(f"{m} {v}" for m, v in d["marks"].items())
            )
        for err in d.get("errors", []):
            say(f"             error: {err}")
    if "ratio_magnetar_libtorrent" in summary:
        say(
            f"  ratio magnetar/libtorrent (median wall): {summary['ratio_magnetar_libtorrent']:.2f}"
        )


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable")
    p.add_argument("--runs", type=int, default=10, help="runs per scenario (default 10)")
    p.add_argument("--timeout", type=float, default=30.0, help="per tool and run, seconds")
    p.add_argument(
        "--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS)
    )
    p.add_argument("--baseline-runs", type=int, default=10, help="0: skip the baselines")
    p.add_argument("--magnetar-src", type=Path, help="put DIR first on magnetar's PYTHONPATH")
    p.add_argument(
        "--lt-kick",
        type=float,
        default=0.1,
        help="libtorrent client: first force_dht_announce interval (doubles to 1 s)",
    )
    p.add_argument(
        "--lt-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="libtorrent client setting (repeatable), e.g. out_enc_policy=0 (forced)",
    )
    p.add_argument(
        "--lt-teardown",
        choices=("exit", "destroy"),
        default="exit",
        help="libtorrent client: leave at once once the file is written (os._exit, default:"
        " its best case) or destroy the session and exit normally (~45 ms more here)",
    )
    p.add_argument(
        "--bytecode",
        choices=("cached", "as-is"),
        default="cached",
        help="Python bytecode for the subprocesses: cached (a private cache, warmed up;"
        " default) or as the environment has it",
    )
    p.add_argument("--warmup", type=int, default=1, help="unrecorded runs per scenario")
    p.add_argument(
        "--bulk-count",
        type=int,
        default=BULK_COUNT,
        help=f"bulk scenario: torrents seeded, magnets given to each tool (default {BULK_COUNT})",
    )
    p.add_argument("--json", action="store_true", help="print JSON on stdout (text on stderr)")
    args = p.parse_args(argv)
    args.scenario = args.scenario or list(SCENARIOS)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad or not tools:
        p.error(f"--tools: unknown {bad}; choose from {', '.join(TOOLS)}")
    args.tools = [t for t in TOOLS if t in tools]
    if args.runs < 1 or args.timeout <= 0 or args.baseline_runs < 0 or args.warmup < 0:
        p.error("need --runs >= 1, --timeout > 0, --baseline-runs >= 0, --warmup >= 0")
    if args.bulk_count < 2:  # one magnet is the dht-single scenario (and a file, not a dir)
        p.error("need --bulk-count >= 2")
    return args


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    if "--wan" in raw:  # the WAN lab benchmark: options of its own (scripts/bench_resolve_wan.py)
        from scripts.bench_resolve_wan import main as wan_main

        return wan_main([a for a in raw if a != "--wan"])
    args = parse_args(argv)
    say: Callable[[str], None] = log if args.json else print
    try:
        import libtorrent  # noqa: F401
    except ImportError as exc:
        say(
            f"libtorrent is not importable ({exc}): the swarms need `pip install libtorrent==2.1.1`"
        )
        return 2
    tools = list(args.tools)
    aria2c = shutil.which("aria2c")
    notes: dict[str, str] = {}
    if "aria2c" in tools and aria2c is None:
        notes["aria2c"] = "skipped: not installed (apt-get install -y aria2)"
        tools.remove("aria2c")
    tmp = tempfile.TemporaryDirectory(prefix="bench-resolve-")
    workdir = Path(tmp.name)
    env = python_env(args.bytecode, workdir)
    magnetar_argv, magnetar_env, magnetar_note = find_magnetar(args.magnetar_src, env)
    notes["magnetar"] = magnetar_note
    notes["bytecode"] = {
        "cached": f"cached under {workdir / 'pycache'} (PYTHONPYCACHEPREFIX), warmed up",
        "as-is": "as the environment has it"
        + (
            " (PYTHONDONTWRITEBYTECODE=1: sources compiled at every start)"
            if os.environ.get("PYTHONDONTWRITEBYTECODE")
            else ""
        ),
    }[args.bytecode]
    if aria2c and "aria2c" in tools:
        notes["aria2c"] = aria2c
    notes["libtorrent"] = (
        f"{sys.executable} {LT_CLIENT.relative_to(ROOT)} (kick {args.lt_kick:g} s,"
        f" teardown {args.lt_teardown}" + "".join(f", {item}" for item in args.lt_setting) + ")"
    )
    load = os.getloadavg()[0]
    say(
        f"bench_resolve: {args.runs} runs, timeout {args.timeout:g} s, load average {load:.2f}"
        f" on {os.cpu_count()} CPUs"
    )
    for tool, note in notes.items():
        say(f"  {tool}: {note}")

    doc: dict[str, Any] = {
        "command": [sys.executable, *sys.argv] if argv is None else ["bench_resolve.py", *argv],
        "load_average": load,
        "config": {
            "runs": args.runs,
            "warmup": args.warmup,
            "bytecode": args.bytecode,
            "timeout": args.timeout,
            "tools": tools,
            "lt_kick": args.lt_kick,
            "lt_settings": args.lt_setting,
            "lt_teardown": args.lt_teardown,
            "bulk_count": args.bulk_count,
        },
        "tools": notes,
        "baselines": {},
        "scenarios": {},
    }
    with tmp:
        if args.baseline_runs:
            walls = baselines(args.baseline_runs, magnetar_argv, magnetar_env, env, workdir)
            say(f"baselines (process start to exit, median of {args.baseline_runs}):")
            for name, values in walls.items():
                doc["baselines"][name] = _stats(values)
                say(f"  {name:<30} {_fmt(_stats(values))}")
        runner = Runner(
            magnetar_argv,
            magnetar_env,
            aria2c,
            args.timeout,
            workdir,
            args.lt_setting,
            args.lt_teardown,
            env,
        )
        for name in args.scenario:
            result = run_scenario(name, args, tools, runner, workdir, say)
            doc["scenarios"][name] = result
    if args.json:
        print(json.dumps(doc, indent=2))
    return 0


def run_scenario(
    name: str,
    args: argparse.Namespace,
    tools: list[str],
    runner: Runner,
    workdir: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    from tests.interop.opentracker import find_opentracker

    with contextlib.ExitStack() as stack:
        scen_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=workdir)))
        scenario: Scenario
        if name.startswith("tracker-"):
            if find_opentracker() is None:
                msg = "skipped: opentracker not installed (apt-get install -y opentracker)"
                say(f"{name}: {msg}")
                return {"skipped": msg}
            scheme = name.split("-", 1)[1]
            scenario = TrackerScenario(
                name, scen_dir, scheme, args.warmup + args.runs, len(tools), stack
            )
        elif name == "bulk":
            scenario = BulkScenario(name, scen_dir, args.bulk_count)
        else:
            kind = {"dht-multi": "multi", "dht-big": "big"}.get(name, "single")
            scenario = DhtScenario(
                name,
                scen_dir,
                kind,
                dead_trackers=name == "dht-dead-tracker",
                encrypted=name == "encrypted-seeds",
            )
        samples: list[Sample] = []
        # Warm-up runs (not recorded) fill the bytecode cache and the OS caches for the code
        # paths of this scenario; aria2c (native, and slow) has none.
        python_tools = [t for t in tools if t != "aria2c"]
        for run in range(args.warmup + args.runs):
            warm = run < args.warmup
            n = run - args.warmup
            order = python_tools if warm else tools[n % len(tools) :] + tools[: n % len(tools)]
            for slot, tool in enumerate(order):
                with scenario.target(run, slot) as target:
                    sample = runner.run(tool, n, target, lt_kick=args.lt_kick)
                status = "ok" if sample.ok else f"FAILED ({sample.error})"
                if "verified" in sample.detail:
                    status += f", {sample.detail['verified']}/{sample.detail['magnets']} verified"
                inproc = f" (in-process {sample.in_process:.4f})" if sample.in_process else ""
                where = f"[{name} warm-up]" if warm else f"[{name} run {n + 1}/{args.runs}]"
                log(f"  {where} {tool}: {sample.wall:.3f} s{inproc} {status}")
                if not warm:
                    samples.append(sample)
        summary = summarize(samples, tools, magnets=args.bulk_count if name == "bulk" else None)
        report_scenario(name, scenario.description, summary, say)
        return {
            "description": scenario.description,
            "summary": summary,
            "samples": [s.as_dict() for s in samples],
        }


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds: children killed, swarms and trackers closed


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted: children killed, swarms closed")
        sys.exit(130)
