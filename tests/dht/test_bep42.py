"""BEP 42 in the node: voting on our external address, secure ids, enforcement."""

import random

import bencode2

from dht.config import DhtConfig
from dht.events import ExternalAddressChanged
from dht.external_ip import ExternalIpVoter
from dht.ids import bep42_id, bep42_valid
from dht.protocol import DhtProtocol
from dht.wire import decode, pack_addr


def test_vote_needs_several_distinct_voters_and_a_majority() -> None:
    v = ExternalIpVoter(min_votes=3)
    assert v.vote("1.1.1.1", "9.9.9.9") is None
    assert v.vote("1.1.1.1", "9.9.9.9") is None  # same voter again: still one vote
    assert v.vote("2.2.2.2", "9.9.9.9") is None
    assert v.vote("3.3.3.3", "9.9.9.9") == "9.9.9.9"
    assert v.external_ip == "9.9.9.9"
    # a few liars do not move it
    for i in range(2):
        assert v.vote(f"4.4.4.{i}", "6.6.6.6") is None
    assert v.external_ip == "9.9.9.9"


def test_voters_are_bounded() -> None:
    v = ExternalIpVoter(max_voters=10)
    for i in range(1000):
        v.vote(f"5.{i // 250}.{i % 250}.5", "9.9.9.9")  # one /24 each: votes count per /24
    assert v.voters == 10


def answer_ping(
    p: DhtProtocol, responder: tuple[str, int], node_id: bytes, seen_as: tuple[str, int], now: float
) -> None:
    rid_addr = responder
    p.ping(rid_addr, now)
    ((data, _),) = [(d, a) for d, a in p.datagrams_to_send(now) if a == rid_addr]
    t = decode(data).t
    reply = bencode2.bencode(
        {b"ip": pack_addr(seen_as), b"r": {b"id": node_id}, b"t": t, b"y": b"r"}
    )
    p.receive_datagram(reply, responder, now + 0.01)


def test_secure_id_adopted_once_enough_nodes_agree() -> None:
    rng = random.Random(5)
    p = DhtProtocol(bytes(20), rng=rng, now=0.0, config=DhtConfig(secure_id=True))
    me = ("203.0.113.77", 6881)
    for i in range(6):
        ip = f"198.51.{i}.1"
        answer_ping(p, (ip, 6881), bep42_id(ip, rng), me, float(i))
    events = []
    while (ev := p.next_event()) is not None:
        events.append(ev)
    assert ExternalAddressChanged("203.0.113.77") in events
    assert bep42_valid(p.node_id, "203.0.113.77")
    assert p.node_id != bytes(20)
    assert len(p.routing) == 6  # the table survived the change of id
    assert p.status(10.0)["nodes"] == 6


def test_enforcement_keeps_non_conforming_nodes_out() -> None:
    rng = random.Random(6)
    cfg = DhtConfig(enforce_node_id=True, bep42_exempt_local=False)
    p = DhtProtocol(None, rng=rng, now=0.0, config=cfg)
    good_ip, bad_ip = "198.51.100.20", "198.51.100.21"
    answer_ping(p, (good_ip, 1), bep42_id(good_ip, rng), ("203.0.113.1", 1), 1.0)
    answer_ping(p, (bad_ip, 1), random.Random(1).randbytes(20), ("203.0.113.1", 1), 2.0)
    ids = {e.addr[0] for e in p.routing}
    assert ids == {good_ip}
    assert p.stats.dropped["non-conforming node id"] == 1


def test_loopback_is_exempt_by_default() -> None:
    p = DhtProtocol(None, rng=random.Random(1), now=0.0, config=DhtConfig(enforce_node_id=True))
    answer_ping(p, ("127.0.0.5", 1), random.Random(2).randbytes(20), ("127.0.0.1", 1), 1.0)
    assert len(p.routing) == 1
