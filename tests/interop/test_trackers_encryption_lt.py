"""Reaching every peer: trackers alongside the DHT, and encrypted peers (issue 7).

Real peers only: Debian's opentracker on loopback, libtorrent seeds and clients. Tests that
need opentracker skip with a message when it is not installed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from magnet.torrentfile import info_span
from tests.interop.magnetar_cli import resolve_ok

if TYPE_CHECKING:
    from tests.interop.ltswarm import LtNode, LtSwarm, TorrentSpec

pytestmark = pytest.mark.interop
NOWHERE = "127.0.0.1:9"  # a "DHT" that does not answer


def resolve(magnet: str, out: Path, *extra: str) -> dict[str, Any]:
    record = resolve_ok(magnet, out, *extra)
    data = out.read_bytes()
    record["info"] = data[info_span(data)]
    return record


@pytest.fixture
def seeder_off_dht(lt_workdir: Path) -> Iterator[LtNode]:
    """A libtorrent seed with no DHT at all: trackers are the only way to it."""
    from tests.interop.ltswarm import LtNode

    with LtNode("127.0.4.2", workdir=lt_workdir, enable_dht=False) as node:
        yield node


@pytest.mark.parametrize("scheme", ["udp", "http"])
def test_tracker_only_resolve_is_byte_exact(
    scheme: str,
    seeder_off_dht: LtNode,
    make_lt_torrent: Callable[..., TorrentSpec],
    tmp_path: Path,
) -> None:
    from tests.interop.opentracker import OpenTracker, find_opentracker

    if find_opentracker() is None:
        pytest.skip("opentracker not installed (apt-get install -y opentracker)")
    spec = make_lt_torrent("multi")
    with OpenTracker([spec.info_hash]) as tracker:
        url = tracker.udp_url if scheme == "udp" else tracker.http_url
        handle = seeder_off_dht.seed(spec)
        handle.add_tracker({"url": url})
        handle.force_reannounce()
        magnet = f"magnet:?xt=urn:btih:{spec.info_hash.hex()}&tr={url}"
        record: dict[str, Any] = {}
        for _ in range(30):  # until the seed's announce has reached the tracker
            try:
                record = resolve(magnet, tmp_path / "t.torrent", "-b", NOWHERE, "--timeout", "3")
                break
            except AssertionError:
                seeder_off_dht.pump(0.2)
        assert record, "never resolved through the tracker"
        assert record["info"] == spec.info
        assert record["source"] == f"tracker {url}"
        assert record["peer"] == f"{seeder_off_dht.ip}:{seeder_off_dht.port}"


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A UDP tracker address that swallows every packet (never answers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"udp://127.0.0.1:{sock.getsockname()[1]}/announce"


def test_dead_trackers_do_not_hold_up_a_dht_resolve(
    lt_swarm: LtSwarm, make_lt_torrent: Callable[..., TorrentSpec], tmp_path: Path, black_hole: str
) -> None:
    spec = make_lt_torrent("single")
    lt_swarm.seed(spec, node=5)
    dead = "udp://127.0.0.1:1/announce"
    magnet = f"magnet:?xt=urn:btih:{spec.info_hash.hex()}&tr={dead}&tr={black_hole}"
    boot = lt_swarm.bootstrap_addrs()[0]
    record = resolve(magnet, tmp_path / "d.torrent", "-b", f"{boot[0]}:{boot[1]}")
    assert record["info"] == spec.info and record["source"] == "dht"
    # The silent tracker had not answered when the metadata arrived: nothing waited for it.
    assert record["sources"][black_hole] == "pending"
    assert record["sources"][dead] in ("pending",) or "refused" in record["sources"][dead]


def test_encryption_only_libtorrent_seed(
    lt_swarm: LtSwarm, make_lt_torrent: Callable[..., TorrentSpec], tmp_path: Path
) -> None:
    import libtorrent as lt

    forced = int(lt.enc_policy.forced)
    seed = lt_swarm.add_node(
        in_enc_policy=forced, out_enc_policy=forced, allowed_enc_level=int(lt.enc_level.rc4)
    )
    spec = make_lt_torrent("multi")
    lt_swarm.seed(spec, node=seed)
    boot = lt_swarm.bootstrap_addrs()[0]
    for policy in ("auto", "require", "prefer"):
        record = resolve(
            spec.magnet,
            tmp_path / f"{policy}.torrent",
            "-b",
            f"{boot[0]}:{boot[1]}",
            "--encryption",
            policy,
        )
        assert record["info"] == spec.info
        assert record["peer"] == f"{seed.ip}:{seed.port}"


def test_libtorrent_forcing_encryption_resolves_from_magnetar_serve(
    make_lt_torrent: Callable[..., TorrentSpec],
) -> None:
    import libtorrent as lt

    from tests.interop.served import lt_resolves_from_serve

    spec = make_lt_torrent("single")
    forced = int(lt.enc_policy.forced)
    resolving = lt_resolves_from_serve(
        spec,
        "127.0.4.9",
        nodes=8,
        out_enc_policy=forced,
        in_enc_policy=forced,
        allowed_enc_level=int(lt.enc_level.rc4),
    )
    assert asyncio.run(asyncio.wait_for(resolving, 90)) == spec.info


def test_scrape_command_against_opentracker() -> None:
    import os

    from magnet.io.trackers import announce
    from tests.interop.opentracker import OpenTracker, find_opentracker

    if find_opentracker() is None:
        pytest.skip("opentracker not installed (apt-get install -y opentracker)")
    known, unknown = os.urandom(20), os.urandom(20)
    with OpenTracker([known]) as tracker:
        asyncio.run(
            announce(tracker.udp_url, known, peer_id=os.urandom(20), port=5000, timeout=5, left=0)
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "magnet",
                "scrape",
                tracker.udp_url,
                known.hex(),
                unknown.hex(),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    records = {r["info_hash"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert records[known.hex()]["seeders"] == 1
