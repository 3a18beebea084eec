"""scripts/krpc_load.py: the flood counts answers, and BEP 43 keeps its sources out of tables."""

from __future__ import annotations

import multiprocessing
import socket
from dataclasses import replace

import pytest

from scripts.krpc_load import (
    LoadConfig,
    parse_mix,
    run_load_in_process,
    run_trivial_responder,
    source_addresses,
)
from tests.interop.conftest import LIBTORRENT_MISSING

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


def test_source_addresses_are_distinct_loopback_hosts() -> None:
    addrs = source_addresses(600, "127.100.0.250")
    assert len(set(addrs)) == 600
    assert addrs[:6] == [
        "127.100.0.250",
        "127.100.0.251",
        "127.100.0.252",
        "127.100.0.253",
        "127.100.0.254",
        "127.100.1.1",
    ]
    with pytest.raises(ValueError, match="leave 127"):
        source_addresses(10, "127.255.255.250")


def test_parse_mix() -> None:
    assert parse_mix("ping:2,get_peers") == {"ping": 2.0, "get_peers": 1.0}
    with pytest.raises(ValueError, match="unknown method"):
        parse_mix("ping,announce_peer")


def test_flood_of_the_trivial_responder_is_fully_answered() -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.1.9", 0))
        addr = s.getsockname()
    proc = ctx.Process(target=run_trivial_responder, args=(*addr, ready), daemon=True)
    proc.start()
    try:
        assert ready.wait(20)
        cfg = LoadConfig(target=addr, seconds=0.5, warmup=0.2, sources=300, window=64)
        r = run_load_in_process(cfg)
    finally:
        proc.kill()
        proc.join(5)
    assert r.answered > 1000
    assert r.errors == r.unmatched == r.malformed == 0
    assert r.sources == 300
    assert set(r.per_method) == {"ping", "find_node", "get_peers"}
    assert min(r.per_method.values()) > r.answered // 4


def test_libtorrent_answers_the_flood_and_keeps_read_only_sources_out() -> None:
    pytest.importorskip("libtorrent", reason=LIBTORRENT_MISSING)
    from tests.interop.ltswarm import LOAD_TEST_SETTINGS, LtSwarm

    with LtSwarm(3, first_ip="127.0.0.50", **LOAD_TEST_SETTINGS) as swarm:
        target = swarm[0]
        cfg = LoadConfig(target=target.addr, seconds=0.5, warmup=0.2, sources=200, window=64)
        r = run_load_in_process(cfg)
        table = target.routing_table()
        buckets = target.buckets()
        # without ro: 1 the sources were heard of: 8 of them sat in the replacement cache
        noisy = run_load_in_process(replace(cfg, seconds=0.2, read_only=False))
        noisy_buckets = target.buckets()
    assert r.answered > 1000
    assert r.errors == r.unmatched == r.malformed == 0
    assert r.lost < r.sent // 20, "rate limits raised: libtorrent drops (almost) nothing"
    assert {ip for _, (ip, _) in table} == {"127.0.0.51", "127.0.0.52"}
    assert sum(live for live, _ in buckets) == 2
    assert sum(replacements for _, replacements in buckets) == 0
    assert noisy.answered > 0
    assert sum(replacements for _, replacements in noisy_buckets) > 0
