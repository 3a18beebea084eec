"""The crawler's metadata workers against resolves that raise what nobody expected.

Each info-hash queued for metadata is an untrusted item: a resolve that raises anything
(a ``TorrentError`` from a peer's info dict, a plain ``ValueError``, a bug) once killed its
worker silently, and with every worker dead the queue stalled for the rest of the crawl.
Now the reason is recorded in ``metadata_failures`` and the worker takes the next one.
No socket is opened: the DHT lookup and the resolve are stand-ins.
"""

from __future__ import annotations

import asyncio
import sqlite3
import types
from pathlib import Path

import bencode2
import pytest

import magnet.io.resolve
from crawl.events import PeersLookedUp
from crawl.io.crawler import CrawlConfig, Crawler
from crawl.io.store import CrawlStore
from dht.wire import Addr
from magnet.torrentfile import TorrentError, parse_info

H_TORRENT, H_LOOKUP, H_VALUE, H_GOOD = (bytes([i]) * 20 for i in range(1, 5))
PEER: Addr = ("1.2.3.4", 6881)  # never dialled: the resolve is a stand-in
INFO = bencode2.bencode(
    {b"name": b"ok", b"piece length": 16384, b"pieces": b"\0" * 20, b"length": 5}
)


def test_one_failing_resolve_never_stops_the_metadata_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def find_peers(info_hash: bytes, timeout: float) -> PeersLookedUp:
        if info_hash == H_LOOKUP:
            raise RuntimeError("lookup blew up")
        return PeersLookedUp(1, info_hash, (PEER,), 1, 1)

    async def resolve(link: object, **options: object) -> object:
        btih = getattr(link, "btih", None)
        if btih == H_TORRENT:
            raise TorrentError("info dict has no pieces")
        if btih == H_VALUE:
            raise ValueError("integer too large")
        return types.SimpleNamespace(meta=parse_info(INFO), peer=PEER)

    monkeypatch.setattr(magnet.io.resolve, "resolve", resolve)

    async def main() -> Crawler:
        store = CrawlStore(tmp_path / "c.sqlite")
        crawler = Crawler(CrawlConfig(metadata=True, metadata_concurrency=1), store)
        monkeypatch.setattr(crawler, "_find_peers", find_peers)
        worker = asyncio.create_task(crawler._metadata_worker())
        try:
            for h in (H_TORRENT, H_LOOKUP, H_VALUE, H_GOOD):
                crawler._want_metadata(h, None)
            async with asyncio.timeout(10):  # the worker died at the first: this expired
                while crawler.metadata_ok + crawler.metadata_failed < 4:
                    await asyncio.sleep(0.01)
            assert not worker.done()
        finally:
            worker.cancel()
            store.close()
        return crawler

    crawler = asyncio.run(main())
    assert (crawler.metadata_ok, crawler.metadata_failed) == (1, 3)
    db = sqlite3.connect(tmp_path / "c.sqlite")
    try:
        reasons = dict(db.execute("SELECT info_hash, reason FROM metadata_failures"))
        assert db.execute("SELECT info_hash, name FROM metadata").fetchall() == [(H_GOOD, "ok")]
    finally:
        db.close()
    assert set(reasons) == {H_TORRENT, H_LOOKUP, H_VALUE}
    assert "TorrentError" in reasons[H_TORRENT] and "no pieces" in reasons[H_TORRENT]
    assert "lookup blew up" in reasons[H_LOOKUP]
    assert "ValueError" in reasons[H_VALUE]
