"""An optional Prometheus endpoint for a running node (``pip install magnetar[metrics]``).

``start_metrics_server`` serves ``/metrics`` from a thread of its own. Nothing updates gauges
in the background: at each scrape a collector calls ``snapshot()`` (the dict that
``DhtProtocol.status(now)`` returns) and turns it into metric families, so a scrape costs
one snapshot and an idle endpoint costs nothing. ``prometheus_client`` is imported only when
the server starts: the CLI must start fast. Snapshot keys this module does not know are still
exported, as gauges, so a new counter in ``status()`` shows up before anyone maps it here.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, cast

from dht.io.resources import rss_bytes

if TYPE_CHECKING:
    import asyncio
    import threading
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["MetricsServer", "StatusCollector", "snapshot_on_loop", "start_metrics_server"]

log = logging.getLogger("dht.io.metrics")

Snapshot = Callable[[], Mapping[str, object]]

PREFIX = "magnetar_dht_"
MAX_LABELS = 64  # label values per metric: method names and drop reasons are few, keep it so
MAX_EXTRA = 64  # snapshot keys exported without a mapping

# status() key -> (metric name without prefix, help). Counters only ever grow (Stats).
_COUNTERS: dict[str, tuple[str, str]] = {
    "received": ("datagrams_received", "Datagrams received."),
    "sent": ("datagrams_sent", "Datagrams sent."),
    "responses_in": ("responses_received", "Responses received to our queries."),
    "errors_in": ("errors_received", "KRPC errors received."),
    "errors_out": ("errors_sent", "KRPC errors sent."),
    "timeouts": ("query_timeouts", "Queries that timed out."),
}
_LABELLED_COUNTERS: dict[str, tuple[str, str, str]] = {
    "queries_in": ("queries_received", "method", "Queries received, by method."),
    "queries_out": ("queries_sent", "method", "Queries sent, by method."),
    "dropped": ("dropped", "reason", "Datagrams and queries dropped, by reason."),
}
_GAUGES: dict[str, tuple[str, str]] = {
    "nodes": ("routing_nodes", "Nodes in the routing table."),
    "buckets": ("routing_buckets", "Buckets in the routing table."),
    "info_hashes": ("stored_info_hashes", "Info-hashes with stored peers."),
    "peers": ("stored_peers", "Peers stored over all info-hashes."),
    "lookups": ("lookups_active", "Lookups in progress."),
    "pending": ("queries_pending", "Queries awaiting an answer."),
}
_NODE_STATES = ("good", "questionable", "bad")  # BEP 5 liveness of routing-table nodes
_KNOWN = {*_COUNTERS, *_LABELLED_COUNTERS, *_GAUGES, *_NODE_STATES}
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]")


def _number(value: object) -> float | None:
    # bool is an int: exported as 0/1, which is what a flag in a snapshot means.
    return float(value) if isinstance(value, int | float) else None


def _bounded(values: Mapping[object, object]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        n = _number(value)
        if n is None:
            continue
        label = str(key) if len(out) < MAX_LABELS - 1 or str(key) in out else "other"
        out[label] = out.get(label, 0.0) + n
    return out


class StatusCollector:
    """A prometheus_client collector over a status snapshot, read at scrape time."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        try:
            status = self._snapshot()
            ok = 1.0
        except Exception:  # a failed snapshot must not fail the scrape: say so instead
            log.warning("metrics snapshot failed", exc_info=True)
            status, ok = {}, 0.0
        yield GaugeMetricFamily(
            PREFIX + "status_ok", "1 if the node answered the status snapshot.", value=ok
        )
        rss = rss_bytes()
        if rss:
            yield GaugeMetricFamily(
                "magnetar_process_resident_memory_bytes",
                "Resident memory of the node process (the figure status lines print).",
                value=rss,
            )
        for key, (name, doc) in _COUNTERS.items():
            n = _number(status.get(key))
            if n is not None:
                yield CounterMetricFamily(PREFIX + name, doc, value=n)
        for key, (name, label, doc) in _LABELLED_COUNTERS.items():
            values = status.get(key)
            if isinstance(values, Mapping):
                family = CounterMetricFamily(PREFIX + name, doc, labels=[label])
                for label_value, n in sorted(_bounded(values).items()):
                    family.add_metric([label_value], n)
                yield family
        for key, (name, doc) in _GAUGES.items():
            n = _number(status.get(key))
            if n is not None:
                yield GaugeMetricFamily(PREFIX + name, doc, value=n)
        by_state = GaugeMetricFamily(
            PREFIX + "routing_nodes_by_state",
            "Routing-table nodes by BEP 5 liveness.",
            labels=["state"],
        )
        for state in _NODE_STATES:
            n = _number(status.get(state))
            if n is not None:
                by_state.add_metric([state], n)
        yield by_state
        yield from self._extra(status)

    def _extra(self, status: Mapping[str, object]) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        taken = {PREFIX + name for name, *_ in [*_COUNTERS.values(), *_GAUGES.values()]}
        taken |= {PREFIX + name for name, *_ in _LABELLED_COUNTERS.values()}
        exported = 0
        for key in sorted(status):
            if key in _KNOWN or exported >= MAX_EXTRA:
                continue
            name = PREFIX + _NOT_NAME.sub("_", key)
            if name in taken:
                continue
            value = status[key]
            doc = f"status()['{key}'], not yet mapped to a metric type."
            n = _number(value)
            if n is not None:
                yield GaugeMetricFamily(name, doc, value=n)
            elif isinstance(value, Mapping):
                family = GaugeMetricFamily(name, doc, labels=["key"])
                for label_value, v in sorted(_bounded(value).items()):
                    family.add_metric([label_value], v)
                yield family
            else:
                continue
            taken.add(name)
            exported += 1


