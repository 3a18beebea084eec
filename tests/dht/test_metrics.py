import asyncio
import os
import random
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dht.io.metrics import MAX_LABELS, snapshot_on_loop, start_metrics_server
from dht.protocol import DhtProtocol

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(30)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def status() -> dict[str, object]:
    core = DhtProtocol(bytes(20), rng=random.Random(1), now=0.0)
    st = core.status(0.0)
    st.update(
        received=10,
        sent=7,
        queries_in={"ping": 3, "get_peers": 4},
        queries_out={"find_node": 5},
        dropped={"garbage": 2, "no query slot": 1},
        good=4,
        questionable=2,
        bad=1,
        nodes=7,
        rate_limited=9,  # a key this module does not map
        by_kind={"a": 1, "b": 2},
        note="text is not exported",
    )
    return st


def test_scrape_exports_status_and_rss() -> None:
    calls = []

    def snapshot() -> Mapping[str, object]:
        calls.append(1)
        return status()

    with start_metrics_server("127.0.0.1", 0, snapshot) as server:
        assert server.port > 0
        assert calls == []  # nothing is read until someone scrapes
        m = scrape(server.port)
        assert len(calls) == 1
    assert m[("magnetar_dht_status_ok", ())] == 1
    assert m[("magnetar_dht_datagrams_received_total", ())] == 10
    assert m[("magnetar_dht_datagrams_sent_total", ())] == 7
    assert m[("magnetar_dht_queries_received_total", (("method", "ping"),))] == 3
    assert m[("magnetar_dht_queries_received_total", (("method", "get_peers"),))] == 4
    assert m[("magnetar_dht_queries_sent_total", (("method", "find_node"),))] == 5
    assert m[("magnetar_dht_dropped_total", (("reason", "no query slot"),))] == 1
    assert m[("magnetar_dht_routing_nodes", ())] == 7
    assert m[("magnetar_dht_routing_nodes_by_state", (("state", "questionable"),))] == 2
    for key in ("responses_received_total", "errors_received_total", "errors_sent_total"):
        assert m[(f"magnetar_dht_{key}", ())] == 0
    for key in ("query_timeouts_total", "routing_buckets", "stored_info_hashes"):
        assert (f"magnetar_dht_{key}", ()) in m
    for key in ("stored_peers", "lookups_active", "queries_pending"):
        assert m[(f"magnetar_dht_{key}", ())] == 0
    assert m[("magnetar_dht_rate_limited", ())] == 9
    assert m[("magnetar_dht_by_kind", (("key", "b"),))] == 2
    assert not any(name.endswith("note") for name, _ in m)
    assert m[("magnetar_process_resident_memory_bytes", ())] > 1 << 20
    if sys.platform.startswith("linux"):
        assert m[("process_resident_memory_bytes", ())] > 1 << 20
        assert ("process_cpu_seconds_total", ()) in m


def test_a_failing_snapshot_still_scrapes() -> None:
    def snapshot() -> Mapping[str, object]:
        raise RuntimeError("loop gone")

    with start_metrics_server("127.0.0.1", 0, snapshot, process_metrics=False) as server:
        m = scrape(server.port)
    assert m[("magnetar_dht_status_ok", ())] == 0
    assert not any(name.startswith("process_") for name, _ in m)


def test_labels_are_bounded() -> None:
    def snapshot() -> Mapping[str, object]:
        return {"dropped": {f"reason {i}": 1 for i in range(1000)}}

    with start_metrics_server("127.0.0.1", 0, snapshot, process_metrics=False) as server:
        m = scrape(server.port)
    dropped = {labels: v for (name, labels), v in m.items() if name == "magnetar_dht_dropped_total"}
    assert len(dropped) == MAX_LABELS
    assert sum(dropped.values()) == 1000


def test_close_stops_the_endpoint() -> None:
    server = start_metrics_server("127.0.0.1", 0, dict, process_metrics=False)
    port = server.port
    scrape(port)
    server.close()
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        scrape(port)


def test_snapshot_on_loop_runs_on_the_loop_thread() -> None:
    async def main() -> tuple[int, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
        loop = asyncio.get_running_loop()
        seen: list[int] = []

        def snapshot() -> Mapping[str, object]:
            seen.append(threading.get_ident())
            return {"nodes": 42}

        with start_metrics_server(
            "127.0.0.1", 0, snapshot_on_loop(loop, snapshot), process_metrics=False
        ) as server:
            m = await asyncio.to_thread(scrape, server.port)
        assert seen == [threading.get_ident()]
        return len(seen), m

    n, m = asyncio.run(main())
    assert n == 1
    assert m[("magnetar_dht_routing_nodes", ())] == 42


def test_snapshot_on_a_stuck_loop_times_out() -> None:
    loop = asyncio.new_event_loop()  # never run: the call can never happen
    try:
        wrapped = snapshot_on_loop(loop, dict, timeout=0.1)
        with pytest.raises(TimeoutError):
            wrapped()
    finally:
        loop.close()


def test_import_does_not_load_prometheus_client() -> None:
    code = "import sys, dht.io.metrics; assert 'prometheus_client' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=30)
