#!/usr/bin/env python3
"""The main job on a private loopback DHT, no internet needed.

Starts a testnet of DHT nodes on 127.0.0.1, announces a peer for a random info-hash from one
of them, then runs ``magnetar peers`` against the testnet and shows what it finds.
"""

from __future__ import annotations

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from dht.bootstrap import format_hostport
from dht.testnet import Testnet


async def main() -> int:
    async with Testnet(30) as net:
        info_hash = os.urandom(20)
        stored = await net.nodes[-1].announce(info_hash, 51413)
        boot = format_hostport(net.bootstrap_addrs(1)[0])
        print(f"testnet: {len(net.nodes)} nodes on 127.0.0.1, bootstrap {boot}")
        print(f"announced 127.0.0.1:51413 for {info_hash.hex()} to {stored} nodes")
        cmd = [
            sys.executable,
            "-m",
            "magnet",
            "peers",
            info_hash.hex(),
            "-b",
            boot,
            "--timeout",
            "10",
        ]
        print("$ magnetar peers", info_hash.hex(), "-b", boot, flush=True)
        proc = await asyncio.create_subprocess_exec(*cmd)
        return await asyncio.wait_for(proc.wait(), 30)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
