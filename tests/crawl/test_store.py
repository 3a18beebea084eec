"""CrawlStore: new vs known, batching, crash safety, WAL readers, metadata, export."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

from crawl.io.store import CrawlStore, FileRow, NodeRow, export

H1, H2, H3 = b"\x01" * 20, b"\x02" * 20, b"\x03" * 20
NODE = ("1.2.3.4", 6881)


def count(path: Path, table: str = "info_hashes") -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        db.close()


def test_new_and_known_across_batches_runs_and_a_small_cache(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with CrawlStore(path, cache_size=1) as store:
        assert store.record_hash(H1, 10.0, "sample", NODE, b"\x09" * 20)
        assert not store.record_hash(H1, 11.0, "sample", NODE)  # same batch
        store.flush()
        assert store.record_hash(H2, 12.0, "get_peers", ("5.6.7.8", 1))
        store.flush()
        # H1 fell out of the one-entry cache: the database still knows it.
        assert not store.record_hash(H1, 13.0, "announce_peer", NODE, peer=("9.9.9.9", 80))
        assert store.new_hashes == 2
    with CrawlStore(path) as again:
        assert again.known_at_start == 2
        assert not again.record_hash(H2, 14.0, "sample", NODE)
        assert again.record_hash(H3, 14.0, "sample", NODE)
    db = sqlite3.connect(path)
    row = db.execute(
        "SELECT first_seen, last_seen, seen_count, how, node_ip, node_id FROM info_hashes"
        " WHERE info_hash = ?",
        (H1,),
    ).fetchone()
    assert row == (10.0, 13.0, 3, "sample", "1.2.3.4", b"\x09" * 20)  # first finder kept
    assert db.execute("SELECT peer_ip, peer_port, count FROM announces").fetchall() == [
        ("9.9.9.9", 80, 1)
    ]
    assert db.execute("SELECT count(*) FROM info_hashes").fetchone()[0] == 3
    db.close()


def test_batches_commit_together_and_a_crash_loses_only_the_last(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    store = CrawlStore(path, batch_size=3, flush_s=100.0)
    store.record_hash(H1, 1.0, "sample", NODE)
    assert not store.maybe_flush(0.0)
    store.record_hash(H2, 1.0, "sample", NODE)
    assert count(path) == 0  # nothing written until the batch is full
    store.record_node(
        NodeRow(NODE, b"\x07" * 20, 1.0, 2.0, True, 40, 60, 20, 2, 3, 3)
    )  # third entry: the batch is full
    assert store.maybe_flush(0.5)
    assert count(path) == 2 and count(path, "nodes") == 1
    store.record_hash(H3, 2.0, "sample", NODE)
    assert store.maybe_flush(101.0)  # flush_s passed
    store.record_hash(b"\x04" * 20, 3.0, "sample", NODE)
    store.db.close()  # a crash: the last batch is never committed
    assert count(path) == 3


def test_readers_see_committed_rows_while_the_writer_holds_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with CrawlStore(path) as store:
        reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        store.record_hash(H1, 1.0, "sample", NODE)
        store.flush()
        store.db.execute("BEGIN")  # the writer mid-transaction does not block readers
        store.db.execute("INSERT INTO meta VALUES ('x', 'y')")
        assert reader.execute("SELECT count(*) FROM info_hashes").fetchone()[0] == 1
        store.db.execute("ROLLBACK")
        reader.close()


def test_nodes_upsert_keeps_the_latest_numbers(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with CrawlStore(path) as store:
        store.record_node(NodeRow(NODE, b"\x07" * 20, 1.0, 2.0, None, None, None, 0, 0, 1, 1))
        store.flush()
        store.record_node(NodeRow(NODE, b"\x07" * 20, 1.0, 5.0, True, 40, 60, 20, 2, 3, 3))
        store.flush()
        store.record_node(NodeRow(NODE, b"\x07" * 20, 1.0, 9.0, None, None, None, 20, 2, 4, 3))
    db = sqlite3.connect(path)
    assert db.execute(
        "SELECT last_seen, bep51, num, interval, samples, new_hashes, queries, replies FROM nodes"
    ).fetchone() == (9.0, 1, 40, 60, 20, 2, 4, 3)
    db.close()


def test_metadata_files_failures_and_export(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with CrawlStore(path) as store:
        store.record_hash(H1, 1.0, "sample", NODE, b"\x07" * 20)
        store.record_hash(H2, 2.0, "announce_peer", ("5.6.7.8", 9), peer=("5.6.7.8", 80))
        store.record_hash(H3, 3.0, "get_peers", ("::1", 9))
        store.record_metadata_failure(H1, 4.0, "no peers")
        store.flush()
        store.record_metadata(
            H1,
            name="album",
            total_size=30,
            piece_length=16384,
            files=[FileRow("album/a.flac", 10), FileRow("album/b.flac", 20)],
            wall=5.0,
            peer=("5.6.7.8", 80),
        )
        store.record_metadata_failure(H2, 5.0, "timeout")
    db = sqlite3.connect(path)
    assert db.execute("SELECT name, total_size, file_count, peer FROM metadata").fetchall() == [
        ("album", 30, 2, "5.6.7.8:80")
    ]
    assert db.execute("SELECT info_hash, reason FROM metadata_failures").fetchall() == [
        (H2, "timeout")
    ]
    plan = " ".join(
        r[3]
        for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT info_hash FROM info_hashes WHERE first_seen > 1.5"
        )
    )
    assert "info_hashes_first_seen" in plan
    db.close()

    out = io.StringIO()
    assert export(path, out, "jsonl") == 3
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["info_hash"] for r in records] == [H1.hex(), H2.hex(), H3.hex()]
    assert records[0]["name"] == "album" and records[0]["node_id"] == "07" * 20
    assert records[0]["files"] == [
        {"path": "album/a.flac", "length": 10},
        {"path": "album/b.flac", "length": 20},
    ]
    assert records[1]["peer"] == "5.6.7.8:80" and records[1]["how"] == "announce_peer"
    assert records[2]["node"] == "[::1]:9" and "files" not in records[2]

    out = io.StringIO()
    assert export(path, out, "csv", since=2.0) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["info_hash"] for r in rows] == [H2.hex(), H3.hex()]
    assert rows[0]["name"] == "" and rows[0]["how"] == "announce_peer"
