"""Hostile input on the resolving side: tracker bodies, broken torrents, one link's failure.

Each test is the attack; the defence is that the resolve ends with a one-line
``ResolveError`` (or a recorded tracker failure) and a batch of links always finishes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine
from typing import Any

import bencode2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magnet.io import bulk
from magnet.io.bulk import resolve_many
from magnet.io.resolve import ResolveError, resolve
from magnet.metadata import METADATA_PIECE
from magnet.trackers.http import parse_announce
from magnet.trackers.messages import TrackerError
from tests.magnet.fakepeers import Behaviour, Honest, make_info, serve_behaviour

pytestmark = pytest.mark.timeout(60)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 50))


@pytest.mark.parametrize(
    "body",
    [
        b"d8:intervali" + b"9" * 5000 + b"e5:peers0:e",  # past Python's int digit limit
        b"d8:completei" + b"1" * 4301 + b"e8:intervali60e5:peers0:e",
        b"l" * 1400,  # nesting that never closes
        b"d5:peers" + b"l" * 500 + b"e" * 500 + b"e",  # valid, but nested 500 deep
    ],
    ids=["huge-interval", "huge-complete", "unclosed-nesting", "deep-nesting"],
)
def test_tracker_bodies_that_break_decoders_are_tracker_errors(body: bytes) -> None:
    """A huge integer once raised a plain ValueError out of resolve()."""
    with pytest.raises(TrackerError):
        parse_announce(body)


def test_metadata_that_verifies_but_is_not_an_info_dict_is_a_resolve_error() -> None:
    """The hash matches, so every peer serves these bytes: a ResolveError, not a TorrentError
    traceback (which also killed bulk resolves and the crawler's metadata worker)."""
    info = bencode2.bencode({b"name": b"x", b"piece length": 16384})  # no pieces, no length
    h = hashlib.sha1(info).hexdigest()

    async def main() -> None:
        server, peer, _ = await serve_behaviour(Honest, info)
        try:
            link = f"magnet:?xt=urn:btih:{h}&x.pe={peer[0]}:{peer[1]}"
            with pytest.raises(ResolveError) as err:
                await resolve(link, use_dht=False, timeout=10)
            assert err.value.kind == "bad-metadata"
            assert "\n" not in err.value.reason
        finally:
            server.close()

    run(main())


def test_an_unexpected_error_in_one_link_does_not_stall_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each link has its own exception boundary: the batch reports it and finishes."""
    async def broken(link: str, **options: Any) -> Any:
        if "bad" in link:
            raise RuntimeError("boom")
        raise ResolveError("nothing found", "no-peers")

    monkeypatch.setattr(bulk, "resolve", broken)

    async def main() -> None:
        results = [r async for r in resolve_many(["bad", "good"], use_dht=False, timeout=1)]
        kinds = {link: getattr(r, "kind", None) for link, r in results}
        assert kinds == {"bad": "error", "good": "no-peers"}

    run(main())


class BigLiar(Behaviour):
    """Claims (and serves garbage of) a huge metadata size, a different one per instance."""

    claims = iter(range(1, 1000))

    def __init__(self, info: bytes) -> None:
        super().__init__(info)
        self.size = 30 * 1024 * 1024 + next(self.claims) * METADATA_PIECE

    def advertised_size(self) -> int:
        return self.size

    def piece(self, index: int) -> bytes | None:
        count = -(-self.size // METADATA_PIECE)
        if not 0 <= index < count:
            return None
        last = self.size - (count - 1) * METADATA_PIECE
        return bytes(METADATA_PIECE if index < count - 1 else last)


def test_rival_size_claims_share_one_memory_budget() -> None:
    """Four liars claiming ~30 MiB each once made a resolve hold ~128 MiB; now the sizes
    collected at once fit one budget, and the honest small torrent still resolves."""
    from tests.magnet.test_resolution import Swarm, addr, resolution

    info = make_info(3 * METADATA_PIECE)
    res = resolution(info, max_metadata_size=32 * 1024 * 1024)
    peers: dict[tuple[str, int], Behaviour] = {addr(i): BigLiar(info) for i in range(4)}
    peers[addr(9)] = Honest(info)
    swarm = Swarm(res, peers)
    res.add_peers(list(peers), "dht", 0.0)
    peak = 0
    swarm.pump()
    while swarm.result is None and swarm.now < 120:
        peak = max(peak, res.collecting_bytes)
        timer = res.get_timer()
        if timer is None:
            break
        swarm.now = max(swarm.now, timer)
        res.handle_timer(swarm.now)
        swarm.pump()
    peak = max(peak, res.collecting_bytes)
    assert swarm.result is not None and swarm.result.info == info
    assert peak <= res.metadata_budget


@settings(max_examples=100, deadline=None)
@given(
    depth=st.integers(min_value=17, max_value=3000),
    head=st.sampled_from([b"", b"d5:peers", b"d8:intervali60e5:peers"]),
    opener=st.sampled_from([b"l", b"d1:a"]),
    closed=st.booleans(),
)
def test_tracker_body_nesting_bombs_are_tracker_errors(
    depth: int, head: bytes, opener: bytes, closed: bool
) -> None:
    """Any nesting past the front door's bound, closed or not, is one TrackerError."""
    body = head + opener * depth + (b"e" * depth + (b"e" if head else b"") if closed else b"")
    with pytest.raises(TrackerError):
        parse_announce(body)
