"""Tracker clients: announce to and scrape a BitTorrent tracker given its URL.

`announce` and `scrape` pick the transport by scheme (checked by `magnet.trackers.urls`,
which also says how long each time guard waits): ``udp://`` speaks BEP 15 through
`magnet.trackers.udp` and `magnet.io.udp_tracker`; ``http://`` and ``https://`` speak BEP
3/7/23/48 through `magnet.trackers.http` and `magnet.io.http_tracker`. Every failure is a
`TrackerError` with a one-line reason. Transports are imported on first use, so importing
this module is cheap, and aiohttp is loaded only when an HTTP tracker is actually asked, in
a worker thread so that a DHT running on the same loop is not stalled for the 0.1-0.3 s the
import takes here.
"""

from __future__ import annotations

import asyncio
import importlib
import random
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from dht.wire import Addr
from magnet.trackers.messages import (
    MAX_PEERS,
    UNKNOWN_LEFT,
    AnnounceEvent,
    AnnounceRequest,
    AnnounceResult,
    ScrapeStats,
    TrackerError,
)
from magnet.trackers.urls import TrackerUrl, parse_tracker_url

if TYPE_CHECKING:
    from magnet.io.udp_tracker import UdpTracker

__all__ = [
    "MAX_PEERS",
    "UNKNOWN_LEFT",
    "AnnounceEvent",
    "AnnounceRequest",
    "AnnounceResult",
    "ScrapeStats",
    "TrackerError",
    "announce",
    "preload_http_client",
    "scrape",
]

_T = TypeVar("_T")


class _Loader:
    """Imports a module once in a daemon thread; coroutines on any loop wait for it.

    Not ``asyncio.to_thread``: the default executor's threads are joined when ``asyncio.run``
    returns, so a resolve that the DHT finished in milliseconds would still wait out the
    whole import before the process could exit.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._started = False
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            importlib.import_module(self.name)
        except BaseException as exc:  # handed to the waiters, whatever it is
            self._error = exc
        finally:
            self._done.set()

    def start(self) -> None:
        """Begin the import now, if nobody has (returns at once)."""
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._run, name=f"import {self.name}", daemon=True).start()

    async def wait(self) -> None:
        if not self._done.is_set():
            self.start()
            # Polled rather than signalled: waiters may sit on different loops, and the
            # import takes 0.1 s or more, so 5 ms of granularity costs nothing.
            while not self._done.is_set():
                await asyncio.sleep(0.005)
        if self._error is not None:
            raise self._error


_aiohttp = _Loader("aiohttp")


def preload_http_client() -> None:
    """Start importing the HTTP tracker client (aiohttp) in the background, now.

    For callers that know early that an HTTP tracker will be asked: most of the import is
    aiohttp loading the CA store into two SSL contexts, which runs without the GIL, so it
    overlaps whatever the caller imports and sets up meanwhile instead of following it.
    """
    if "aiohttp" not in sys.modules:
        _aiohttp.start()


async def _load_aiohttp() -> None:
    # Already imported by someone else (on their own thread, so completely): nothing to wait.
    if _aiohttp._started or "aiohttp" not in sys.modules:
        await _aiohttp.wait()


async def _all(coros: Sequence[Coroutine[Any, Any, _T]]) -> list[_T]:
    """Run ``coros`` concurrently; on the first failure the rest are cancelled."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


async def announce(
    url: str,
    info_hash: bytes,
    *,
    peer_id: bytes,
    port: int,
    timeout: float,
    num_want: int = 200,
    event: AnnounceEvent = AnnounceEvent.STARTED,
    left: int = UNKNOWN_LEFT,
    uploaded: int = 0,
    downloaded: int = 0,
    key: int | None = None,
    tracker_id: bytes | None = None,
    max_peers: int = MAX_PEERS,
    retry_schedule: Sequence[float] | None = None,
    rng: random.Random | None = None,
    accept: Callable[[Addr], bool] | None = None,
) -> AnnounceResult:
    """Announce ``info_hash`` to the tracker at ``url`` and return what it answered.

    :param timeout: cap in seconds on the whole call, name lookup included.
    :param key: 32-bit announce key; random if None (keep one per session to be recognised).
    :param retry_schedule: UDP only: seconds to wait after each attempt (default 0.5, 1, 2).
    :param accept: address policy for the tracker's host, applied to the addresses its name
        resolves to (and, over HTTP, to every redirect's); None: any address.
    :raises TrackerError: unsupported scheme, bad URL, timeout, failure, nonsense answer,
        a host the policy refuses.
    """
    target = parse_tracker_url(url)
    rng = rng or random.SystemRandom()
    request = AnnounceRequest(
        info_hash=info_hash,
        peer_id=peer_id,
        port=port,
        uploaded=uploaded,
        downloaded=downloaded,
        left=left,
        event=event,
        key=rng.getrandbits(32) if key is None else key,
        num_want=num_want,
        tracker_id=tracker_id,
    )

    async def over_udp(deadline: float) -> AnnounceResult:
        async with await _open_udp(target, rng, retry_schedule, max_peers, accept) as tracker:
            left = deadline - asyncio.get_running_loop().time()
            answer = await tracker.announce(request, timeout=left)
        return AnnounceResult(
            peers=list(answer.peers),
            interval=answer.interval,
            seeders=answer.seeders,
            leechers=answer.leechers,
        )

    async def over_http(deadline: float) -> AnnounceResult:
        await _load_aiohttp()
        from magnet.io.http_tracker import http_announce

        left = deadline - asyncio.get_running_loop().time() + target.inner_grace_s
        return await http_announce(url, request, timeout=left, max_peers=max_peers, accept=accept)

    return await _capped(timeout, target.outer_grace_s, over_udp if target.is_udp else over_http)


