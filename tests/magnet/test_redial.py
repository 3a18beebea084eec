"""When the resolver sends its extension handshake, and whom it dials again: fake clock."""

from __future__ import annotations

import asyncio
import os

import pytest

from magnet.io.resolve import resolve
from magnet.metadata import METADATA_PIECE
from magnet.peerwire import HANDSHAKE_BYTES, NEED_DATA, HandshakeReceived
from magnet.resolution import REDIAL_BACKOFF_S, REDIALS, Connect
from tests.magnet.fakepeers import (
    Behaviour,
    EncryptedOnly,
    Honest,
    info_hash,
    make_info,
    serve_behaviour,
)
from tests.magnet.test_resolution import Swarm, addr, resolution


class PipelineBanner(Behaviour):
    """Like aria2 1.36: hangs up on (and bans) a peer whose handshake arrives with more
    bytes behind it in the same segment; answers its own handshake first."""

    def feed(self, data: bytes) -> bytes:
        if self.conn.remote_peer_id is None and len(data) > HANDSHAKE_BYTES:
            self.conn.receive_data(data[:HANDSHAKE_BYTES])
            assert isinstance(self.conn.next_event(), HandshakeReceived)
            self.closed = True
            return self.conn.send_handshake()
        return super().feed(data)


class MseBanner(EncryptedOnly, PipelineBanner):
    """The same behind MSE/PE (EncryptedOnly hands the decrypted bytes to PipelineBanner)."""


class HangsUpAfterHandshake(Behaviour):
    """Sends its handshake, then hangs up (a peer at its connection limit, a ban)."""

    def feed(self, data: bytes) -> bytes:
        self.conn.receive_data(data)
        while (ev := self.conn.next_event()) is not NEED_DATA:
            if isinstance(ev, HandshakeReceived):
                self.closed = True
                return self.conn.send_handshake()
        return b""


class BrokenMse(EncryptedOnly):
    """Encrypted only, and its MSE answer is garbage (no sync marker): the dialler's
    encryption handshake fails."""

    def feed(self, data: bytes) -> bytes:
        self.closed = True
        return os.urandom(96 + 700)


