"""magnet.resolve of v2 links over loopback sockets: piece layers fetched, skipped, missing;
and what ``magnetar resolve`` writes and exits with in each case."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path

import pytest

from magnet.io.resolve import resolve
from magnet.torrentfile import info_span, parse_torrent
from tests.magnet.fakepeers import serve_behaviour
from tests.magnet.test_resolution_layers import HashStaller, LayerSeed, layered, make_v2
from tests.magnet.test_resolve import run


def v2_link(info: bytes, peer: tuple[str, int]) -> str:
    v2 = hashlib.sha256(info).digest()
    return f"magnet:?xt=urn:btmh:1220{v2.hex()}&x.pe={peer[0]}:{peer[1]}"


def test_a_v2_link_gets_its_piece_layers_and_the_torrent_holds_them() -> None:
    async def main() -> None:
        info, layers = make_v2()
        server, peer, _ = await serve_behaviour(layered(LayerSeed, layers), info)
        try:
            result = await resolve(v2_link(info, peer), use_dht=False, timeout=20)
        finally:
            server.close()
        assert result.info == info
        assert result.piece_layers == layers
        assert result.layers_status == "fetched" and result.complete
        assert result.layer_peers == (peer,)
        phases = [p for p, _ in result.trace]
        assert phases[-2:] == ["metadata verified", "piece layers verified"]
        torrent = result.torrent(creation_date=1)
        assert torrent[info_span(torrent)] == info
        assert parse_torrent(torrent).piece_layers == layers

    run(main())


def test_without_piece_layers_a_v2_link_ends_at_the_metadata() -> None:
    async def main() -> None:
        info, layers = make_v2()
        server, peer, made = await serve_behaviour(layered(LayerSeed, layers), info)
        try:
            result = await resolve(v2_link(info, peer), use_dht=False, piece_layers=False)
        finally:
            server.close()
        assert result.piece_layers is None and result.layers_status == "skipped"
        assert result.complete
        assert all(not p.hash_requests for p in made)  # type: ignore[attr-defined]
        assert b"piece layers" not in result.torrent(creation_date=1)

    run(main())


@pytest.mark.slow
def test_layers_not_had_in_time_leave_the_verified_info_dict() -> None:
    async def main() -> None:
        info, layers = make_v2()
        server, peer, _ = await serve_behaviour(layered(HashStaller, layers), info)
        try:
            result = await resolve(v2_link(info, peer), use_dht=False, timeout=1.0)
        finally:
            server.close()
        assert result.info == info
        assert result.piece_layers is None
        assert result.layers_status == "missing" and not result.complete

    run(main())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("behaviour", "extra", "code", "status"),
    [
        (HashStaller, [], 3, "missing"),
        (HashStaller, ["--no-piece-layers"], 0, "skipped"),
        (LayerSeed, [], 0, "fetched"),
    ],
)
def test_cli_exit_code_says_whether_the_layers_are_in(
    tmp_path: Path, behaviour: type[LayerSeed], extra: list[str], code: int, status: str
) -> None:
    async def main() -> None:
        info, layers = make_v2()
        server, peer, _ = await serve_behaviour(layered(behaviour, layers), info)
        out = tmp_path / "out.torrent"
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "magnet",
                "resolve",
                v2_link(info, peer),
                "--no-dht",
                "--timeout",
                "1.5",
                "--json",
                "-o",
                str(out),
                *extra,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            server.close()
        assert proc.returncode == code, stderr.decode()
        record = json.loads(stdout)
        assert record["piece_layers"]["status"] == status
        assert record["complete"] is (status != "missing")
        data = out.read_bytes()
        assert data[info_span(data)] == info  # written in every case
        assert (parse_torrent(data).piece_layers == layers) is (status == "fetched")
        if status == "missing":
            assert b"piece layers" in stderr and b"could not all be fetched" in stderr

    run(main())
