"""Hostile input into the crawl's database: integers past 64 bits, names that are formulas.

One ``sample_infohashes`` answer with ``num`` = 2**64, or a torrent claiming a file of 30
digits, once made the whole batch's insert raise ``OverflowError``, roll back and end the
crawl. Names come from strangers' torrents and once reached CSV cells raw.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from crawl.io.store import CrawlStore, FileRow, NodeRow, export

H1, H2 = b"\x01" * 20, b"\x02" * 20
NODE = ("1.2.3.4", 6881)
SQLITE_INT_MAX = 2**63 - 1  # what an SQLite INTEGER holds


def node_row(**numbers: int) -> NodeRow:
    values = {"num": 1, "interval": 60, "samples": 0, "new_hashes": 0, "queries": 1}
    values.update(numbers)
    return NodeRow(
        addr=NODE,
        node_id=b"\x07" * 20,
        first_seen=1.0,
        last_seen=2.0,
        bep51=True,
        num=values["num"],
        interval=values["interval"],
        samples=values["samples"],
        new_hashes=values["new_hashes"],
        queries=values["queries"],
        replies=1,
    )


@pytest.mark.parametrize("huge", [2**64, 10**30, -(2**70)])
def test_huge_numbers_are_clamped_and_the_batch_commits(tmp_path: Path, huge: int) -> None:
    path = tmp_path / "c.sqlite"
    with CrawlStore(path) as store:
        store.record_hash(H1, 1.0, "sample", NODE, b"\x07" * 20)
        store.record_node(node_row(num=huge, samples=huge))
        store.record_metadata(
            H1,
            name="big",
            total_size=huge,
            piece_length=huge,
            files=[FileRow("big/a", huge), FileRow("big/b", 5)],
            wall=3.0,
            peer=NODE,
        )
        store.flush()  # raised OverflowError and rolled everything back
        assert store.batches == 1
    db = sqlite3.connect(path)
    try:
        bound = SQLITE_INT_MAX if huge > 0 else -SQLITE_INT_MAX - 1
        assert db.execute("SELECT num, samples FROM nodes").fetchall() == [(bound, bound)]
        assert db.execute("SELECT total_size, piece_length FROM metadata").fetchall() == [
            (bound, bound)
        ]
        assert db.execute("SELECT length FROM files ORDER BY idx").fetchall() == [(bound,), (5,)]
        assert db.execute("SELECT count(*) FROM info_hashes").fetchone() == (1,)
    finally:
        db.close()


FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted_jsonl_stays_exact(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.sqlite"
    hashes = [bytes([i + 1]) * 20 for i in range(len(FORMULAS) + 1)]
    names = [*FORMULAS, "plain name"]
    with CrawlStore(path) as store:
        for i, (h, name) in enumerate(zip(hashes, names, strict=True)):
            store.record_hash(h, float(i), "sample", NODE)
            store.record_metadata(
                h, name=name, total_size=1, piece_length=16384, files=[], wall=1.0, peer=None
            )
    out = io.StringIO()
    assert export(path, out, "csv") == len(names)
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert [r["name"] for r in rows] == ["'" + n for n in FORMULAS] + ["plain name"]
    assert all(not r["info_hash"].startswith("'") for r in rows)

    out = io.StringIO()
    export(path, out, "jsonl")
    assert [json.loads(line)["name"] for line in out.getvalue().splitlines()] == names
