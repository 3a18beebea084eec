"""BEP 52 piece layers against libtorrent 2.1.1 on loopback, both ways.

``magnetar resolve`` of a v2 or hybrid magnet seeded by libtorrent writes a .torrent whose
``info`` and ``piece layers`` equal the original's byte for byte; libtorrent loads it (it
refuses a .torrent whose piece layers do not prove to their roots: a corrupted copy is
refused here, so loading is a check of its own) and, given the seed's data, checks every
piece as valid. ``--no-piece-layers`` writes the info dict alone. And a libtorrent client
that knows only the magnet, with ``magnetar serve`` as its only peer, ends with the
original piece layers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from magnet.torrentfile import build_torrent, info_span, parse_torrent
from tests.interop.magnetar_cli import resolve_ok

if TYPE_CHECKING:
    from tests.interop.ltswarm import LtSwarm, TorrentSpec

lt: Any = pytest.importorskip("libtorrent")

from tests.interop.ltlayers import (  # noqa: E402  (after the importorskip)
    lt_fetch_layers,
    make_layered,
    no_download_settings,
    piece_layers_value,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

VERSIONS = ["v2", "hybrid"]


@pytest.fixture(scope="module")
def layered(lt_workdir: Path) -> dict[str, TorrentSpec]:
    return {v: make_layered(lt_workdir, v, seed=15) for v in VERSIONS}  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def seeded(lt_swarm: LtSwarm, layered: dict[str, TorrentSpec]) -> dict[str, TorrentSpec]:
    for i, spec in enumerate(layered.values()):
        lt_swarm.seed(spec, node=3 + i)
    return layered


def magnetar_resolve(magnet: str, boot: tuple[str, int], out: Path, *extra: str) -> Any:
    return resolve_ok(magnet, out, *extra, boot=boot)


def original_layers(spec: TorrentSpec) -> bytes:
    value = piece_layers_value(spec.torrent)
    assert value.startswith(b"d")
    return value


def libtorrent_checks_all_pieces(torrent: bytes, save_path: Path, timeout: float = 60) -> bool:
    """A fresh session (no DHT, no peers) loads ``torrent`` over the data and rechecks."""
    ses = lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
        }
    )
    holder = [ses]
    try:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(torrent)
        params.save_path = str(save_path)
        handle = ses.add_torrent(params)
        deadline = time.monotonic() + timeout
        status = handle.status()
        while time.monotonic() < deadline:
            status = handle.status()
            if status.state in (status.seeding, status.finished) and status.num_pieces:
                break
            ses.wait_for_alert(50)
            ses.pop_alerts()
        pieces = params.ti.num_pieces()
        return bool(status.num_pieces == pieces and status.is_seeding)
    finally:
        ses.pause()
        closer = threading.Thread(target=holder.clear, daemon=True)
        closer.start()
        closer.join(10)


@pytest.mark.parametrize("version", VERSIONS)
def test_resolve_writes_the_original_info_and_piece_layers(
    lt_swarm: LtSwarm, seeded: dict[str, TorrentSpec], tmp_path: Path, version: str
) -> None:
    spec = seeded[version]
    out = tmp_path / "resolved.torrent"
    record = magnetar_resolve(spec.magnet_full, lt_swarm.bootstrap_addrs()[0], out)
    data = out.read_bytes()
    assert data[info_span(data)] == spec.info
    assert piece_layers_value(data) == original_layers(spec)
    layers = record["piece_layers"]
    assert record["complete"] is True
    assert layers["status"] == "fetched"
    assert layers["files"] == 3  # big, mid, four: the files over one piece
    assert layers["hashes"] == 514 + 4 + 4
    seeder = lt_swarm.nodes[3 + VERSIONS.index(version)]
    assert layers["peers"] == [f"{seeder.ip}:{seeder.port}"]
    phases = [t["phase"] for t in record["trace"]]
    assert phases.index("metadata verified") < phases.index("piece layers verified")
    # libtorrent takes it as its own: every piece of the seed's data checks against it.
    assert libtorrent_checks_all_pieces(data, spec.save_path)
    # ... and would not take it with one piece hash wrong (the control for the load).
    meta = parse_torrent(data)
    assert meta.piece_layers is not None
    root = max(meta.piece_layers, key=lambda r: len(meta.piece_layers[r]))  # type: ignore[index]
    forged = dict(meta.piece_layers)
    forged[root] = bytes(32) + forged[root][32:]
    with pytest.raises(RuntimeError, match="piece layer is invalid"):
        lt.torrent_info(build_torrent(spec.info, piece_layers=forged))


def test_without_piece_layers_the_info_dict_alone(
    lt_swarm: LtSwarm, seeded: dict[str, TorrentSpec], tmp_path: Path
) -> None:
    spec = seeded["v2"]
    out = tmp_path / "info-only.torrent"
    record = magnetar_resolve(
        spec.magnet_full, lt_swarm.bootstrap_addrs()[0], out, "--no-piece-layers"
    )
    data = out.read_bytes()
    assert data[info_span(data)] == spec.info
    assert piece_layers_value(data) == b""
    assert record["piece_layers"]["status"] == "skipped"


async def _serve_to_libtorrent(spec: TorrentSpec, client_ip: str) -> tuple[bytes, float]:
    from dht.io.node import Node
    from dht.io.testnet import Testnet
    from magnet.io.serve import serve_torrents
    from tests.interop.ltswarm import LtNode

    meta = parse_torrent(spec.torrent)
    assert meta.piece_layers
    async with (
        Testnet(4) as net,
        Node("127.0.0.1", 0, bootstrap_routers=net.bootstrap_addrs(2)) as node,
    ):
        await node.bootstrap()
        stop = asyncio.Event()
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(
            serve_torrents(
                [meta], node=node, host="127.0.0.1", stop=stop, ready=ready, use_trackers=False
            )
        )
        port = await ready

        def fetch() -> tuple[bytes, float]:
            # No DHT: the magnet and our server are all this client knows.
            with LtNode(client_ip, enable_dht=False, **no_download_settings()) as client:
                return lt_fetch_layers(client, spec.magnet_full, 30.0, peer=("127.0.0.1", port))

        try:
            return await asyncio.to_thread(fetch)
        finally:
            stop.set()
            await server


@pytest.mark.parametrize("version", VERSIONS)
def test_libtorrent_gets_the_piece_layers_from_magnetar_serve(
    layered: dict[str, TorrentSpec], version: str
) -> None:
    spec = layered[version]
    ip = "127.0.3.3" if version == "v2" else "127.0.3.4"
    torrent, _ = asyncio.run(asyncio.wait_for(_serve_to_libtorrent(spec, ip), 90))
    assert torrent[info_span(torrent)] == spec.info
    assert piece_layers_value(torrent) == original_layers(spec)
