"""Honest metadata seeds on loopback, in a thread of their own, for command-line tests.

A command run in-process (typer's CliRunner) or as a subprocess runs its own event loop;
the seeds it resolves from must keep answering meanwhile, so they live on a loop in a
background thread. Each torrent is reachable through its link's ``x.pe``: no DHT, no tracker.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.magnet.fakepeers import Honest, info_hash, serve_behaviour

__all__ = ["seeded_links"]


@contextmanager
def seeded_links(infos: list[bytes]) -> Iterator[list[str]]:
    """Magnet links (with ``x.pe``) for ``infos``, each served by its own seed while inside."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> list[tuple[asyncio.Server, str]]:
        made = []
        for info in infos:
            server, (host, port), _ = await serve_behaviour(Honest, info)
            link = f"magnet:?xt=urn:btih:{info_hash(info).hex()}&x.pe={host}:{port}"
            made.append((server, link))
        return made

    async def stop(servers: list[asyncio.Server]) -> None:
        for server in servers:
            server.close()

    started = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield [link for _, link in started]
    finally:
        asyncio.run_coroutine_threadsafe(stop([s for s, _ in started]), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
