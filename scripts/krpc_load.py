"""A KRPC query flood from many loopback source addresses, and a trivial KRPC responder.

The load generator sends a mix of ``ping``/``find_node``/``get_peers`` queries to one DHT node
from many sockets, each bound to its own ``127.x.y.z`` address (all of 127.0.0.0/8 is local on
Linux) and connected to the target, keeps at most ``window`` queries in flight, matches replies
by transaction id and counts answered queries per second. Queries carry BEP 43 ``ro: 1`` at top
level so the target does not put the sources in its routing table. Queries that get no answer
within ``query_timeout`` are counted lost and free their window slot.

It is plain Python on one core: non-blocking sockets, one ``epoll``, queries built by
concatenating pre-encoded parts, ``t`` and ``y`` of replies found by byte search (every 16th
reply is fully decoded with ``bencode2`` as a check); ~8-10 us of CPU per answered query.
Its ceiling against the trivial responder below is what bench_node.py reports as
``trivial``. Run it in its own process (:func:`run_load_in_process`) so it does not share a
core or the GIL with the target.

Use from other scripts or tests (repository root on ``sys.path``)::

    from scripts.krpc_load import LoadConfig, run_load_in_process
    result = run_load_in_process(LoadConfig(target=("127.0.0.2", 6881), seconds=3))
    print(result.answered_per_s)
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import multiprocessing
import os
import resource
import select
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from typing import Any, cast

import bencode2

Addr = tuple[str, int]

__all__ = [
    "DEFAULT_MIX",
    "LoadConfig",
    "LoadResult",
    "TrivialResponder",
    "parse_mix",
    "run_load",
    "run_load_in_process",
    "run_trivial_responder",
    "source_addresses",
]

METHODS = ("ping", "find_node", "get_peers")
DEFAULT_MIX: Mapping[str, float] = {"ping": 1.0, "find_node": 1.0, "get_peers": 1.0}


def parse_mix(text: str) -> dict[str, float]:
    """``"ping:1,find_node:2,get_peers:1"`` -> weights; unknown methods raise ValueError."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.strip().partition(":")
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r} in mix (known: {', '.join(METHODS)})")
        mix[name] = float(weight) if weight else 1.0
    if not any(w > 0 for w in mix.values()):
        raise ValueError("the mix needs a positive weight")
    return mix


