"""Bootstrap routers: the well-known entry points into the public DHT, resolved by DNS.

Some of the public routers are down at any given time, so every one is resolved and the
lookup is seeded with whichever addresses came back; the core retries with back-off when
none of them answers.
"""

from __future__ import annotations

import asyncio
import socket

from dht.wire import Addr

__all__ = ["DEFAULT_ROUTERS", "resolve_routers"]

DEFAULT_ROUTERS: tuple[Addr, ...] = (
    ("router.bittorrent.com", 6881),
    ("dht.transmissionbt.com", 6881),
    ("router.utorrent.com", 6881),
    ("dht.libtorrent.org", 25401),
)


async def resolve_routers(
    routers: tuple[Addr, ...] | list[Addr], *, family: int = socket.AF_INET, timeout: float = 5.0
) -> list[Addr]:
    """Resolve every router concurrently; those that fail or time out are left out."""
    loop = asyncio.get_running_loop()

    async def one(host: str, port: int) -> list[Addr]:
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM), timeout
            )
        except (OSError, TimeoutError, UnicodeError):
            return []
        return [(str(info[4][0]), int(info[4][1])) for info in infos]

    results = await asyncio.gather(*(one(h, p) for h, p in routers))
    seen: dict[Addr, None] = {}
    for addrs in results:
        for a in addrs:
            seen.setdefault(a, None)
    return list(seen)