class Timed(Swarm):
    """A Swarm that records when each connection was dialled."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.dialled: list[float] = []

    def pump(self) -> None:
        before = len(self.connects)
        super().pump()
        self.dialled += [self.now] * (len(self.connects) - before)


def with_first(swarm: Swarm, peer: Behaviour, *later: Behaviour) -> None:
    """``peer`` serves the first connection to addr(0), then each of ``later`` in turn."""
    swarm.fresh[addr(0)] = [*reversed(later), peer]


def test_extension_handshake_waits_for_the_peers_handshake() -> None:
    info = make_info(100)
    res = resolution(info, encryption="off")
    res.add_peers([addr(0)], "dht", 0.0)
    assert isinstance(res.next_action(), Connect)
    res.connection_made(addr(0), 0.0)
    hello = res.next_action()
    assert hello is not None and len(hello.data) == HANDSHAKE_BYTES  # type: ignore[union-attr]
    assert res.next_action() is None
    seed = Honest(info)
    reply = seed.feed(hello.data)  # type: ignore[union-attr]
    res.data_received(addr(0), reply[:HANDSHAKE_BYTES], 0.0)
    ext = res.next_action()
    assert ext is not None and ext.data[4] == 20 and ext.data[5] == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("policy", ["auto", "prefer", "off", "require"])
def test_a_peer_that_bans_pipelined_extension_handshakes_serves_us(policy: str) -> None:
    info = make_info(2 * METADATA_PIECE)
    peer = PipelineBanner(info) if policy in ("auto", "off") else MseBanner(info)
    res = resolution(info, encryption=policy)
    swarm = Timed(res, {addr(0): peer})
    res.add_peers([addr(0)], "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.info == info
    assert swarm.dialled == [0.0]  # served on the first connection


def test_a_peer_that_hangs_up_after_its_handshake_is_redialled_after_back_off() -> None:
    info = make_info(100)
    res = resolution(info)
    swarm = Timed(res, {addr(0): HangsUpAfterHandshake(info)})
    with_first(swarm, HangsUpAfterHandshake(info), Honest(info))
    res.add_peers([addr(0)], "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.info == info
    # Same way of dialling (it spoke BitTorrent), one back-off later.
    assert swarm.dialled == [0.0, REDIAL_BACKOFF_S]
    assert res.stats.connected == 1 and res.stats.tried == 2


def test_a_failed_encrypted_handshake_is_redialled_with_back_off() -> None:
    """The reported symptom: the only peer failed one encrypted handshake, and the resolve
    sat idle for its whole timeout."""
    info = make_info(100)
    res = resolution(info, encryption="require")
    swarm = Timed(res, {addr(0): BrokenMse(info)})
    with_first(swarm, BrokenMse(info), EncryptedOnly(info))
    res.add_peers([addr(0)], "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.info == info
    assert swarm.dialled == [0.0, REDIAL_BACKOFF_S]


def test_auto_keeps_to_encryption_once_plaintext_was_refused() -> None:
    info = make_info(100)
    res = resolution(info)  # auto: plaintext first
    swarm = Timed(res, {addr(0): EncryptedOnly(info)})
    with_first(swarm, EncryptedOnly(info), BrokenMse(info), EncryptedOnly(info))
    res.add_peers([addr(0)], "dht", 0.0)
    result = swarm.run()
    assert result is not None
    # plaintext refused -> MSE at once -> MSE broke -> MSE again after the back-off
    assert swarm.dialled == [0.0, 0.0, REDIAL_BACKOFF_S]


def test_redials_are_bounded_and_back_off_doubles() -> None:
    info = make_info(100)
    res = resolution(info, encryption="require")
    swarm = Timed(res, {addr(0): BrokenMse(info)})
    with_first(swarm, *(BrokenMse(info) for _ in range(10)))
    res.add_peers([addr(0)], "dht", 0.0)
    assert swarm.run() is None
    expected = [0.0]
    for i in range(REDIALS):
        expected.append(expected[-1] + REDIAL_BACKOFF_S * 2**i)
    assert swarm.dialled == expected
    assert res.idle and res.get_timer() is None
    assert res.stats.failures is not None
    assert sum(res.stats.failures.values()) == 1  # one peer, one final reason


def test_a_waiting_peer_frees_its_slot_and_is_forgotten_once_resolved() -> None:
    info = make_info(100)
    res = resolution(info, encryption="off", max_connections=1)
    swarm = Timed(res, {addr(0): HangsUpAfterHandshake(info), addr(1): Honest(info)})
    res.add_peers([addr(0), addr(1)], "dht", 0.0)
    result = swarm.run()
    assert result is not None and result.peer == addr(1)
    assert swarm.dialled == [0.0, 0.0]  # addr(1) dialled while addr(0) waits
    assert res.get_timer() is None and res.idle


@pytest.mark.slow
def test_resolve_redials_a_peer_whose_encrypted_handshake_failed_once() -> None:
    """End to end over TCP: the only peer breaks its first MSE handshake."""

    class FailsOnce(EncryptedOnly):
        served = 0

        def feed(self, data: bytes) -> bytes:
            if FailsOnce.served == 0:
                FailsOnce.served += 1
                self.closed = True
                return os.urandom(96 + 700)
            return super().feed(data)

    async def main() -> None:
        info = make_info(3 * METADATA_PIECE)
        server, peer, made = await serve_behaviour(FailsOnce, info)
        try:
            link = f"magnet:?xt=urn:btih:{info_hash(info).hex()}&x.pe={peer[0]}:{peer[1]}"
            result = await resolve(link, use_dht=False, encryption="require", timeout=20)
            assert result.info == info
            assert len(made) == 2
        finally:
            server.close()

    asyncio.run(asyncio.wait_for(main(), 60))
