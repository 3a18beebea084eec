"""BEP 44 under attack, over the wire: each defence of the item store against what it stops.

- A flood of puts with forged signatures costs an ed25519 check each (~0.1 ms): the per-IP
  admission limit bounds how many checks one source buys, and none of them stores anything.
- A get aimed at a spoofed victim brings back at most one item (~1.2 KB), never more.
- Puts carrying values over 1000 bytes, nested values, or salts over 64 bytes are refused
  before any signature is checked.
"""

from __future__ import annotations

import random
from typing import Any

import bencode2

from dht.config import DhtConfig
from dht.items import ERROR_BAD_SIGNATURE, immutable_item, mutable_item, put_arguments
from dht.protocol import DhtProtocol
from dht.wire import KrpcError, decode, encode_query

ATTACKER = ("203.0.113.9", 6881)
SEED = bytes(range(32))


def core(**cfg: Any) -> DhtProtocol:
    config = DhtConfig(**cfg)
    return DhtProtocol(b"s" * 20, rng=random.Random(1), now=0.0, config=config)


def send(c: DhtProtocol, method: bytes, args: dict[bytes, Any], now: float) -> list[bytes]:
    args = {**args, b"id": b"q" * 20}
    c.receive_datagram(encode_query(b"tx", method, args, read_only=True), ATTACKER, now)
    return [data for data, addr in c.datagrams_to_send(now) if addr == ATTACKER]


def test_a_forged_signature_flood_is_bounded_by_the_per_ip_limit(monkeypatch: Any) -> None:
    c = core(rate_per_ip=5.0, rate_burst=10.0)
    checks = 0
    import dht.items

    real_verify = dht.items.verify

    def counting_verify(*args: Any) -> bool:
        nonlocal checks
        checks += 1
        return real_verify(*args)

    monkeypatch.setattr(dht.items, "verify", counting_verify)
    item = mutable_item(SEED, b"honest", seq=1)
    token = c.tokens.issue(ATTACKER[0], 0.0, item.target)
    refused = 0
    for i in range(500):  # 500 puts within a tenth of a second
        args = put_arguments(item, token)
        args[b"sig"] = i.to_bytes(64, "big")
        for answer in send(c, b"put", args, i / 5000):
            msg = decode(answer)
            assert isinstance(msg, KrpcError) and msg.code == ERROR_BAD_SIGNATURE
            refused += 1
    assert refused == checks <= 11  # the burst, not the flood
    assert len(c.answers.items) == 0
    assert c.stats.dropped == {"rate limited": 500 - refused}


def test_oversized_and_deep_values_are_refused_before_any_signature_check(
    monkeypatch: Any,
) -> None:
    c = core()
    import dht.items

    def no_verify(*args: Any) -> bool:
        raise AssertionError("a signature was checked for a put that breaks the limits")

    monkeypatch.setattr(dht.items, "verify", no_verify)
    item = mutable_item(SEED, b"x", seq=1)
    token = c.tokens.issue(ATTACKER[0], 0.0, item.target)
    big = put_arguments(item, token)
    big[b"v"] = b"x" * 1200
    salty = put_arguments(item, token)
    salty[b"salt"] = b"s" * 100
    deep: Any = b"x"
    for _ in range(20):  # deeper than the wire's MAX_DEPTH: dropped as garbage
        deep = [deep]
    nested = put_arguments(item, token)
    nested[b"v"] = deep
    codes: list[int | None] = []
    for args in (big, salty, nested):
        codes.extend(getattr(decode(a), "code", None) for a in send(c, b"put", args, 0.0))
    assert codes == [205, 207]  # the nested one is not even answered
    assert c.stats.dropped.get("garbage") == 1


def test_a_get_toward_a_spoofed_victim_returns_one_item_at_most() -> None:
    c = core()
    item = immutable_item(b"y" * 995)
    assert c.answers.items.put(item, "192.0.2.1", 0.0) is None
    query = encode_query(b"tx", b"get", {b"id": b"q" * 20, b"target": item.target}, read_only=True)
    c.receive_datagram(query, ATTACKER, 0.0)
    [answer] = [d for d, a in c.datagrams_to_send(0.0) if a == ATTACKER]
    assert len(answer) < 1100 and len(answer) / len(query) < 14
    assert bencode2.bdecode(answer)[b"r"][b"v"] == b"y" * 995
