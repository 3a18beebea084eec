"""Resolving many magnet links at once over one shared DHT node.

People resolve lists of thousands of links. Each link gets its own ``resolve`` (its own
lookups and peer connections) but they all share one DHT node, whose core bounds the
queries in flight; at most ``concurrency`` links are worked on at a time, and results are
yielded as each one finishes, in completion order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from magnet.io.resolve import ResolveError, ResolveResult, resolve

if TYPE_CHECKING:
    from dht.io.node import Node

__all__ = ["resolve_many"]


async def resolve_many(
    links: Iterable[str],
    *,
    node: Node,
    concurrency: int = 16,
    timeout: float = 60.0,
    max_connections: int = 20,
    **options: Any,
) -> AsyncIterator[tuple[str, ResolveResult | ResolveError]]:
    """Yield (link, result or error) for every link, as each finishes. ``options`` go to
    ``resolve`` (``use_trackers``, ``encryption``, ...)."""
    queue: asyncio.Queue[tuple[str, ResolveResult | ResolveError]] = asyncio.Queue()
    pending = iter(links)
    running: set[asyncio.Task[None]] = set()

    async def one(link: str) -> None:
        try:
            result: ResolveResult | ResolveError = await resolve(
                link, node=node, timeout=timeout, max_connections=max_connections, **options
            )
        except ResolveError as exc:
            result = exc
        await queue.put((link, result))

    outstanding = 0  # started and not yet yielded

    def start_next() -> None:
        nonlocal outstanding
        link = next(pending, None)
        if link is not None:
            task = asyncio.create_task(one(link))
            running.add(task)
            task.add_done_callback(running.discard)
            outstanding += 1

    try:
        for _ in range(max(1, concurrency)):
            start_next()
        while outstanding:
            item = await queue.get()
            outstanding -= 1
            start_next()
            yield item
    finally:
        for task in running:
            task.cancel()
