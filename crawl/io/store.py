"""The crawl's SQLite database: what was found, where, and what it is.

Writes are batched: sightings are gathered in memory (one entry per info-hash or node, so a
hash seen a thousand times in a batch is one row write) and committed together every
``flush_s`` seconds or ``batch_size`` entries, whichever comes first. A crash loses at most
the batch not yet committed. The database is in WAL mode, so other processes (``sqlite3``,
``magnetar crawl export``) can read it while the crawl writes.

Schema (version 1). Times are Unix seconds (REAL); ids and info-hashes are raw BLOBs (20
bytes); addresses are text IP plus an integer port.

``info_hashes``: one row per info-hash ever found.
    info_hash BLOB PRIMARY KEY; first_seen, last_seen REAL; seen_count INTEGER (sightings);
    how TEXT, how it was first found: 'sample' (BEP 51 sample_infohashes answer),
    'get_peers' or 'announce_peer' (a query some node sent to one of our nodes);
    node_ip TEXT, node_port INTEGER, node_id BLOB: the node that sampled it or sent the
    query (node_id NULL for queries: a querier's id is not kept);
    peer_ip TEXT, peer_port INTEGER: for 'announce_peer', the announced peer.
    Indexes: first_seen ("what is new since T"), last_seen, (node_ip, node_port).
``announces``: every (info-hash, peer) announced to us.
    info_hash, peer_ip, peer_port (PRIMARY KEY), first_seen, last_seen, count.
``nodes``: every node the crawl heard an answer from.
    ip, port (PRIMARY KEY), node_id BLOB, first_seen, last_seen (last answer);
    bep51 INTEGER (NULL unknown, 1 supports sample_infohashes, 0 does not);
    num, interval INTEGER (its last BEP 51 answer); samples (received, with repeats),
    new_hashes (info-hashes first found through it), queries, replies INTEGER.
    Index: bep51.
``metadata``: one row per resolved info-hash (BEP 9).
    info_hash BLOB PRIMARY KEY, name TEXT, total_size INTEGER, file_count INTEGER,
    piece_length INTEGER, resolved_at REAL, peer TEXT ('ip:port' it came from).
    Indexes: name, total_size.
``files``: the files of each resolved torrent, in torrent order (padding files left out).
    info_hash BLOB, idx INTEGER (PRIMARY KEY together), path TEXT ('/'-joined), length.
``metadata_failures``: info_hash BLOB PRIMARY KEY, attempts INTEGER, last_try REAL,
    reason TEXT.
``scrapes``: with ``--scrape``, one row per scraped info-hash (BEP 33, the latest scrape).
    info_hash BLOB PRIMARY KEY, seeds REAL, peers REAL (estimates from the union of the
    closest nodes' bloom filters), nodes INTEGER (nodes that answered), scraped_at REAL.
``meta``: key TEXT PRIMARY KEY, value TEXT (``schema_version``).

Example: ``SELECT lower(hex(info_hash)), name, total_size FROM info_hashes JOIN metadata
USING (info_hash) WHERE first_seen > strftime('%s','now','-1 hour') ORDER BY total_size
DESC``.

Everything stored came from strangers, so it is made safe where it enters: integers are
clamped to what SQLite stores (signed 64 bits; one answer with ``num`` = 2**64 once failed a
whole batch), and CSV cells that a spreadsheet would run as a formula get a leading ``'``.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from dht.addresses import format_hostport

__all__ = ["SCHEMA_VERSION", "CrawlStore", "export", "iter_records"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS info_hashes (
    info_hash BLOB PRIMARY KEY,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    seen_count INTEGER NOT NULL,
    how TEXT NOT NULL,
    node_ip TEXT,
    node_port INTEGER,
    node_id BLOB,
    peer_ip TEXT,
    peer_port INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scrapes (
    info_hash BLOB PRIMARY KEY,
    seeds REAL NOT NULL,
    peers REAL NOT NULL,
    nodes INTEGER NOT NULL,
    scraped_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS info_hashes_first_seen ON info_hashes (first_seen);
CREATE INDEX IF NOT EXISTS info_hashes_last_seen ON info_hashes (last_seen);
CREATE INDEX IF NOT EXISTS info_hashes_node ON info_hashes (node_ip, node_port);
CREATE TABLE IF NOT EXISTS announces (
    info_hash BLOB NOT NULL,
    peer_ip TEXT NOT NULL,
    peer_port INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (info_hash, peer_ip, peer_port)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (
    ip TEXT NOT NULL,
    port INTEGER NOT NULL,
    node_id BLOB,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    bep51 INTEGER,
    num INTEGER,
    interval INTEGER,
    samples INTEGER NOT NULL DEFAULT 0,
    new_hashes INTEGER NOT NULL DEFAULT 0,
    queries INTEGER NOT NULL DEFAULT 0,
    replies INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (ip, port)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nodes_bep51 ON nodes (bep51);
CREATE TABLE IF NOT EXISTS metadata (
    info_hash BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    total_size INTEGER NOT NULL,
    file_count INTEGER NOT NULL,
    piece_length INTEGER NOT NULL,
    resolved_at REAL NOT NULL,
    peer TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metadata_name ON metadata (name);
CREATE INDEX IF NOT EXISTS metadata_total_size ON metadata (total_size);
CREATE TABLE IF NOT EXISTS files (
    info_hash BLOB NOT NULL,
    idx INTEGER NOT NULL,
    path TEXT NOT NULL,
    length INTEGER NOT NULL,
    PRIMARY KEY (info_hash, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metadata_failures (
    info_hash BLOB PRIMARY KEY,
    attempts INTEGER NOT NULL,
    last_try REAL NOT NULL,
    reason TEXT NOT NULL
) WITHOUT ROWID;
"""

