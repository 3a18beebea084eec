#!/usr/bin/env python3
"""The DHT core under attack: is a well-behaved client still served, and at what cost?

Each attack feeds one ``DhtProtocol`` (configured as ``magnetar node`` on a public address)
datagrams from forged sources on a virtual clock, in-process: nothing is sent anywhere.
Meanwhile an honest client pings and asks get_peers ``--client-rate`` times a second. For each
attack it prints the client's success rate, the node's CPU share (CPU seconds the core spent
per second of attack: above 100% it could not keep up on one core), the process RSS, and what
the attacker got (dropped datagrams, table entries). Last, the worst answer/query size ratio
over every query type against a loaded node.

    python scripts/bench_hostile.py
    python scripts/bench_hostile.py --seconds 5 --rate 5000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bencode2  # noqa: E402

from dht.addresses import AddressPolicy  # noqa: E402
from dht.config import DhtConfig  # noqa: E402
from dht.io.resources import rss_bytes  # noqa: E402
from dht.protocol import DhtProtocol  # noqa: E402
from dht.wire import Addr, Query, Response, decode, encode_query, encode_response  # noqa: E402

CLIENT: Addr = ("8.8.4.4", 6881)
ATTACKER: Addr = ("45.33.12.7", 4000)
Packet = tuple[bytes, Addr]


def make_core(seed: int) -> DhtProtocol:
    config = DhtConfig(
        rate_per_ip=50.0,
        rate_burst=200.0,
        max_query_rate=20_000.0,
        max_out_rate=500.0,
        address_policy=AddressPolicy.for_network("0.0.0.0", ()),
    )
    core = DhtProtocol(rng=random.Random(seed), now=0.0, config=config)
    rng = random.Random(seed + 1)
    for i in range(300):
        core.routing.node_seen(rng.randbytes(20), (f"{20 + i % 150}.{i // 150}.3.9", 6881), 0.0)
    for i in range(1000):
        core.storage.add(rng.randbytes(20), (f"{20 + i % 150}.{i // 150}.4.9", 6881), 0.0)
    return core


def spoofed(rng: random.Random) -> Addr:
    return (f"{rng.randint(11, 99)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.7", 1000)


def garbage_flood(rng: random.Random) -> Iterator[Packet]:
    """1400 bytes of nesting, half from one address, half from forged ones."""
    bomb = b"d1:a" + b"l" * 1396
    while True:
        yield bomb, ATTACKER
        yield bomb, spoofed(rng)


def query_flood(rng: random.Random) -> Iterator[Packet]:
    """get_peers with a key after ``y`` (it used to dodge the limits), from one address."""
    while True:
        msg = {
            b"a": {b"id": rng.randbytes(20), b"info_hash": rng.randbytes(20)},
            b"q": b"get_peers",
            b"t": rng.randbytes(2),
            b"y": b"q",
            b"z": 1,
        }
        yield bencode2.bencode(msg), ATTACKER


_sybil_ids: list[bytes] = [bytes(20)]  # the id the sybil claimed last


def sybil_inserts(rng: random.Random) -> Iterator[Packet]:
    """One host queries with a new id each time (and answers our pings, see ``respond``)."""
    while True:
        _sybil_ids[0] = node_id = rng.randbytes(20)
        yield encode_query(rng.randbytes(2), b"ping", {b"id": node_id}), ATTACKER


def sybil_respond(core: DhtProtocol, data: bytes, dst: Addr, now: float) -> None:
    """The sybil answers whatever we ask it, as the id it claimed last."""
    if dst[0] != ATTACKER[0]:
        return
    q = decode(data)
    if isinstance(q, Query):
        core.receive_datagram(encode_response(q.t, {b"id": _sybil_ids[0]}), dst, now)


ATTACKS: dict[str, Callable[[random.Random], Iterator[Packet]]] = {
    "garbage flood": garbage_flood,
    "query flood": query_flood,
    "sybil inserts": sybil_inserts,
}


def run_attack(name: str, seconds: float, rate: float, client_rate: float, seed: int) -> None:
    rng = random.Random(seed)
    core = make_core(seed)
    attack = ATTACKS[name](rng)
    respond = name == "sybil inserts"
    step = 1.0 / rate
    client_every = max(1, int(rate / client_rate))
    asked = answered = 0
    now = 1.0
    cpu = 0.0
    for i in range(int(seconds * rate)):
        now += step
        data, src = next(attack)
        client = i % client_every == 0
        if client:
            asked += 1
            method = b"ping" if asked % 2 else b"get_peers"
            args = {b"id": b"c" * 20} | ({} if method == b"ping" else {b"info_hash": b"h" * 20})
            tid = asked.to_bytes(4, "big")
            cq = encode_query(tid, method, args)
        start = time.process_time()
        core.receive_datagram(data, src, now)
        out = core.datagrams_to_send(now)
        if client:
            core.receive_datagram(cq, CLIENT, now)
            out += core.datagrams_to_send(now)
        if now >= (core.get_timer() or now + 1):
            core.handle_timer(now)
            out += core.datagrams_to_send(now)
        cpu += time.process_time() - start
        for d, dst in out:
            if client and dst == CLIENT:
                r = decode(d)
                answered += isinstance(r, Response) and r.t == tid
            elif respond:
                sybil_respond(core, d, dst, now)
    from_attacker = sum(1 for e in core.routing if e.addr[0] == ATTACKER[0])
    print(
        f"{name:>14}: client served {answered / max(1, asked):6.1%} of {asked}; "
        f"CPU share {cpu / seconds:6.1%}; RSS {rss_bytes() / 2**20:.0f} MiB; "
        f"attacker's table entries {from_attacker}/{len(core.routing)}; "
        f"dropped {dict(sorted(core.stats.dropped.items()))}"
    )


def worst_ratio(seed: int) -> tuple[float, str]:
    """The worst answer/query size ratio over every query type, against a loaded node."""
    v4 = make_core(seed)
    v6 = DhtProtocol(rng=random.Random(seed + 2), now=0.0, config=v4.config, family=6)
    v4.sibling, v6.sibling = v6, v4
    rng = random.Random(seed + 3)
    for i in range(300):
        v6.routing.node_seen(rng.randbytes(20), (f"2600:{i:x}::9", 6881), 0.0)
    for i in range(500):
        v4.storage.add(b"H" * 20, (f"{20 + i % 150}.{i // 150}.5.9", 6881), 0.0)
        v6.storage.add(b"H" * 20, (f"2600:{i:x}:1::9", 6881), 0.0)
    nid = b"q" * 20
    want = {b"want": [b"n4", b"n6"]}
    catalogue: list[tuple[bytes, dict[bytes, object]]] = [
        (b"ping", {b"id": nid}),
        (b"find_node", {b"id": nid, b"target": nid}),
        (b"find_node", {b"id": nid, b"target": nid, **want}),
        (b"get_peers", {b"id": nid, b"info_hash": b"H" * 20}),
        (b"get_peers", {b"id": nid, b"info_hash": b"H" * 20, **want}),
        (b"sample_infohashes", {b"id": nid, b"target": nid}),
        (b"sample_infohashes", {b"id": nid, b"target": nid, **want}),
        (b"announce_peer", {b"id": nid, b"info_hash": b"H" * 20, b"port": 1, b"token": b"x"}),
        (b"vote", {b"id": nid}),
    ]
    worst, which = 0.0, ""
    for core, src in ((v4, ("8.8.8.8", 53)), (v6, ("2001:4860::8888", 53))):
        for method, args in catalogue:
            q = encode_query(b"tt", method, args)
            core.receive_datagram(q, src, 5.0)
            for d, _ in core.datagrams_to_send(5.0):
                if len(d) / len(q) > worst:
                    worst = len(d) / len(q)
                    which = f"{method.decode()} over IPv{core.family}" + (
                        " with want" if b"want" in args else ""
                    )
    return worst, which


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="virtual seconds per attack")
    p.add_argument("--rate", type=float, default=5000.0, help="attack datagrams per second")
    p.add_argument("--client-rate", type=float, default=20.0, help="client queries per second")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    for name in ATTACKS:
        run_attack(name, args.seconds, args.rate, args.client_rate, args.seed)
    worst, which = worst_ratio(args.seed)
    print(f"worst answer/query size ratio: {worst:.2f} ({which})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
