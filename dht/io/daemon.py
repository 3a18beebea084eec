"""Running a DHT node as a long-lived service: start, join, report, persist, stop on a signal.

``serve_node`` is what ``magnetar node`` runs. It restores the node's identity and table from
``--state`` (a corrupt file is reported in one line and set aside; the node starts fresh),
binds, joins the DHT in the background (saved nodes first, then the routers; the core
retries with back-off if nobody answers), keeps the BEP 44 items it was asked to keep alive
once joined (looking a while for one not found yet), logs a status line and optionally
prints a JSON stats line every interval, serves Prometheus metrics if asked, saves its state
periodically and on the way out, and returns within a second or two of SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dht.addresses import format_hostport
from dht.io.node import Node
from dht.protocol import DhtConfig
from dht.wire import Addr

__all__ = [
    "BindError",
    "NodeService",
    "format_status",
    "keep_item",
    "serve_node",
    "stop_on_signals",
]

log = logging.getLogger("dht.io.node")


class BindError(OSError):
    """One of the service's addresses cannot be bound; ``what`` and ``addr`` say which (the
    node's UDP port or the metrics endpoint), ``strerror`` why."""

    def __init__(self, what: str, addr: Addr, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.what = what
        self.addr = addr

    def __str__(self) -> str:
        return f"cannot bind {format_hostport(self.addr)} ({self.what}): {self.strerror}"


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

    pool = f"; pool {status['pool']} nodes" if status.get("pool") is not None else ""
    return (
        f"table {status['nodes']} nodes ({status['good']} good, {status['questionable']} "
        f"questionable) in {status['buckets']} buckets{pool}; "
        f"in {total('queries_in')} queries{breakdown('queries_in')}; "
        f"out {total('queries_out')} queries, {status['responses_in']} answers, "
        f"{status['timeouts']} timeouts; {status['info_hashes']} info-hashes, "
        f"{status['peers']} peers stored"
        + (f"; dropped {total('dropped')}{breakdown('dropped')}" if total("dropped") else "")
        + (f"; IPv6: {format_status(v6)}" if isinstance(v6 := status.get("ipv6"), dict) else "")
    )


@dataclass(slots=True)
class NodeService:
    """What ``magnetar node`` runs, as options."""

    host: str = "0.0.0.0"
    port: int = 6881
    routers: Sequence[Addr] | None = None  # None: the public routers
    config: DhtConfig | None = None
    status_interval: float = 60.0  # seconds between status log lines
    stats_interval: float | None = None  # seconds between JSON stats lines on stdout
    state_path: str | None = None
    state_interval: float = 60.0  # seconds between state saves
    metrics: Addr | None = None  # Prometheus endpoint
    emit: Callable[[str], None] | None = None  # where JSON stats lines go (default stdout)
    keep: Sequence[tuple[bytes, bytes]] = ()  # (target, salt) of BEP 44 items to keep alive
    keep_retry_s: float = 60.0  # an item not found yet is looked for again this much later
    keep_tries: int = 30  # ... this many times in all, then given up (logged)


def stats_record(node: Node) -> dict[str, Any]:
    from dht.io.resources import rss_bytes

    record: dict[str, Any] = {"time": round(time.time(), 3)}
    record.update(node.status())
    record["rss"] = rss_bytes()
    return record


def save_node_state(node: Node, path: str) -> None:
    from dht.io.state import NodeState, save_state

    voter = node.core.external_ip
    state = NodeState.from_contacts(
        node.node_id,
        node.contacts(),
        external_ip=voter.external_ip,
        ip_votes=voter.tally(),
        saved_at=time.time(),
    )
    save_state(path, state)


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[asyncio.Event]:
    """Set ``stop`` on SIGINT/SIGTERM while inside (where the loop allows signal handlers)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def keep_item(node: Node, target: bytes, salt: bytes, retry_s: float, tries: int) -> bool:
    """``node.keep`` the item, looking again every ``retry_s`` while it is not found (it may
    not be put yet, or our table may still be thin), at most ``tries`` times."""
    for attempt in range(1, tries + 1):
        item = await node.keep(target, salt=salt)
        if item is not None:
            seq = getattr(item, "seq", None)
            log.info("keeping item %s%s", target.hex(), "" if seq is None else f" (seq {seq})")
            return True
        if attempt < tries:
            log.info(
                "item %s not found (try %d of %d); looking again in %g s",
                target.hex(),
                attempt,
                tries,
                retry_s,
            )
            await asyncio.sleep(retry_s)
    log.warning("item %s not found after %d tries; not kept", target.hex(), tries)
    return False


async def serve_node(service: NodeService, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    with stop_on_signals(stop):
        await _serve_node(service, stop)


async def _serve_node(service: NodeService, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    saved = None
    if service.state_path:
        from dht.io.state import load_state_or_fresh

        saved, problem = load_state_or_fresh(service.state_path)
        if problem is not None:
            log.warning(
                "state file %s is unusable (%s); starting fresh", service.state_path, problem
            )
        elif saved is not None:
            log.info(
                "restored node %s and %d nodes from %s",
                saved.node_id.hex(),
                len(saved.nodes) + len(saved.nodes6),
                service.state_path,
            )
    node = Node(
        service.host,
        service.port,
        node_id=saved.node_id if saved else None,
        bootstrap_routers=service.routers,
        config=service.config,
    )
    try:
        await node.start()
    except OSError as exc:
        raise BindError("UDP, DHT node", (service.host, service.port), exc) from exc
    if saved is not None:
        node.restore([*saved.nodes, *saved.nodes6], saved.external_ip)
    log.info(
        "node %s listening on %s", node.node_id.hex(), ", ".join(map(format_hostport, node.addrs))
    )
    metrics = None
    if service.metrics is not None:
        from dht.io.metrics import snapshot_on_loop, start_metrics_server

        try:
            metrics = start_metrics_server(
                service.metrics[0], service.metrics[1], snapshot_on_loop(loop, node.status)
            )
        except BaseException as exc:
            node.close()  # started above: never left bound behind an error
            if isinstance(exc, OSError):
                raise BindError("TCP, metrics", service.metrics, exc) from exc
            raise
        log.info("metrics on http://%s/metrics", format_hostport((metrics.host, metrics.port)))
    emit = service.emit or _print_line

    async def join() -> None:
        size = await node.bootstrap()
        log.info("joined the DHT: %d nodes in the routing table", size)
        await asyncio.gather(
            *(
                keep_item(node, target, salt, service.keep_retry_s, service.keep_tries)
                for target, salt in service.keep
            )
        )

    def save() -> None:
        if service.state_path:
            try:
                save_node_state(node, service.state_path)
            except OSError as exc:
                log.warning("cannot save state to %s: %s", service.state_path, exc)

    joining = asyncio.create_task(join())
    now = loop.time()
    due = {"status": now + service.status_interval, "state": now + service.state_interval}
    if service.stats_interval:
        due["stats"] = now + service.stats_interval
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, min(due.values()) - loop.time()))
            if stop.is_set():
                break
            now = loop.time()
            if now >= due["status"]:
                due["status"] = now + service.status_interval
                log.info("%s", format_status(node.status()))
            if "stats" in due and now >= due["stats"] and service.stats_interval:
                due["stats"] = now + service.stats_interval
                emit(json.dumps(stats_record(node)))
            if now >= due["state"]:
                due["state"] = now + service.state_interval
                save()
    finally:
        joining.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await joining
        save()
        node.close()
        if metrics is not None:
            metrics.close()
        log.info("node stopped")


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