def source_addresses(n: int, first: str = "127.100.0.1") -> list[str]:
    """``n`` distinct loopback addresses from ``first`` upwards (skipping .0 and .255)."""
    out: list[str] = []
    ip = int(ipaddress.IPv4Address(first))
    while len(out) < n:
        addr = ipaddress.IPv4Address(ip)
        if addr not in ipaddress.IPv4Network("127.0.0.0/8"):
            raise ValueError(f"{n} sources from {first} leave 127.0.0.0/8")
        if ip & 0xFF not in (0, 255):
            out.append(str(addr))
        ip += 1
    return out


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """What to flood and how.

    Attributes:
        target: the DHT node's UDP endpoint.
        seconds: measured duration (after ``warmup``).
        warmup: seconds of flood before counting starts.
        sources: number of distinct source addresses (one socket each, cycled over).
        window: most queries in flight at once. Keep it under ~200: a default socket receive
            buffer (rmem_default 212992) holds ~200 small datagrams, so with 256 in flight a
            target that falls behind drops some, and each drop holds a slot for
            ``query_timeout`` (seen: ~60 lost/s in a repeating 1 s cycle).
        mix: relative weights of ``ping``/``find_node``/``get_peers``.
        first_source: the first source address (keep clear of the targets' addresses).
        query_timeout: a query unanswered this long is counted lost.
        read_only: send BEP 43 ``ro: 1``.
    """

    target: Addr
    seconds: float = 3.0
    warmup: float = 0.5
    sources: int = 1000
    window: int = 192
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    first_source: str = "127.100.0.1"
    query_timeout: float = 1.0
    read_only: bool = True


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Counts over the measured period (warm-up excluded).

    ``lost``: queries that timed out (``query_timeout``) during the period; those still in
    flight at its end are not counted. ``errors``: KRPC error replies. ``unmatched``:
    datagrams that were not a reply to an outstanding query. ``malformed``: replies that did
    not end in ``y`` = ``r``/``e``, or failed the full decode done on every 16th answer
    (``t`` must match, ``r`` must hold an ``id``).
    """

    target: Addr
    seconds: float
    sent: int
    answered: int
    errors: int
    lost: int
    unmatched: int
    malformed: int
    #: mean size of answers: compare targets' replies (8 nodes in find_node/get_peers?)
    mean_reply_bytes: float
    latency_ms_p50: float
    latency_ms_p99: float
    #: the generator's own CPU use over the measured period (1.0 = one core busy)
    generator_cpu: float
    sources: int
    window: int
    mix: dict[str, float]
    per_method: dict[str, int]

    @property
    def answered_per_s(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    @property
    def sent_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = f"{self.target[0]}:{self.target[1]}"
        d["answered_per_s"] = round(self.answered_per_s, 1)
        d["sent_per_s"] = round(self.sent_per_s, 1)
        return d


# --------------------------------------------------------------------------------------------
# Query templates: everything but the 4-byte transaction id is pre-encoded.


def _templates(
    mix: Mapping[str, float], rng_bytes: Callable[[int], bytes], read_only: bool
) -> list[tuple[bytes, bytes, int]]:
    """A cycle of ``(head, tail, index in METHODS)``: a query is ``head + tid + tail``.

    About 100 queries in proportion to the weights, interleaved; each has its own random
    node id and target/info-hash. Keys of bencoded dicts are sorted: ``a q ro t y``.
    """
    weights = {m: w for m, w in mix.items() if w > 0}
    total = sum(weights.values())
    slots: list[tuple[float, str]] = []
    for m, w in weights.items():
        count = max(1, round(100 * w / total))
        slots += [((i + 0.5) / count, m) for i in range(count)]
    ro = b"2:roi1e" if read_only else b""
    cycle: list[tuple[bytes, bytes, int]] = []
    for _, m in sorted(slots):
        nid = rng_bytes(20)
        if m == "ping":
            args = b"d2:id20:" + nid + b"e"
        elif m == "find_node":
            args = b"d2:id20:" + nid + b"6:target20:" + rng_bytes(20) + b"e"
        else:
            args = b"d2:id20:" + nid + b"9:info_hash20:" + rng_bytes(20) + b"e"
        head = b"d1:a" + args + b"1:q" + str(len(m)).encode() + b":" + m.encode() + ro + b"1:t4:"
        cycle.append((head, b"1:y1:qe", METHODS.index(m)))
    return cycle


# --------------------------------------------------------------------------------------------
# The load generator


def run_load(cfg: LoadConfig) -> LoadResult:
    """Flood ``cfg.target`` from this process; blocks for ``warmup + seconds`` (+ set-up)."""
    addrs = source_addresses(cfg.sources, cfg.first_source)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < len(addrs) + 64:  # one descriptor per source
        if hard != resource.RLIM_INFINITY and hard < len(addrs) + 64:
            raise ValueError(f"{len(addrs)} sources need {len(addrs) + 64} descriptors: ulimit -n")
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(addrs) + 64, hard))
    socks: list[socket.socket] = []
    ep = select.epoll()
    try:
        for ip in addrs:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            s.bind((ip, 0))
            s.connect(cfg.target)  # kernel filters other senders; send() skips address parsing
            s.setblocking(False)
            ep.register(s.fileno(), select.EPOLLIN)
        return _flood(cfg, socks, ep)
    finally:
        ep.close()
        for s in socks:
            s.close()


def _flood(cfg: LoadConfig, socks: list[socket.socket], ep: select.epoll) -> LoadResult:
    cycle = _templates(cfg.mix, os.urandom, cfg.read_only)
    methods = METHODS
    ncycle = len(cycle)
    by_fd = {s.fileno(): s.recv for s in socks}
    reads_per_event = max(1, 2 * cfg.window // len(socks))
    sends = [s.send for s in socks]
    nsocks = len(socks)
    inflight: dict[bytes, tuple[float, int]] = {}
    pack = struct.Struct(">I").pack
    bdecode = bencode2.bdecode
    monotonic = time.monotonic
    window = cfg.window
    q_timeout = cfg.query_timeout

    sent = answered = errors = lost = unmatched = malformed = reply_bytes = 0
    per_method = [0] * len(methods)
    rtts: list[float] = []
    seq = 0
    start = monotonic()
    measure_from = start + cfg.warmup
    end = measure_from + cfg.seconds
    measuring = False
    ramp = max(0.01, min(0.2, cfg.warmup))
    ramp_end = start + ramp
    cpu0 = cpu = 0.0
    next_sweep = start + 0.1
    now = start
    while True:
        now = monotonic()
        if not measuring and now >= measure_from:
            measuring = True
            cpu0 = time.process_time()
            sent = answered = errors = lost = unmatched = malformed = reply_bytes = 0
            per_method = [0] * len(methods)
            rtts = []
        if now >= end:
            cpu = time.process_time() - cpu0
            break
        # fill the window; it opens over the first ``ramp`` seconds, as one initial burst of a
        # few hundred datagrams overflows a default socket buffer (~200 small datagrams)
        if now < ramp_end:
            free = max(8, int(window * (now - start) / ramp)) - len(inflight)
        else:
            free = window - len(inflight)
        for _ in range(free):
            head, tail, mi = cycle[seq % ncycle]
            tid = pack(seq & 0xFFFFFFFF)
            try:
                sends[seq % nsocks](head + tid + tail)
            except (BlockingIOError, ConnectionRefusedError):
                seq += 1
                continue  # socket buffer full / target gone: count nothing, try again later
            inflight[tid] = (now, mi)
            seq += 1
            sent += 1
        # read replies: with few sockets drain each (an exception ends it); with many, read
        # one datagram per ready socket (level-triggered epoll reports the rest again)
        for fd, _ in ep.poll(0.01 if inflight else 0.001):
            recv = by_fd[fd]
            for _ in range(reads_per_event):
                try:
                    data = recv(4096)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                # Fast path: the 4-byte t is the last "1:t4:" and y is the last key (keys are
                # sorted, t < v < y). Every 16th answer is fully decoded to check that.
                i = data.rfind(b"1:t4:")
                t = data[i + 5 : i + 9]
                entry = inflight.pop(t, None) if i >= 0 else None
                if entry is None:
                    unmatched += 1
                elif data.endswith(b"1:y1:re"):
                    answered += 1
                    reply_bytes += len(data)
                    per_method[entry[1]] += 1
                    if answered & 15 == 0:
                        rtts.append(monotonic() - entry[0])
                        try:
                            msg = bdecode(data)
                            if msg[b"t"] != t or msg[b"y"] != b"r" or b"id" not in msg[b"r"]:
                                malformed += 1
                        except Exception:
                            malformed += 1
                elif data.endswith(b"1:y1:ee"):
                    errors += 1
                else:
                    malformed += 1
        if now >= next_sweep:
            next_sweep = now + 0.1
            too_old = now - q_timeout
            stale = [t for t, (ts, _) in inflight.items() if ts < too_old]
            for t in stale:
                del inflight[t]
            lost += len(stale)
    elapsed = now - measure_from
    rtts.sort()

    def pct(p: float) -> float:
        return round(rtts[min(len(rtts) - 1, int(p * len(rtts)))] * 1000, 3) if rtts else 0.0

    return LoadResult(
        target=cfg.target,
        seconds=round(elapsed, 4),
        sent=sent,
        answered=answered,
        errors=errors,
        lost=lost,
        unmatched=unmatched,
        malformed=malformed,
        mean_reply_bytes=round(reply_bytes / answered, 1) if answered else 0.0,
        latency_ms_p50=pct(0.5),
        latency_ms_p99=pct(0.99),
        generator_cpu=round(cpu / elapsed, 3),
        sources=nsocks,
        window=window,
        mix=dict(cfg.mix),
        per_method=dict(zip(methods, per_method, strict=True)),
    )


def _load_child(cfg: LoadConfig, conn: Connection) -> None:
    try:
        conn.send(run_load(cfg))
    except BaseException as e:  # report, don't hang the parent
        conn.send(RuntimeError(f"load generator failed: {type(e).__name__}: {e}"))
    finally:
        conn.close()


def run_load_in_process(cfg: LoadConfig, *, slack: float = 30.0) -> LoadResult:
    """Run :func:`run_load` in a fresh process (spawned); kill it if it overruns.

    ``slack``: seconds allowed beyond ``warmup + seconds`` for start-up (binding thousands of
    sockets) and reporting, after which the process is killed and ``TimeoutError`` raised.
    """
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_load_child, args=(cfg, child), name="krpc-load", daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(cfg.warmup + cfg.seconds + slack):
            raise TimeoutError(f"load generator gave no result within {cfg.seconds + slack}s")
        got = parent.recv()
    except EOFError:
        raise RuntimeError(f"load generator died (exit code {proc.exitcode})") from None
    finally:
        parent.close()
        proc.join(2)
        if proc.is_alive():
            proc.kill()
            proc.join(2)
    if isinstance(got, BaseException):
        raise got
    assert isinstance(got, LoadResult)
    return got


# --------------------------------------------------------------------------------------------
# A trivial KRPC responder: decode, build the reply, encode, send. Nothing else.


class TrivialResponder(asyncio.DatagramProtocol):
    """Answers ping/find_node/get_peers like a DHT node with a fixed table and no storage.

    Replies carry ``ip`` (BEP 42), ``id``, and for find_node/get_peers eight 26-byte nodes
    (get_peers: plus a token), so they are the size of a real node's replies. Anything else is
    answered with error 204.
    """

    def __init__(self) -> None:
        self.node_id = os.urandom(20)
        self.nodes = os.urandom(26 * 8)
        self.token = os.urandom(4)
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's isn't a subclass

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        try:
            msg = bencode2.bdecode(data)
            t = msg[b"t"]
            q = msg[b"q"]
        except Exception:
            return
        ip = socket.inet_aton(addr[0]) + addr[1].to_bytes(2, "big")
        reply: dict[bytes, Any]
        if q == b"ping":
            reply = {b"ip": ip, b"r": {b"id": self.node_id}, b"t": t, b"y": b"r"}
        elif q == b"find_node":
            r = {b"id": self.node_id, b"nodes": self.nodes}
            reply = {b"ip": ip, b"r": r, b"t": t, b"y": b"r"}
        elif q == b"get_peers":
            r = {b"id": self.node_id, b"nodes": self.nodes, b"token": self.token}
            reply = {b"ip": ip, b"r": r, b"t": t, b"y": b"r"}
        else:
            reply = {b"e": [204, b"Method Unknown"], b"t": t, b"y": b"e"}
        assert self.transport is not None
        self.transport.sendto(bencode2.bencode(reply), addr)
        self.answered += 1


def run_trivial_responder(
    host: str, port: int, ready: Any = None, *, use_uvloop: bool = True
) -> None:
    """Serve :class:`TrivialResponder` on ``host:port`` forever (run it in a process).

    ``ready``: an optional ``multiprocessing.Event`` set once the socket is bound.
    """

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(TrivialResponder, local_addr=(host, port))
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()

    if use_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.run(main())
            return
    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# Command line: `python scripts/krpc_load.py serve HOST PORT` runs the trivial responder (e.g.
# as a stand-in for bench_node.py --ours-cmd); `flood HOST:PORT` floods a node and prints JSON.


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(description="KRPC load generator and trivial responder")
    sub = p.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="run the trivial responder until killed")
    serve.add_argument("host")
    serve.add_argument("port", type=int)
    serve.add_argument("--no-uvloop", action="store_true")
    fl = sub.add_parser("flood", help="flood HOST:PORT, print the result as JSON")
    fl.add_argument("target", help="HOST:PORT")
    fl.add_argument("--seconds", type=float, default=3.0)
    fl.add_argument("--sources", type=int, default=1000)
    fl.add_argument("--window", type=int, default=192)
    fl.add_argument("--mix", default="ping:1,find_node:1,get_peers:1")
    args = p.parse_args(argv)
    if args.cmd == "serve":
        with contextlib.suppress(KeyboardInterrupt):
            run_trivial_responder(args.host, args.port, use_uvloop=not args.no_uvloop)
        return 0
    host, _, port = args.target.rpartition(":")
    cfg = LoadConfig(
        target=(host, int(port)),
        seconds=args.seconds,
        sources=args.sources,
        window=args.window,
        mix=parse_mix(args.mix),
    )
    print(json.dumps(run_load(cfg).as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