Addr = tuple[str, int]

# SQLite's INTEGER is signed 64-bit; a bigger Python int fails the whole batch's insert.
SQLITE_INT_MIN = -(1 << 63)
SQLITE_INT_MAX = (1 << 63) - 1


def clamp_int(value: int | None) -> int | None:
    """``value`` within what SQLite stores (None stays None): counts from the network."""
    if value is None:
        return None
    return min(max(int(value), SQLITE_INT_MIN), SQLITE_INT_MAX)


def _port(addr: Addr | None) -> int | None:
    return clamp_int(addr[1]) if addr else None


@dataclass(slots=True)
class _Sighting:
    first: float
    last: float
    count: int
    how: str
    node: Addr | None
    node_id: bytes | None
    peer: Addr | None


@dataclass(slots=True)
class NodeRow:
    """A node's numbers as the scheduler keeps them (cumulative, so the latest wins)."""

    addr: Addr
    node_id: bytes | None
    first_seen: float
    last_seen: float
    bep51: bool | None
    num: int | None
    interval: int | None
    samples: int
    new_hashes: int
    queries: int
    replies: int


@dataclass(frozen=True, slots=True)
class FileRow:
    path: str
    length: int


class CrawlStore:
    """Batched writes to the crawl database; ``record_hash`` says whether a hash is new.

    ``cache_size`` bounds the in-memory set of known info-hashes; a hash not in it is looked
    up in the database (one indexed read), so the bound costs reads, never correctness.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int = 1000,
        flush_s: float = 1.0,
        cache_size: int = 200_000,
    ) -> None:
        self.path = str(path)
        self.batch_size = batch_size
        self.flush_s = flush_s
        self.cache_size = cache_size
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self.db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {row[0]}, expected {SCHEMA_VERSION}")
            (self.known_at_start,) = self.db.execute("SELECT count(*) FROM info_hashes").fetchone()
        except BaseException:
            self.db.close()
            raise
        self._known: OrderedDict[bytes, None] = OrderedDict()
        self._hashes: dict[bytes, _Sighting] = {}
        self._announces: dict[tuple[bytes, Addr], list[float]] = {}
        self._nodes: dict[Addr, NodeRow] = {}
        self._metadata: list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]] = []
        self._failures: dict[bytes, tuple[float, str]] = {}
        self._scrapes: dict[bytes, tuple[float, float, int, float]] = {}
        self._last_flush: float | None = None
        self.new_hashes = 0  # info-hashes this run found first
        self.batches = 0

    # --- recording ---------------------------------------------------------------------------

    def _is_known(self, info_hash: bytes) -> bool:
        known = self._known
        if info_hash in known:
            known.move_to_end(info_hash)
            return True
        if info_hash in self._hashes:
            return True
        row = self.db.execute(
            "SELECT 1 FROM info_hashes WHERE info_hash = ?", (info_hash,)
        ).fetchone()
        if row is not None:
            self._remember(info_hash)
            return True
        return False

    def _remember(self, info_hash: bytes) -> None:
        known = self._known
        known[info_hash] = None
        if len(known) > self.cache_size:
            known.popitem(last=False)

    def record_hash(
        self,
        info_hash: bytes,
        wall: float,
        how: str,
        node: Addr | None,
        node_id: bytes | None = None,
        peer: Addr | None = None,
    ) -> bool:
        """One sighting. Returns True when the crawl had never seen ``info_hash`` before."""
        pending = self._hashes.get(info_hash)
        if pending is not None:
            pending.last = wall
            pending.count += 1
            new = False
        else:
            new = not self._is_known(info_hash)
            self._hashes[info_hash] = _Sighting(wall, wall, 1, how, node, node_id, peer)
            if new:
                self.new_hashes += 1
        if peer is not None:
            key = (info_hash, peer)
            seen = self._announces.get(key)
            if seen is None:
                self._announces[key] = [wall, wall, 1]
            else:
                seen[1] = wall
                seen[2] += 1
        return new

    def record_node(self, row: NodeRow) -> None:
        self._nodes[row.addr] = row

    def record_metadata(
        self,
        info_hash: bytes,
        *,
        name: str,
        total_size: int,
        piece_length: int,
        files: list[FileRow],
        wall: float,
        peer: Addr | None,
    ) -> None:
        peer_text = format_hostport(peer) if peer else None
        # Sizes come from a stranger's info dict (verified against the hash, not sane).
        row = (
            info_hash,
            name,
            clamp_int(total_size),
            len(files),
            clamp_int(piece_length),
            wall,
            peer_text,
        )
        file_rows = [(info_hash, i, f.path, clamp_int(f.length)) for i, f in enumerate(files)]
        self._metadata.append((row, file_rows))
        self._failures.pop(info_hash, None)

    def record_metadata_failure(self, info_hash: bytes, wall: float, reason: str) -> None:
        self._failures[info_hash] = (wall, reason)

    def record_scrape(
        self, info_hash: bytes, seeds: float, peers: float, nodes: int, wall: float
    ) -> None:
        self._scrapes[info_hash] = (seeds, peers, nodes, wall)

    @property
    def pending(self) -> int:
        return (
            len(self._hashes)
            + len(self._announces)
            + len(self._nodes)
            + len(self._metadata)
            + len(self._failures)
            + len(self._scrapes)
        )

    # --- flushing ----------------------------------------------------------------------------

    def maybe_flush(self, now: float) -> bool:
        """Flush when the batch is full or ``flush_s`` passed since the last flush."""
        if self._last_flush is None:
            self._last_flush = now
        if self.pending >= self.batch_size or (
            self.pending and now - self._last_flush >= self.flush_s
        ):
            self.flush()
            self._last_flush = now
            return True
        return False

    def flush(self) -> None:
        """Commit everything gathered, in one transaction."""
        if not self.pending:
            return
        db = self.db
        hashes, self._hashes = self._hashes, {}
        announces, self._announces = self._announces, {}
        nodes, self._nodes = self._nodes, {}
        metadata, self._metadata = self._metadata, []
        failures, self._failures = self._failures, {}
        scrapes, self._scrapes = self._scrapes, {}
        db.execute("BEGIN")
        try:
            db.executemany(
                """INSERT INTO info_hashes (info_hash, first_seen, last_seen, seen_count, how,
                       node_ip, node_port, node_id, peer_ip, peer_port)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (info_hash) DO UPDATE SET
                       last_seen = max(last_seen, excluded.last_seen),
                       seen_count = seen_count + excluded.seen_count""",
                [
                    (
                        ih,
                        s.first,
                        s.last,
                        clamp_int(s.count),
                        s.how,
                        s.node[0] if s.node else None,
                        _port(s.node),
                        s.node_id,
                        s.peer[0] if s.peer else None,
                        _port(s.peer),
                    )
                    for ih, s in hashes.items()
                ],
            )
            db.executemany(
                """INSERT INTO announces (info_hash, peer_ip, peer_port, first_seen, last_seen,
                       count) VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (info_hash, peer_ip, peer_port) DO UPDATE SET
                       last_seen = max(last_seen, excluded.last_seen),
                       count = count + excluded.count""",
                [
                    (ih, p[0], _port(p), v[0], v[1], clamp_int(int(v[2])))
                    for (ih, p), v in announces.items()
                ],
            )
            db.executemany(
                """INSERT INTO nodes (ip, port, node_id, first_seen, last_seen, bep51, num,
                       interval, samples, new_hashes, queries, replies)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (ip, port) DO UPDATE SET
                       node_id = excluded.node_id, last_seen = excluded.last_seen,
                       bep51 = coalesce(excluded.bep51, bep51),
                       num = coalesce(excluded.num, num),
                       interval = coalesce(excluded.interval, interval),
                       samples = max(samples, excluded.samples),
                       new_hashes = max(new_hashes, excluded.new_hashes),
                       queries = max(queries, excluded.queries),
                       replies = max(replies, excluded.replies)""",
                [
                    (
                        n.addr[0],
                        _port(n.addr),
                        n.node_id,
                        n.first_seen,
                        n.last_seen,
                        None if n.bep51 is None else int(n.bep51),
                        clamp_int(n.num),
                        clamp_int(n.interval),
                        clamp_int(n.samples),
                        clamp_int(n.new_hashes),
                        clamp_int(n.queries),
                        clamp_int(n.replies),
                    )
                    for n in nodes.values()
                ],
            )
            for row, file_rows in metadata:
                db.execute(
                    """INSERT OR REPLACE INTO metadata (info_hash, name, total_size, file_count,
                           piece_length, resolved_at, peer) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                    row,
                )
                db.execute("DELETE FROM files WHERE info_hash = ?", (row[0],))
                db.executemany(
                    "INSERT INTO files (info_hash, idx, path, length) VALUES (?, ?, ?, ?)",
                    file_rows,
                )
                db.execute("DELETE FROM metadata_failures WHERE info_hash = ?", (row[0],))
            db.executemany(
                """INSERT INTO metadata_failures (info_hash, attempts, last_try, reason)
                   VALUES (?, 1, ?, ?)
                   ON CONFLICT (info_hash) DO UPDATE SET attempts = attempts + 1,
                       last_try = excluded.last_try, reason = excluded.reason""",
                [(ih, wall, reason) for ih, (wall, reason) in failures.items()],
            )
            db.executemany(
                """INSERT OR REPLACE INTO scrapes (info_hash, seeds, peers, nodes, scraped_at)
                   VALUES (?, ?, ?, ?, ?)""",
                [(ih, *row) for ih, row in scrapes.items()],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        for ih in hashes:
            self._remember(ih)
        self.batches += 1

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.db.close()

    def __enter__(self) -> CrawlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- reading ---------------------------------------------------------------------------------

EXPORT_FIELDS = (
    "info_hash",
    "first_seen",
    "last_seen",
    "seen_count",
    "how",
    "node",
    "node_id",
    "peer",
    "name",
    "total_size",
    "file_count",
)


def iter_records(
    db_path: str | Path, *, since: float | None = None, with_files: bool = True
) -> Iterator[dict[str, Any]]:
    """Every info-hash as a plain record (metadata joined in), oldest first."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        rows = db.execute(
            """SELECT h.info_hash, h.first_seen, h.last_seen, h.seen_count, h.how, h.node_ip,
                      h.node_port, h.node_id, h.peer_ip, h.peer_port, m.name, m.total_size,
                      m.file_count
               FROM info_hashes h LEFT JOIN metadata m USING (info_hash)
               WHERE h.first_seen >= ? ORDER BY h.first_seen, h.info_hash""",
            (since if since is not None else float("-inf"),),
        )
        for r in rows:
            rec: dict[str, Any] = {
                "info_hash": r[0].hex(),
                "first_seen": r[1],
                "last_seen": r[2],
                "seen_count": r[3],
                "how": r[4],
                "node": _hostport(r[5], r[6]),
                "node_id": r[7].hex() if r[7] else None,
                "peer": _hostport(r[8], r[9]),
                "name": r[10],
                "total_size": r[11],
                "file_count": r[12],
            }
            if with_files and r[10] is not None:
                rec["files"] = [
                    {"path": p, "length": n}
                    for p, n in db.execute(
                        "SELECT path, length FROM files WHERE info_hash = ? ORDER BY idx",
                        (r[0],),
                    )
                ]
            yield rec
    finally:
        db.close()


def _hostport(ip: str | None, port: int | None) -> str | None:
    if ip is None or port is None:
        return None
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


# A spreadsheet opening the CSV runs a cell starting with one of these as a formula
# (CSV injection): names come from strangers' torrents, so such cells are quoted with "'".
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def export(db_path: str | Path, out: TextIO, fmt: str, *, since: float | None = None) -> int:
    """Write every info-hash as JSON lines (with files) or CSV (without). Returns the count.

    JSON lines are exact; CSV text cells that a spreadsheet would take for a formula start
    with an added ``'``."""
    count = 0
    if fmt == "jsonl":
        for rec in iter_records(db_path, since=since):
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            count += 1
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for rec in iter_records(db_path, since=since, with_files=False):
            writer.writerow({k: _csv_cell(v) for k, v in rec.items()})
            count += 1
    else:
        raise ValueError(f"unknown format {fmt!r} (jsonl or csv)")
    return count
