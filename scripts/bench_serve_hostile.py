#!/usr/bin/env python3
"""``magnetar serve`` under attack on loopback: is an honest client still served?

Starts ``magnetar serve`` in its own process (a 640 KiB info dict, its DHT node pointed at
nobody), then runs each attack from 127.0.0.2-127.0.0.x while an honest client on 127.0.0.9
fetches the whole metadata again and again. For each attack it prints the client's success
rate and median fetch time, the server's CPU share (its CPU seconds per second, from
/proc), and its RSS at the end. Only loopback addresses are used.

    python scripts/bench_serve_hostile.py
    python scripts/bench_serve_hostile.py --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from magnet.metadata import METADATA_PIECE  # noqa: E402
from magnet.peerwire import NEED_DATA, PeerConnection  # noqa: E402
from magnet.torrentfile import build_torrent  # noqa: E402
from tests.magnet.fakepeers import info_hash, make_info  # noqa: E402
from tests.magnet.metadata_client import fetch_metadata  # noqa: E402

INFO = make_info(40 * METADATA_PIECE)
HASH = info_hash(INFO)
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def honest_fetch(port: int) -> float:
    """Fetch every piece from 127.0.0.9; seconds taken (raises on failure)."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.9", 0))
    try:
        # No read deadline: the bench's own timeout bounds a fetch under attack.
        info = await fetch_metadata(reader, writer, HASH, read_timeout=None)
        if info != INFO:
            raise ValueError("wrong metadata")
        return time.monotonic() - start
    finally:
        writer.close()


async def request_bursts(port: int, stop: asyncio.Event) -> None:
    """Connections that ask for every piece thousands of times in one write, and read."""

    async def one(source: str) -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(source, 0)
                )
            except OSError:
                await asyncio.sleep(0.05)
                continue
            conn = PeerConnection(HASH, os.urandom(20))
            writer.write(conn.send_handshake() + conn.send_ext_handshake())
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.read(65536), 2)
                burst = b"".join(conn.send_metadata_request(i % 40) for i in range(4000))
                while not stop.is_set():
                    writer.write(burst)
                    await asyncio.wait_for(reader.read(1 << 20), 2)
            writer.close()

    await asyncio.gather(*(one(f"127.0.0.{2 + i % 4}") for i in range(8)))


async def slowloris(port: int, stop: asyncio.Event) -> None:
    """Hundreds of connections from one address, each trickling a byte a second."""
    writers: list[asyncio.StreamWriter] = []
    hello = PeerConnection(HASH, os.urandom(20)).send_handshake()
    i = 0
    while not stop.is_set():
        for _ in range(20):  # ~1000 new connections a second
            with contextlib.suppress(OSError):
                _, w = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=("127.0.0.6", 0)
                )
                writers.append(w)
        for w in writers[-600:]:
            with contextlib.suppress(Exception):
                w.write(hello[i % len(hello) : i % len(hello) + 1])
        writers = [w for w in writers[-600:] if not w.is_closing()]
        i += 1
        await asyncio.sleep(0.02)
    for w in writers:
        w.close()


async def never_reads(port: int, stop: asyncio.Event) -> None:
    """Connections that ask for everything and never read a byte of the answers."""
    socks: list[socket.socket] = []
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        try:
            s.bind(("127.0.0.7", 0))
            await loop.sock_connect(s, ("127.0.0.1", port))
            conn = PeerConnection(HASH, os.urandom(20))
            await loop.sock_sendall(s, conn.send_handshake() + conn.send_ext_handshake())
            await asyncio.sleep(0.05)
            conn.receive_data(s.recv(4096))
            for _ in range(8):  # the handshakes (a closed connection repeats its last event)
                if conn.next_event() is NEED_DATA:
                    break
            for _ in range(20):
                s.send(b"".join(conn.send_metadata_request(i) for i in range(40)))
        except (OSError, ValueError, AssertionError):
            pass
        socks.append(s)
        socks, old = socks[-50:], socks[:-50]
        for o in old:
            o.close()
        await asyncio.sleep(0.05)
    for s in socks:
        s.close()


async def nothing(port: int, stop: asyncio.Event) -> None:
    await stop.wait()


ATTACKS: dict[str, Callable[[int, asyncio.Event], Coroutine[Any, Any, None]]] = {
    "no attack": nothing,
    "request bursts": request_bursts,
    "slowloris": slowloris,
    "never reads": never_reads,
}


async def measure(name: str, port: int, pid: int, seconds: float) -> str:
    stop = asyncio.Event()
    attack = asyncio.create_task(ATTACKS[name](port, stop))
    await asyncio.sleep(0.5)  # let the attack build up
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    times: list[float] = []
    tries = 0
    while time.monotonic() - t0 < seconds:
        tries += 1
        with contextlib.suppress(Exception):
            times.append(await asyncio.wait_for(honest_fetch(port), 5))
        await asyncio.sleep(0.1)
    share = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(attack, 10)
    median = statistics.median(times) * 1000 if times else float("nan")
    return (
        f"{name:>15}: client served {len(times)}/{tries} ({len(times) / max(1, tries):.0%}), "
        f"median {median:.1f} ms; server CPU share {share:.0%}; RSS {rss_mib(pid):.0f} MiB"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per attack")
    p.add_argument("--attack", action="append", choices=list(ATTACKS), help="(repeatable)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        torrent = Path(tmp) / "bench.torrent"
        torrent.write_bytes(build_torrent(INFO))
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "magnet",
                "-q",
                "serve",
                str(torrent),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "-b",
                "127.0.0.1:9",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    break
                time.sleep(0.1)
            for name in args.attack or list(ATTACKS):
                print(asyncio.run(measure(name, port, server.pid, args.seconds)), flush=True)
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
