"""``magnetar crawl`` as a user runs it: subprocesses on a loopback testnet, exit codes, export.

``magnet.cli.app`` mounts ``crawl_app``; these tests mount it the same way in a one-line launcher
so that they do not depend on it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli import Background

LAUNCHER = (
    "from magnet.cli.app import app; from magnet.cli.crawl import crawl_app; "
    "app.add_typer(crawl_app, name='crawl'); app()"
)


def crawl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LAUNCHER, "crawl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def testnet() -> Iterator[str]:
    bg = Background("testnet", "--nodes", "10", "--duration", "120")
    try:
        yield json.loads(bg.first_line())["bootstrap"][0]
    finally:
        bg.stop()


@pytest.mark.slow
def test_crawl_then_export(testnet: str, tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    out = crawl(
        "--db", str(db), "--host", "127.0.0.1", "--port", "0", "-b", testnet,
        "--duration", "2.5", "--stats-interval", "1", "--json", "--ids", "2",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) >= 2 and lines[-1]["done"] is True
    assert lines[-1]["nodes_met"] >= 10 and lines[-1]["answering"] in (1.0, None)
    assert {"new_per_min", "bep51", "errors", "refused_addresses"} <= set(lines[0])
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM nodes WHERE bep51 = 1").fetchone()[0] >= 10
    conn.execute(
        "INSERT INTO info_hashes VALUES (?, 1.0, 2.0, 1, 'sample', '127.0.0.1', 1, NULL, NULL,"
        " NULL)",
        (b"\x11" * 20,),
    )
    conn.commit()
    conn.close()
    exported = crawl("--db", str(db), "export", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    (record,) = [json.loads(line) for line in exported.stdout.splitlines()]
    assert record["info_hash"] == "11" * 20 and record["node"] == "127.0.0.1:1"
    csv_path = tmp_path / "out.csv"
    exported = crawl("--db", str(db), "export", "-f", "csv", "-o", str(csv_path))
    assert exported.returncode == 0 and csv_path.read_text().startswith("info_hash,")


@pytest.mark.slow
def test_exit_codes(tmp_path: Path) -> None:
    db = str(tmp_path / "c.sqlite")
    bad = crawl("--db", db, "-b", "nohostport", "--duration", "1")
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr
    assert crawl("--db", str(tmp_path / "none.sqlite"), "export").returncode == 2
    assert crawl("--db", db, "export", "--format", "xml").returncode == 2
    assert crawl("--db", str(tmp_path / "no" / "dir.sqlite"), "--duration", "1").returncode == 2
    nobody = crawl(
        "--db", db, "--host", "127.0.0.1", "--port", "0", "-b", "127.0.0.1:9",
        "--startup-timeout", "1", "--duration", "10",
    )  # fmt: skip
    assert nobody.returncode == 1 and "no DHT node answered" in nobody.stderr
    assert nobody.stderr.count("\n") == 1 and "Traceback" not in nobody.stderr


def test_help_has_examples() -> None:
    out = crawl("--help")
    assert out.returncode == 0 and "Examples" in out.stdout and "export" in out.stdout
