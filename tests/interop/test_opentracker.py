"""magnet.io.trackers against a real tracker: Debian's opentracker on loopback (BEP 3/15/23/48).

Two peers announce the same torrent, over UDP and over HTTP, and each must see the other;
scrapes must count them; an unlisted torrent must be refused (opentracker runs with a
whitelist). Skipped, with the install command, when the opentracker binary is absent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import TypeVar

import pytest

from magnet.io.trackers import AnnounceEvent, AnnounceRequest, TrackerError, announce, scrape
from magnet.io.udp_tracker import UdpTracker
from tests.interop.opentracker import OpenTracker, find_opentracker

pytestmark = [
    pytest.mark.interop,
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        find_opentracker() is None,
        reason="opentracker not installed (apt-get install -y opentracker)",
    ),
]

T = TypeVar("T")
UDP_SWARM = bytes.fromhex("11" * 20)
HTTP_SWARM = bytes.fromhex("22" * 20)
MIXED_SWARM = bytes.fromhex("33" * 20)
REUSE_SWARM = bytes.fromhex("44" * 20)
SCRAPE_SWARM = bytes.fromhex("55" * 20)
UNLISTED = bytes.fromhex("66" * 20)
ALICE = b"-MG0001-alice0000000"
BOB = b"-MG0001-bob000000000"


def run(coro: Awaitable[T], timeout: float = 20.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@pytest.fixture(scope="module")
def tracker() -> Iterator[OpenTracker]:
    with OpenTracker([UDP_SWARM, HTTP_SWARM, MIXED_SWARM, REUSE_SWARM, SCRAPE_SWARM]) as running:
        yield running


async def two_peers(url_a: str, url_b: str, info_hash: bytes) -> None:
    """Alice then Bob announce, then Alice again: each must see the other."""
    a1 = await announce(url_a, info_hash, peer_id=ALICE, port=1111, timeout=5)
    b1 = await announce(url_b, info_hash, peer_id=BOB, port=2222, timeout=5)
    a2 = await announce(url_a, info_hash, peer_id=ALICE, port=1111, timeout=5)
    assert ("127.0.0.1", 1111) in b1.peers
    assert ("127.0.0.1", 2222) in a2.peers
    # opentracker lists the announcer too, and counts neither peer as a seed (left > 0).
    assert set(a2.peers) == {("127.0.0.1", 1111), ("127.0.0.1", 2222)}
    assert (a1.leechers, b1.leechers, a2.leechers) == (1, 2, 2)
    assert b1.seeders == 0 and b1.interval > 0


def test_two_peers_over_udp(tracker: OpenTracker) -> None:
    run(two_peers(tracker.udp_url, tracker.udp_url, UDP_SWARM))


def test_two_peers_over_http(tracker: OpenTracker) -> None:
    run(two_peers(tracker.http_url, tracker.http_url, HTTP_SWARM))


def test_udp_and_http_share_one_swarm(tracker: OpenTracker) -> None:
    run(two_peers(tracker.udp_url, tracker.http_url, MIXED_SWARM))


def test_scrape_over_both(tracker: OpenTracker) -> None:
    async def main() -> None:
        await two_peers(tracker.udp_url, tracker.http_url, SCRAPE_SWARM)
        for url in (tracker.udp_url, tracker.http_url):
            stats = await scrape(url, [SCRAPE_SWARM], timeout=5)
            assert stats[SCRAPE_SWARM].leechers == 2 and stats[SCRAPE_SWARM].seeders == 0

    run(main())


def test_stopped_peer_leaves_the_swarm(tracker: OpenTracker) -> None:
    async def main() -> None:
        info_hash = REUSE_SWARM
        await announce(tracker.http_url, info_hash, peer_id=ALICE, port=1111, timeout=5)
        await announce(
            tracker.udp_url,
            info_hash,
            peer_id=ALICE,
            port=1111,
            timeout=5,
            event=AnnounceEvent.STOPPED,
        )
        after = await announce(tracker.udp_url, info_hash, peer_id=BOB, port=2222, timeout=5)
        assert ("127.0.0.1", 1111) not in after.peers

    run(main())


def test_connection_id_is_reused(tracker: OpenTracker) -> None:
    async def main() -> None:
        async with await UdpTracker.open("127.0.0.1", tracker.port) as udp:
            for port in (3001, 3002, 3003):
                request = AnnounceRequest(REUSE_SWARM, ALICE, port, event=AnnounceEvent.NONE)
                answer = await udp.announce(request, timeout=5)
            assert ("127.0.0.1", 3003) in answer.peers
            assert udp.client.sent == {"connect": 1, "announce": 3}

    run(main())


def test_unlisted_torrent_is_refused(tracker: OpenTracker) -> None:
    async def main() -> None:
        with pytest.raises(TrackerError) as http_error:
            await announce(tracker.http_url, UNLISTED, peer_id=ALICE, port=1, timeout=5)
        assert http_error.value.reason == (
            "tracker said: Requested download is not authorized for use with this tracker."
        )
        # Over UDP opentracker stays silent for an unlisted torrent: our retries run out.
        with pytest.raises(TrackerError, match="timed out after"):
            await announce(
                tracker.udp_url,
                UNLISTED,
                peer_id=ALICE,
                port=1,
                timeout=2,
                retry_schedule=(0.2, 0.4),
            )

    run(main())
