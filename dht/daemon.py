"""Running a DHT node as a long-lived service: start, join, report, stop on a signal.

``serve_node`` is what ``magnetar node`` runs. It binds the node, joins the DHT in the
background (the core retries with back-off if no router answers), logs a one-line status
every ``status_interval`` seconds, and returns cleanly on SIGINT/SIGTERM or when ``stop``
is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from dht.bootstrap import format_hostport
from dht.node import Node
from dht.protocol import DhtConfig
from dht.wire import Addr

__all__ = ["format_status", "serve_node"]

log = logging.getLogger("dht.node")


def format_status(status: dict[str, object]) -> str:
    """One human line from ``DhtProtocol.status()``."""

    def total(key: str) -> int:
        value = status.get(key)
        return sum(value.values()) if isinstance(value, dict) else 0

    def breakdown(key: str) -> str:
        value = status.get(key)
        if not isinstance(value, dict) or not value:
            return ""
        return " (" + ", ".join(f"{k} {v}" for k, v in sorted(value.items())) + ")"

    return (
        f"table {status['nodes']} nodes ({status['good']} good, {status['questionable']} "
        f"questionable) in {status['buckets']} buckets; "
        f"in {total('queries_in')} queries{breakdown('queries_in')}; "
        f"out {total('queries_out')} queries, {status['responses_in']} answers, "
        f"{status['timeouts']} timeouts; {status['info_hashes']} info-hashes, "
        f"{status['peers']} peers stored"
        + (f"; dropped {total('dropped')}{breakdown('dropped')}" if total("dropped") else "")
        + (f"; IPv6: {format_status(v6)}" if isinstance(v6 := status.get("ipv6"), dict) else "")
    )


async def serve_node(
    host: str,
    port: int,
    routers: Sequence[Addr] | None,
    *,
    config: DhtConfig | None = None,
    status_interval: float = 60.0,
    stop: asyncio.Event | None = None,
) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    node = Node(host, port, bootstrap_routers=routers, config=config)
    await node.start()
    log.info("node %s listening on %s", node.node_id.hex(), format_hostport(node.addr))

    async def join() -> None:
        size = await node.bootstrap()
        log.info("joined the DHT: %d nodes in the routing table", size)

    joining = asyncio.create_task(join())
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), status_interval)
            if not stop.is_set():
                log.info("%s", format_status(node.status()))
    finally:
        joining.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await joining
        node.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        log.info("node stopped")
