"""Resolving many magnet links at once over one shared DHT node.

People resolve lists of thousands of links. Each link gets its own ``resolve`` (its own
lookups and peer connections) but they all share one DHT node, whose core bounds the
queries in flight; at most ``concurrency`` links are worked on at a time, and results are
yielded as each one finishes, in completion order. Without a node of the caller's, a
read-only client node is started (and closed) for the whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from magnet.io.resolve import ResolveError, ResolveResult, resolve

if TYPE_CHECKING:
    from dht.io.node import Node

__all__ = ["resolve_many"]

log = logging.getLogger("magnet.io.bulk")


async def resolve_many(
    links: Iterable[str],
    *,
    node: Node | None = None,
    bootstrap: Sequence[tuple[str, int]] | None = None,
    concurrency: int = 16,
    timeout: float = 60.0,
    max_connections: int = 20,
    use_dht: bool = True,
    **options: Any,
) -> AsyncIterator[tuple[str, ResolveResult | ResolveError]]:
    """Yield (link, result or error) for every link, as each finishes.

    The links share ``node``; when None (and ``use_dht``), a client node joining through
    ``bootstrap`` (None: the public routers) is made for them. ``options`` go to ``resolve``
    (``use_trackers``, ``encryption``, ...)."""
    async with contextlib.AsyncExitStack() as stack:
        if node is None and use_dht:
            from dht.io.client import client_node

            node = await stack.enter_async_context(client_node(bootstrap))
            if await node.bootstrap() == 0:
                log.warning("no DHT node answered the bootstrap; trying anyway")
        results = _resolve_each(
            links,
            concurrency,
            node=node,
            timeout=timeout,
            max_connections=max_connections,
            use_dht=use_dht,
            **options,
        )
        # Closed before the node is: no resolve may outlive the node it uses.
        async with contextlib.aclosing(results):
            async for item in results:
                yield item


async def _resolve_each(
    links: Iterable[str], concurrency: int, **options: Any
) -> AsyncGenerator[tuple[str, ResolveResult | ResolveError], None]:
    queue: asyncio.Queue[tuple[str, ResolveResult | ResolveError]] = asyncio.Queue()
    pending = iter(links)
    running: set[asyncio.Task[None]] = set()

    async def one(link: str) -> None:
        try:
            result: ResolveResult | ResolveError = await resolve(link, **options)
        except ResolveError as exc:
            result = exc
        except Exception as exc:  # the one boundary per link: a bug or a hostile peer's
            # input must cost this link, never the batch (it would wait forever for it)
            log.exception("%s: unexpected error", link)
            result = ResolveError(f"unexpected error: {type(exc).__name__}: {exc}", "error")
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
