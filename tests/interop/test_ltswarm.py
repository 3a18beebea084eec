"""The libtorrent harness itself works: tables fill, seeds are found, magnets resolve."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.conftest import LIBTORRENT_MISSING

pytest.importorskip("libtorrent", reason=LIBTORRENT_MISSING)

import bencode2

from tests.interop.ltswarm import (
    LtNode,
    LtSwarm,
    TorrentKind,
    TorrentSpec,
    make_torrent,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

MakeTorrent = Callable[..., TorrentSpec]


def test_routing_tables_hold_every_other_node(lt_swarm: LtSwarm) -> None:
    addrs = lt_swarm.bootstrap_addrs()
    ids = {n.addr: n.node_id() for n in lt_swarm.nodes[:8]}
    assert len(set(addrs)) == len(addrs)
    assert len({ip for ip, _ in addrs}) == len(addrs), "one loopback address per node"
    assert len(set(ids.values())) == 8
    for node in lt_swarm.nodes[:8]:
        table = dict((addr, nid) for nid, addr in node.routing_table())
        others = {a: i for a, i in ids.items() if a != node.addr}
        assert table.items() >= others.items(), f"{node} misses nodes"


def test_get_peers_finds_the_seeder(lt_swarm: LtSwarm, make_lt_torrent: MakeTorrent) -> None:
    spec = make_lt_torrent("single")
    seeder = lt_swarm.seed(spec, 1)
    assert len([n for n in lt_swarm.announces_seen(spec.info_hash) if n is not seeder]) >= 3
    assert lt_swarm[5].get_peers(spec.info_hash, timeout=5) == {seeder.addr}


def test_announce_is_stored_and_found(lt_swarm: LtSwarm) -> None:
    ih = os.urandom(20)
    lt_swarm[2].announce(ih, 6881)
    peer = (lt_swarm[2].ip, 6881)
    lt_swarm.wait_announced(ih, min_nodes=3, timeout=5, peer=peer)
    assert peer in lt_swarm[6].get_peers(ih, timeout=5)


def test_unknown_info_hash_gives_no_peers_within_the_timeout(lt_swarm: LtSwarm) -> None:
    start = time.monotonic()
    assert lt_swarm[3].get_peers(os.urandom(20), timeout=0.5) == set()
    assert time.monotonic() - start < 1.5


@pytest.mark.parametrize("kind", ["single", "multi", "big"])
def test_libtorrent_client_resolves_a_seeded_magnet(
    lt_swarm: LtSwarm, lt_client: LtNode, make_lt_torrent: MakeTorrent, kind: TorrentKind
) -> None:
    spec = make_lt_torrent(kind)
    lt_swarm.seed(spec, 3)
    got = lt_client.resolve_magnet(spec.magnet, timeout=15)
    assert got.info == spec.info
    assert hashlib.sha1(got.info).digest() == spec.info_hash == got.info_hash
    assert got.elapsed < 5


def test_hybrid_torrent_resolves_by_its_v1_magnet(
    lt_swarm: LtSwarm, lt_client: LtNode, make_lt_torrent: MakeTorrent
) -> None:
    spec = make_lt_torrent("multi", version="hybrid")
    assert spec.info_hash_v2 is not None
    assert "urn:btmh:1220" in spec.magnet_full
    lt_swarm.seed(spec, 4)
    assert lt_client.resolve_magnet(spec.magnet, timeout=15).info == spec.info


def test_torrent_kinds(tmp_path: Path) -> None:
    single = make_torrent(tmp_path, "single")
    multi = make_torrent(tmp_path, "multi")
    big = make_torrent(tmp_path, "big")
    assert single.num_files == 1 and single.path.is_file()
    assert multi.num_files == 5 and multi.path.is_dir()
    assert len(big.info) > 1024 * 1024
    assert big.path.stat().st_blocks * 512 < 1024 * 1024, "the big torrent's data is sparse"
    for spec in (single, multi, big):
        assert spec.magnet == f"magnet:?xt=urn:btih:{spec.info_hash.hex()}"
        assert hashlib.sha1(spec.info).digest() == spec.info_hash
        torrent = bencode2.bdecode(spec.torrent)
        assert bencode2.bencode(torrent[b"info"]) == spec.info
        assert b"meta version" not in torrent[b"info"], "v1 only by default"
        assert spec.path == spec.save_path / spec.name
    again = make_torrent(tmp_path, "multi", seed=7)
    assert again.info_hash == make_torrent(tmp_path, "multi", seed=7).info_hash
    assert again.info_hash != multi.info_hash


def test_external_node_joins_every_routing_table(lt_swarm: LtSwarm) -> None:
    """A foreign DHT node given to add_external_node ends up in libtorrent's tables."""
    our_id = os.urandom(20)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.05)
        lt_swarm.add_external_node(sock.getsockname())
        nodes = lt_swarm.nodes
        pinged_by: set[str] = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not pinged_by >= {n.ip for n in nodes}:
            try:
                data, addr = sock.recvfrom(2048)
            except TimeoutError:
                continue
            msg = bencode2.bdecode(data)
            if msg.get(b"y") != b"q":
                continue
            pinged_by.add(addr[0])
            reply = {b"t": msg[b"t"], b"y": b"r", b"r": {b"id": our_id, b"nodes": b""}}
            sock.sendto(bencode2.bencode(reply), addr)
        assert pinged_by >= {n.ip for n in nodes}
        for node in nodes:
            assert our_id in {nid for nid, _ in node.routing_table()}, f"{node}"


def test_teardown_is_fast_and_frees_the_ports(tmp_path: Path) -> None:
    spec = make_torrent(tmp_path, "single")
    swarm = LtSwarm(4, first_ip="127.0.0.40")
    try:
        swarm.seed(spec, 0)
        swarm[2].resolve_magnet(spec.magnet, timeout=10, keep=True)
        swarm[1].get_peers(os.urandom(20), timeout=0.1)  # a lookup still in flight
        addrs = swarm.bootstrap_addrs()
    finally:
        spent = swarm.close()
    assert spent < 2.0
    assert all(n.closed for n in swarm)
    for addr in addrs:  # the sockets are gone: their ports can be bound again
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as s:
                if kind == socket.SOCK_STREAM:  # TIME_WAIT connections may hold the port
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(addr)
