"""Bootstrap routers: the well-known entry points into the public DHT, and address parsing.

Some of the public routers are down at any given time, so every one is resolved and the
lookup is seeded with whichever addresses came back; the core retries with back-off when
none of them answers.
"""

from __future__ import annotations

import asyncio
import socket

from dht.wire import Addr

__all__ = ["DEFAULT_ROUTERS", "format_hostport", "parse_hostport", "resolve_routers"]

DEFAULT_ROUTERS: tuple[Addr, ...] = (
    ("router.bittorrent.com", 6881),
    ("dht.transmissionbt.com", 6881),
    ("router.utorrent.com", 6881),
    ("dht.libtorrent.org", 25401),
)


def parse_hostport(text: str, default_port: int | None = None) -> Addr:
    """``host:port``, ``1.2.3.4:port`` or ``[v6]:port`` -> (host, port). Raises ValueError."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"{text!r}: missing ']'")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':' after ']'")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"{text!r}: no host")
    if not port_text:
        if default_port is None:
            raise ValueError(f"{text!r}: no port (expected HOST:PORT)")
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: port must be a number from 1 to 65535")
    return host, int(port_text)


def format_hostport(addr: Addr) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
