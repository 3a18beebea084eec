"""magnetar resolve against libtorrent seeds, and libtorrent resolving from magnetar serve."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from magnet.torrentfile import info_span
from tests.interop.magnetar_cli import resolve_ok

if TYPE_CHECKING:
    from tests.interop.ltswarm import LtSwarm, TorrentSpec

pytestmark = pytest.mark.interop


def magnetar_resolve(
    magnet: str, boot: tuple[str, int], out: Path, *extra: str
) -> dict[str, object]:
    return resolve_ok(magnet, out, *extra, boot=boot)


@pytest.mark.parametrize(
    ("kind", "version"),
    [("single", "v1"), ("multi", "v1"), ("big", "v1"), ("multi", "hybrid"), ("single", "v2")],
)
def test_resolve_from_libtorrent_seed_is_byte_identical(
    lt_swarm: LtSwarm,
    make_lt_torrent: Callable[..., TorrentSpec],
    tmp_path: Path,
    kind: str,
    version: str,
) -> None:
    spec = make_lt_torrent(kind, version=version)
    if kind == "big":
        assert len(spec.info) > 1024 * 1024
    seeder = lt_swarm.seed(spec, node=4)
    out = tmp_path / "resolved.torrent"
    # Only a bootstrap address and a bare magnet: no trackers, no x.pe.
    record = magnetar_resolve(spec.magnet, lt_swarm.bootstrap_addrs()[0], out)
    data = out.read_bytes()
    assert data[info_span(data)] == spec.info
    assert record["peer"] == f"{seeder.ip}:{seeder.port}"
    assert record["source"] == "dht"
    assert record["name"] == spec.name
    if version == "v1":  # libtorrent counts v2 padding files, which are not files to us
        assert len(record["files"]) == spec.num_files  # type: ignore[arg-type]


def test_libtorrent_resolves_what_magnetar_serves(
    make_lt_torrent: Callable[..., TorrentSpec],
) -> None:
    from tests.interop.served import lt_resolves_from_serve

    spec = make_lt_torrent("multi", version="hybrid")
    info = asyncio.run(asyncio.wait_for(lt_resolves_from_serve(spec, "127.0.3.2"), 90))
    assert info == spec.info
