"""Liars against the DHT core: tokens reused across swarms, one network stuffing the BEP 42 vote."""

from __future__ import annotations

import random

from dht.config import DhtConfig
from dht.external_ip import ExternalIpVoter
from dht.protocol import DhtProtocol
from dht.wire import KrpcError, Response, decode, encode_query

ASKER = ("198.51.100.7", 6881)
X = b"X" * 20
Y = b"Y" * 20


def ask(core: DhtProtocol, method: bytes, args: dict[bytes, object], now: float) -> object:
    core.receive_datagram(encode_query(b"tt", method, {b"id": b"q" * 20, **args}), ASKER, now)
    (answer,) = [m for d, _ in core.datagrams_to_send(now) if (m := decode(d)).t == b"tt"]
    return answer


def test_a_token_for_one_info_hash_cannot_announce_another() -> None:
    core = DhtProtocol(b"s" * 20, rng=random.Random(1), now=0.0, config=DhtConfig())
    r = ask(core, b"get_peers", {b"info_hash": X}, 1.0)
    assert isinstance(r, Response) and r.token is not None
    refused = ask(core, b"announce_peer", {b"info_hash": Y, b"port": 1, b"token": r.token}, 2.0)
    assert isinstance(refused, KrpcError) and refused.code == 203
    assert Y not in core.storage
    ok = ask(core, b"announce_peer", {b"info_hash": X, b"port": 1, b"token": r.token}, 2.0)
    assert isinstance(ok, Response)
    assert core.storage.get(X, 3.0, 10, random.Random(1)) == [(ASKER[0], 1)]


def test_one_network_cannot_outvote_the_rest() -> None:
    v = ExternalIpVoter(min_votes=3)
    for i in range(50):  # a /24 of liars
        assert v.vote(f"203.0.113.{i + 1}", "6.6.6.6") is None
    for i in range(50):  # and an IPv6 /64 of them
        assert v.vote(f"2001:db8:1:1::{i + 1:x}", "6.6.6.6") is None
    assert v.voters == 2
    v.vote("8.8.8.8", "9.9.9.9")
    v.vote("9.9.9.9", "9.9.9.9")
    assert v.vote("1.1.1.1", "9.9.9.9") == "9.9.9.9"
    assert v.tally() == {"6.6.6.6": 2, "9.9.9.9": 3}


def test_a_private_lab_network_votes_per_address() -> None:
    v = ExternalIpVoter(min_votes=3)
    assert v.vote("10.0.0.1", "10.9.9.9") is None
    assert v.vote("10.0.0.2", "10.9.9.9") is None
    assert v.vote("10.0.0.3", "10.9.9.9") == "10.9.9.9"