async def scrape(
    url: str,
    info_hashes: Sequence[bytes],
    *,
    timeout: float,
    retry_schedule: Sequence[float] | None = None,
    rng: random.Random | None = None,
    accept: Callable[[Addr], bool] | None = None,
) -> dict[bytes, ScrapeStats]:
    """Seeders, completed downloads and leechers of ``info_hashes`` at the tracker at ``url``.

    Torrents the tracker left out are absent from the result. Long lists are split into
    several requests (74 per UDP packet, 50 per HTTP URL), sent concurrently.

    :param accept: as for `announce`.
    :raises TrackerError: as `announce`; also when an HTTP tracker has no scrape URL (BEP 48).
    """
    target = parse_tracker_url(url)
    hashes = list(dict.fromkeys(info_hashes))
    if not hashes:
        return {}
    if any(len(h) != 20 for h in hashes):
        raise ValueError("info hashes are 20 bytes")

    async def over_http(deadline: float) -> list[dict[bytes, ScrapeStats]]:
        await _load_aiohttp()
        from magnet.io import http_tracker as http
        from magnet.trackers.http import MAX_SCRAPE_HASHES

        step = MAX_SCRAPE_HASHES
        left = deadline - asyncio.get_running_loop().time() + target.inner_grace_s
        return await _all(
            [
                http.http_scrape(url, hashes[i : i + step], timeout=left, accept=accept)
                for i in range(0, len(hashes), step)
            ]
        )

    async def over_udp(deadline: float) -> list[dict[bytes, ScrapeStats]]:
        from magnet.trackers import udp

        step = udp.MAX_SCRAPE_HASHES
        async with await _open_udp(target, rng, retry_schedule, accept=accept) as tracker:
            # One connect serves every chunk: the core shares its connection id.
            left = deadline - asyncio.get_running_loop().time()
            answers = await _all(
                [
                    tracker.scrape(hashes[i : i + step], timeout=left)
                    for i in range(0, len(hashes), step)
                ]
            )
        return [answer.stats for answer in answers]

    body = over_udp if target.is_udp else over_http
    parts_stats = await _capped(timeout, target.outer_grace_s, body)
    out: dict[bytes, ScrapeStats] = {}
    for stats in parts_stats:
        out.update(stats)
    return out


async def _capped(timeout: float, grace: float, body: Callable[[float], Awaitable[_T]]) -> _T:
    """``body(deadline)`` under a cap of ``timeout`` (+ ``grace``) s, reported as TrackerError."""
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        async with asyncio.timeout_at(deadline + grace):
            return await body(deadline)
    except TimeoutError:
        raise TrackerError(f"timed out after {timeout:g} s") from None


async def _open_udp(
    target: TrackerUrl,
    rng: random.Random | None,
    retry_schedule: Sequence[float] | None,
    max_peers: int = MAX_PEERS,
    accept: Callable[[Addr], bool] | None = None,
) -> UdpTracker:
    from magnet.io.udp_tracker import UdpTracker
    from magnet.trackers.udp import DEFAULT_RETRY_SCHEDULE_S

    return await UdpTracker.open(
        target.host,
        target.port or 0,
        rng=rng or random.SystemRandom(),
        retry_schedule=retry_schedule or DEFAULT_RETRY_SCHEDULE_S,
        max_peers=max_peers,
        url_data=target.url_data,
        accept=accept,
    )
