"""The resolution scheduler, in memory: no sockets, explicit time."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

import pytest

from magnet.metadata import METADATA_PIECE
from magnet.resolution import Close, Connect, Resolution, Resolved, Send
from tests.magnet.fakepeers import (
    AbsurdSize,
    Behaviour,
    EncryptedOnly,
    Honest,
    Liar,
    OtherSize,
    Rejecter,
    Staller,
    info_hash,
    make_info,
)

Addr = tuple[str, int]


class Swarm:
    """Runs a Resolution against in-memory peers, advancing a fake clock."""

    def __init__(
        self,
        res: Resolution,
        peers: Mapping[Addr, Behaviour],
        refused: frozenset[Addr] = frozenset(),
    ) -> None:
        self.res = res
        self.peers = peers
        # The given peer object serves the first connection, a fresh one each later one:
        # a real peer keeps per-connection state.
        self.fresh: dict[Addr, list[Behaviour]] = {a: [p] for a, p in peers.items()}
        self.live: dict[Addr, Behaviour] = {}
        self.refused = refused
        self.now = 0.0
        self.connects: list[Addr] = []
        self.closes: dict[Addr, str] = {}
        self.result: Resolved | None = None

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            while (action := self.res.next_action()) is not None:
                moved = True
                if isinstance(action, Connect):
                    self.connects.append(action.addr)
                    if action.addr in self.refused:
                        self.res.connection_lost(action.addr, "connection refused", self.now)
                    else:
                        queue = self.fresh[action.addr]
                        first = self.peers[action.addr]
                        self.live[action.addr] = queue.pop() if queue else type(first)(first.info)
                        self.res.connection_made(action.addr, self.now)
                elif isinstance(action, Send):
                    peer = self.live.get(action.addr)
                    if peer is None or peer.closed:
                        continue
                    reply = peer.feed(action.data)
                    if reply:
                        self.res.data_received(action.addr, reply, self.now)
                    if peer.closed:  # it hung up on us
                        del self.live[action.addr]
                        self.res.connection_lost(action.addr, None, self.now)
                elif isinstance(action, Close):
                    self.closes[action.addr] = action.reason
                    self.live.pop(action.addr, None)
                elif isinstance(action, Resolved):
                    self.result = action

    def run(self, limit_s: float = 60.0) -> Resolved | None:
        self.pump()
        while self.result is None and self.now < limit_s:
            timer = self.res.get_timer()
            if timer is None:
                break
            self.now = max(self.now, timer)
            self.res.handle_timer(self.now)
            self.pump()
        return self.result


def resolution(info: bytes, **kw: object) -> Resolution:
    kw.setdefault("randbytes", random.Random(0).randbytes)
    return Resolution(info_hash(info), peer_id=os.urandom(20), **kw)  # type: ignore[arg-type]


def addr(i: int) -> Addr:
    return ("127.0.0.1", 7000 + i)


@pytest.mark.parametrize("size", [100, METADATA_PIECE, 5 * METADATA_PIECE + 7, 70 * METADATA_PIECE])
def test_honest_peer_delivers_verified_metadata(size: int) -> None:
    info = make_info(size)
    res = resolution(info)
    swarm = Swarm(res, {addr(0): Honest(info)})
    res.add_peers([addr(0)], "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.info == info and result.source == "dht"
    assert res.stats.metadata_bytes == len(info)


def test_large_metadata_is_spread_over_several_peers() -> None:
    info = make_info(40 * METADATA_PIECE)
    res = resolution(info, requests_per_peer=4)
    peers = {addr(i): Honest(info) for i in range(4)}
    swarm = Swarm(res, peers)
    res.add_peers(list(peers), "dht", 0.0)
    assert swarm.run() is not None
    served = [p.requests for p in peers.values()]
    assert sum(1 for n in served if n > 0) >= 3


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (Liar, "does not match"),
        (Rejecter, "rejected"),
        (Staller, "stalled"),
        (AbsurdSize, "absurd metadata size"),
    ],
)
def test_misbehaving_peer_is_dropped_and_honest_one_wins(bad: type[Behaviour], reason: str) -> None:
    info = make_info(3 * METADATA_PIECE)
    res = resolution(info, request_timeout=2.0)
    peers = {addr(0): bad(info), addr(1): Honest(info)}
    swarm = Swarm(res, peers)
    res.add_peers([addr(0)], "dht", 0.0)
    assert swarm.run() is None  # the bad peer alone: dropped, nothing resolved
    assert res.idle and addr(0) in swarm.closes
    res.add_peers([addr(1)], "dht", swarm.now)
    result = swarm.run()
    assert result is not None and result.info == info and result.peer == addr(1)
    assert any(reason in why for why in res.stats.failures or {})


def test_liar_alone_spoils_a_shared_round_then_is_caught() -> None:
    info = make_info(6 * METADATA_PIECE)
    res = resolution(info)
    peers = {addr(0): Liar(info), addr(1): Honest(info), addr(2): Honest(info)}
    swarm = Swarm(res, peers)
    res.add_peers(list(peers), "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.info == info


def test_peer_claiming_another_size_cannot_spoil_the_real_one() -> None:
    info = make_info(2 * METADATA_PIECE)
    res = resolution(info)
    peers = {addr(0): OtherSize(info), addr(1): Honest(info)}
    swarm = Swarm(res, peers)
    res.add_peers(list(peers), "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.info == info and result.peer == addr(1)


def test_unreachable_peers_are_counted_and_explained() -> None:
    info = make_info(100)
    res = resolution(info)
    swarm = Swarm(res, {}, refused=frozenset({addr(0), addr(1)}))
    res.add_peers([addr(0), addr(1)], "dht", 0.0)
    assert swarm.run() is None
    assert res.idle
    line = res.explain()
    assert "2 peers found, none could be connected" in line and "refused" in line


def test_all_rejecting_is_explained() -> None:
    info = make_info(100)
    res = resolution(info)
    swarm = Swarm(res, {addr(0): Rejecter(info)})
    res.add_peers([addr(0)], "dht", 0.0)
    assert swarm.run() is None
    assert "none delivered a verified copy" in res.explain()
    assert "rejected" in res.explain()


def test_connections_are_bounded_and_queue_drains() -> None:
    info = make_info(100)
    res = resolution(info, max_connections=3, connect_timeout=1.0)
    res.add_peers([addr(i) for i in range(10)], "dht", 0.0)
    connects = [a for a in iter(res.next_action, None) if isinstance(a, Connect)]
    assert len(connects) == 3
    res.handle_timer(1.0)  # all three time out; three more are tried
    actions = list(iter(res.next_action, None))
    assert sum(isinstance(a, Close) for a in actions) == 3
    assert sum(isinstance(a, Connect) for a in actions) == 3
    assert res.stats.failures is not None and res.stats.failures["connect timed out"] == 3


def test_known_peers_are_bounded_and_deduplicated() -> None:
    res = resolution(make_info(100), max_known=5)
    assert res.add_peers([addr(1), addr(1), addr(2)], "dht", 0.0) == 2
    assert res.add_peers([addr(i) for i in range(100)], "dht", 0.0) == 3
    assert res.stats.known == 5


def test_everything_else_is_closed_once_resolved() -> None:
    info = make_info(100)
    res = resolution(info)
    peers = {addr(0): Honest(info), addr(1): Staller(info)}
    swarm = Swarm(res, peers)
    res.add_peers(list(peers), "dht", 0.0)
    assert swarm.run() is not None
    assert res.active == 0
    assert addr(1) in swarm.closes


@pytest.mark.parametrize(
    ("policy", "peer", "ok"),
    [
        ("auto", Honest, True),
        ("auto", EncryptedOnly, True),  # plaintext first, redial encrypted when it hangs up
        ("prefer", EncryptedOnly, True),
        ("prefer", Honest, True),  # encrypted first, plaintext when MSE fails
        ("require", EncryptedOnly, True),
        ("require", Honest, False),
        ("off", EncryptedOnly, False),
        ("off", Honest, True),
    ],
)
def test_encryption_policies(policy: str, peer: type[Behaviour], ok: bool) -> None:
    info = make_info(2 * METADATA_PIECE)
    res = resolution(info, encryption=policy)
    swarm = Swarm(res, {addr(0): peer(info)})
    res.add_peers([addr(0)], "dht", 0.0)
    result = swarm.run()
    assert (result is not None and result.info == info) is ok
    if not ok:
        assert res.idle