class MetricsServer:
    """A running ``/metrics`` endpoint; ``close()`` stops it."""

    def __init__(
        self, server: WSGIServer, thread: threading.Thread, registry: CollectorRegistry
    ) -> None:
        self._server = server
        self._thread = thread
        self.registry = registry
        host, port = server.server_address[:2]
        self.host = str(host)
        self.port = int(port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_metrics_server(
    host: str, port: int, snapshot: Snapshot, *, process_metrics: bool = True
) -> MetricsServer:
    """Serve ``/metrics`` on ``host:port`` (port 0 picks a free one: see ``.port``).

    ``snapshot`` runs on the server's thread, once per scrape, and scrapes may overlap: if
    it reads state owned by an event loop, wrap it with ``snapshot_on_loop``. With
    ``process_metrics`` the standard ``process_*`` families (CPU, memory, open files) are
    served too, where the platform provides them (Linux).

    Raises:
        ImportError: prometheus-client is not installed (the ``metrics`` extra).
        OSError: the address cannot be bound.
    """
    from prometheus_client import start_http_server
    from prometheus_client.process_collector import ProcessCollector
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(cast("Collector", StatusCollector(snapshot)))
    if process_metrics:
        ProcessCollector(registry=registry)
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread, registry)


def snapshot_on_loop(
    loop: asyncio.AbstractEventLoop, snapshot: Snapshot, timeout: float = 2.0
) -> Snapshot:
    """Wrap ``snapshot`` so it runs on ``loop``'s thread, for calls from another thread.

    The protocol core is not thread-safe: reading its tables from the metrics thread while
    the loop mutates them could see a dict change size mid-iteration. The wrapper hands the
    call to the loop and waits at most ``timeout`` seconds (raising TimeoutError, which
    the collector reports as ``status_ok 0``).
    """

    def on_loop() -> Mapping[str, object]:
        result: concurrent.futures.Future[Mapping[str, object]] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(snapshot())
            except Exception as exc:
                result.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return result.result(timeout)

    return on_loop
