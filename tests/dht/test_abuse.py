"""Limits against abuse in the core: address hygiene, rate limits, bounded storage."""

from __future__ import annotations

import random

import bencode2

from dht.addresses import AddressPolicy
from dht.config import DhtConfig
from dht.protocol import DhtProtocol
from dht.storage import PeerStore
from dht.wire import NodeContact, Query, Response, decode, encode_query, pack_nodes


def core(**cfg: object) -> DhtProtocol:
    config = DhtConfig()
    for k, v in cfg.items():
        setattr(config, k, v)
    return DhtProtocol(b"s" * 20, rng=random.Random(1), now=0.0, config=config)


def test_nodes_we_may_not_contact_are_never_sent_to() -> None:
    p = core(address_policy=AddressPolicy())  # a public node
    rid = p.find_node(b"t" * 20, 0.0, seeds=[("198.51.100.1", 6881)])
    ((data, dst),) = p.datagrams_to_send(0.0)
    q = decode(data)
    assert isinstance(q, Query)
    rng = random.Random(2)
    bogons = [
        ("10.0.0.1", 1),
        ("127.0.0.1", 2),
        ("192.168.1.1", 3),
        ("100.64.0.1", 4),
        ("224.0.0.1", 5),
        ("198.51.100.9", 0),
        ("0.1.2.3", 6),
    ]
    good = [("203.0.113.5", 7), ("8.8.8.8", 8)]
    nodes = [NodeContact(rng.randbytes(20), a) for a in bogons + good]
    reply = bencode2.bencode(
        {b"r": {b"id": b"r" * 20, b"nodes": pack_nodes(nodes)}, b"t": q.t, b"y": b"r"}
    )
    p.receive_datagram(reply, dst, 0.1)
    sent = {d for _, d in p.datagrams_to_send(0.1)}
    assert sent and sent <= set(good)
    for t in range(1, 20):
        p.handle_timer(float(t))
        assert {d for _, d in p.datagrams_to_send(float(t))} <= set(good) | {dst}
    del rid


def test_loopback_testnet_policy_allows_loopback() -> None:
    p = AddressPolicy.for_network("0.0.0.0", [("127.0.0.1", 6881)])
    assert p.acceptable(("127.0.0.9", 1)) and p.acceptable(("10.1.2.3", 1))
    assert not AddressPolicy.for_network("0.0.0.0", [("router.example", 6881)]).acceptable(
        ("127.0.0.9", 1)
    )


def ping_from(p: DhtProtocol, ip: str, now: float, t: bytes = b"aa") -> bool:
    p.receive_datagram(
        encode_query(t, b"ping", {b"id": b"c" * 20}, read_only=True), (ip, 1000), now
    )
    return any(isinstance(decode(d), Response) for d, _ in p.datagrams_to_send(now))


def test_per_source_rate_limit_spares_others_and_loopback() -> None:
    p = core(rate_per_ip=5.0, rate_burst=5.0)
    answered = sum(ping_from(p, "198.51.100.7", 1.0) for _ in range(50))
    assert answered == 5
    assert p.stats.dropped["rate limited"] == 45
    assert ping_from(p, "198.51.100.8", 1.0)  # another source is not starved
    assert all(ping_from(p, "127.0.0.5", 1.0) for _ in range(50))  # this host is exempt
    assert ping_from(p, "198.51.100.7", 3.0)  # the bucket refills


def test_answers_to_our_queries_are_never_rate_limited() -> None:
    p = core(rate_per_ip=1.0, rate_burst=1.0)
    ok = 0
    for i in range(20):
        rid = p.ping(("198.51.100.20", 1), float(i) * 0.001)
        ((data, _),) = p.datagrams_to_send(0.0)
        t = decode(data).t
        p.receive_datagram(
            bencode2.bencode({b"r": {b"id": b"x" * 20}, b"t": t, b"y": b"r"}),
            ("198.51.100.20", 1),
            0.0,
        )
        while (ev := p.next_event()) is not None:
            ok += getattr(ev, "request_id", None) == rid
    assert ok == 20


def test_global_query_rate() -> None:
    p = core(max_query_rate=10.0)
    answered = sum(ping_from(p, f"198.51.{i // 250}.{i % 250}", 1.0) for i in range(100))
    assert answered == 10


def test_outgoing_query_rate_paces_lookups() -> None:
    p = core(max_out_rate=10.0)
    p.routing.node_seen(b"n" * 20, ("198.51.100.1", 1), 0.0)
    for i in range(30):
        p.ping((f"198.51.100.{i + 2}", 1), 0.0)
    assert len(p.datagrams_to_send(0.0)) <= 3  # burst is a quarter second's worth
    assert p.stats.dropped["over the outgoing query rate"] >= 27


def test_peer_store_total_bound() -> None:
    store = PeerStore(max_hashes=1000, max_peers=100, max_total=250)
    for h in range(20):
        for i in range(30):
            store.add(bytes([h]) * 20, (f"198.{i + 1}.{h}.1", 1), 0.0)  # one /24 each
    assert store.peer_count <= 250
    assert bytes([19]) * 20 in store and bytes([0]) * 20 not in store
