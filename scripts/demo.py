#!/usr/bin/env python3
"""The main job on a private loopback DHT, no internet needed.

Starts a testnet of DHT nodes on 127.0.0.1, publishes a freshly made sample torrent with
``magnet.io.serve.run`` (announced on the testnet, metadata served over TCP), then runs
``magnetar resolve`` on its bare magnet link and checks the .torrent it writes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import bencode2

from dht.addresses import format_hostport
from dht.io.testnet import Testnet
from magnet.io.serve import run as publish
from magnet.torrentfile import build_torrent, parse_torrent

PIECE = 16384


def sample_torrent(directory: Path) -> bytes:
    """A two-file torrent over random data, as a client would make it."""
    files = {"demo/readme.txt": b"magnetar demo\n" * 100, "demo/data.bin": os.urandom(300_000)}
    blob = b"".join(files.values())
    pieces = b"".join(
        hashlib.sha1(blob[i : i + PIECE]).digest() for i in range(0, len(blob), PIECE)
    )
    info = bencode2.bencode(
        {
            b"files": [
                {b"length": len(data), b"path": [part.encode() for part in name.split("/")[1:]]}
                for name, data in files.items()
            ],
            b"name": b"magnetar-demo",
            b"piece length": PIECE,
            b"pieces": pieces,
        }
    )
    return build_torrent(info, creation_date=0)


async def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="magnetar-demo-"))
    meta = parse_torrent(sample_torrent(workdir))
    async with Testnet(30) as net:
        boot = format_hostport(net.bootstrap_addrs(1)[0])
        print(f"testnet: {len(net.nodes)} DHT nodes on 127.0.0.1, bootstrap {boot}")
        stop = asyncio.Event()
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(
            publish(
                [meta],
                host="127.0.0.1",
                port=0,
                dht_port=0,
                bootstrap=net.bootstrap_addrs(3),
                use_trackers=False,
                on_ready=ready.set_result,
                stop=stop,
            )
        )
        port = await ready
        while not any(key in n.core.storage for n in net.nodes for key in [meta.info_hash_v1]):
            await asyncio.sleep(0.05)  # until the first announce has landed
        link = f"magnet:?xt=urn:btih:{meta.info_hash_v1.hex() if meta.info_hash_v1 else ''}"
        print(f"serving '{meta.name}' metadata on 127.0.0.1:{port}, announced on the testnet")
        out = workdir / "resolved.torrent"
        print(f"$ magnetar resolve '{link}' -b {boot} -o {out}", flush=True)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "magnet",
            "resolve",
            link,
            "-b",
            boot,
            "-o",
            str(out),
            "--timeout",
            "20",
        )
        code = await asyncio.wait_for(proc.wait(), 30)
        stop.set()
        await server
    if code != 0:
        return code
    resolved = parse_torrent(out.read_bytes())
    same = resolved.info == meta.info
    print(
        f"info dict byte-identical to the original: {same}; files: "
        + ", ".join(f"{'/'.join(f.path)} ({f.length} B)" for f in resolved.files)
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
