"""Hostile answers to the crawler: numbers past 64 bits, answers that break its bookkeeping.

The engine runs without sockets; the "node" crawled is this test, writing raw KRPC answers
(BEP 5, 51) to whatever the engine asks. Each crawled node's answer is an untrusted item:
whatever it breaks is counted and dropped, never raised out of the driver's loop.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import bencode2
import pytest

from crawl.engine import CrawlEngine
from crawl.events import NodeAnswered, SamplesReceived
from crawl.io.store import CrawlStore, NodeRow
from crawl.scheduler import SchedulerConfig
from dht.wire import Addr

NODE: Addr = ("1.2.3.4", 6881)  # only ever an address in memory: nothing is sent
OURS: Addr = ("127.0.0.1", 7000)
HASHES = [bytes([i]) * 20 for i in range(1, 4)]
SCHEDULE = SchedulerConfig(qps=1000, bandwidth=1e9, min_revisit_s=0.0)


def engine() -> CrawlEngine:
    e = CrawlEngine([b"\x10" * 20], rng=random.Random(1), now=0.0, schedule=SCHEDULE)
    e.set_local(OURS)
    e.add_seeds([NODE], 0.0)
    return e


def answer(e: CrawlEngine, now: float, **fields: Any) -> None:
    """Answer the engine's one query to NODE with ``fields`` in ``r``."""
    (sent,) = [(data, dst) for _, data, dst in e.datagrams_to_send(now) if dst == NODE]
    query = bencode2.bdecode(sent[0])
    assert query[b"q"] == b"sample_infohashes"
    r = {b"id": b"\x77" * 20, **{k.encode(): v for k, v in fields.items()}}
    e.receive_datagram(0, bencode2.bencode({b"t": query[b"t"], b"y": b"r", b"r": r}), NODE, now)


def node_rows(e: CrawlEngine) -> list[NodeAnswered]:
    rows = []
    while (ev := e.next_event()) is not None:
        if isinstance(ev, SamplesReceived):
            e.sampled_yield(ev.addr, len(ev.hashes), 0.1)
        elif isinstance(ev, NodeAnswered):
            rows.append(ev)
    return rows


@pytest.mark.parametrize("num", [2**64, 10**30])
def test_a_num_past_64_bits_reaches_the_database(tmp_path: Path, num: int) -> None:
    e = engine()
    answer(e, 0.1, samples=b"".join(HASHES), num=num, interval=2**70)
    (row,) = node_rows(e)
    assert row.num is not None and 0 <= row.num < 2**63
    assert row.interval == 21600  # BEP 51's longest
    path = tmp_path / "c.sqlite"
    with CrawlStore(path) as store:
        store.record_node(
            NodeRow(
                row.addr,
                row.node_id,
                1.0,
                2.0,
                row.bep51,
                row.num,
                row.interval,
                row.samples,
                row.new_hashes,
                row.queries,
                row.replies,
            )
        )
        store.flush()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT num FROM nodes").fetchone() == (row.num,)
    finally:
        db.close()


@pytest.mark.parametrize("num", [-5, b"many", [1]])
def test_a_num_that_is_not_a_count_is_unknown(num: object) -> None:
    e = engine()
    answer(e, 0.1, samples=b"".join(HASHES), num=num, interval=60)
    (row,) = node_rows(e)
    assert row.num is None


def test_an_answer_that_breaks_the_scheduler_is_dropped_and_the_crawl_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stands in for any bug a stranger's answer could trip: the engine must not raise."""
    e = engine()

    def broken(*args: object, **kwargs: object) -> list[bytes]:
        raise ValueError("a case nobody foresaw")

    monkeypatch.setattr(e.scheduler, "on_reply", broken)
    answer(e, 0.1, samples=b"".join(HASHES), num=3, interval=60)  # raised out of the engine
    assert e.dropped == 1
    assert e.last_dropped is not None and "a case nobody foresaw" in e.last_dropped
    assert e.snapshot()["dropped"] == 1
    assert e.scheduler.in_flight == 0  # its slot is free again
    assert e.stats.failures == {"bad-response": 1}
    monkeypatch.undo()
    # The node is tried again later and its next answer counts as usual.
    e.handle_timer(10.0)
    answer(e, 10.0, samples=b"".join(HASHES), num=3, interval=60)
    (row,) = node_rows(e)
    assert row.replies == 1 and row.samples == 3


def test_a_datagram_that_trips_the_dht_core_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    e = engine()

    def broken(data: bytes, addr: Addr, now: float) -> None:
        raise KeyError("state the datagram was never meant to reach")

    monkeypatch.setattr(e.cores[0], "receive_datagram", broken)
    e.receive_datagram(0, b"d1:y1:qe", NODE, 0.1)  # raised out of the driver's callback
    assert e.dropped == 1 and "KeyError" in (e.last_dropped or "")
