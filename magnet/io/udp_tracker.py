"""asyncio driver of the BEP 15 client: `UdpTracker`, one tracker on a connected UDP socket.

No protocol logic lives here, as in `dht.io.node.Node`: each datagram goes to the sans-IO
`magnet.trackers.udp.UdpTrackerClient` with ``loop.time()``, what it wants sent is sent, its
one timer is kept armed with ``loop.call_at``, and its events settle the futures of whoever
called `UdpTracker.announce` or `UdpTracker.scrape`. Keeping a `UdpTracker` open keeps the
BEP 15 connection id, so later requests within its minute skip the connect exchange.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dht.io.timer import CoreTimer
from dht.wire import Addr
from magnet.trackers.messages import MAX_PEERS, AnnounceRequest, TrackerError, refused_host
from magnet.trackers.udp import (
    DEFAULT_RETRY_SCHEDULE_S,
    Announced,
    Scraped,
    TrackerFailed,
    UdpTrackerClient,
)

__all__ = ["UdpTracker"]

log = logging.getLogger("magnet.io.udp_tracker")


class UdpTracker(asyncio.DatagramProtocol):
    """One UDP tracker on a connected datagram socket, driving a `UdpTrackerClient`.

    Open with ``await UdpTracker.open(host, port)``; keep it to reuse the connection id across
    announces; `close` it when done (or use ``async with``). Methods raise `TrackerError`.
    """

    def __init__(self, client: UdpTrackerClient) -> None:
        self.client = client
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.DatagramTransport | None = None
        self._waiters: dict[int, asyncio.Future[Announced | Scraped]] = {}
        self._timer = CoreTimer(self._loop, self._on_timer)

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        rng: random.Random | None = None,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE_S,
        max_peers: int = MAX_PEERS,
        url_data: bytes = b"",
        accept: Callable[[Addr], bool] | None = None,
    ) -> UdpTracker:
        """Resolve ``host`` (first address ``accept`` allows wins) and open a socket
        connected to it. ``accept`` is checked after DNS, so a public name that resolves to
        a private or loopback address is refused like the address itself."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise TrackerError(f"cannot resolve {host!r}: {exc.strerror or exc}") from exc
        if not infos:
            raise TrackerError(f"cannot resolve {host!r}")
        choices = [(info[0], (str(info[4][0]), int(info[4][1]))) for info in infos]
        if accept is not None:
            allowed = [c for c in choices if accept(c[1])]
            if not allowed:
                raise TrackerError(refused_host(host, choices[0][1]))
            choices = allowed
        family, addr = choices[0]
        client = UdpTrackerClient(
            addr,
            rng=rng or random.SystemRandom(),
            retry_schedule=retry_schedule,
            max_peers=max_peers,
            url_data=url_data,
        )
        tracker = cls(client)
        try:
            # A connected socket: the kernel filters other sources, and an ICMP "port
            # unreachable" comes back as an error, which fails the requests at once.
            await loop.create_datagram_endpoint(lambda: tracker, remote_addr=addr, family=family)
        except OSError as exc:
            raise TrackerError(f"cannot open a socket to {host}: {exc.strerror or exc}") from exc
        return tracker

    async def announce(
        self, request: AnnounceRequest, *, timeout: float | None = None
    ) -> Announced:
        result = await self._wait(self.client.announce(request, self._loop.time(), timeout=timeout))
        assert isinstance(result, Announced)
        return result

    async def scrape(
        self, info_hashes: Iterable[bytes], *, timeout: float | None = None
    ) -> Scraped:
        hashes = list(info_hashes)
        result = await self._wait(self.client.scrape(hashes, self._loop.time(), timeout=timeout))
        assert isinstance(result, Scraped)
        return result

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def __aenter__(self) -> UdpTracker:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def _wait(self, request_id: int) -> Announced | Scraped:
        if self._transport is None:
            self.client.cancel(request_id)
            raise TrackerError("closed")
        future: asyncio.Future[Announced | Scraped] = self._loop.create_future()
        self._waiters[request_id] = future
        self._transmit()
        try:
            return await future
        finally:
            # Cancelled by the caller: the core must forget it too.
            if self._waiters.pop(request_id, None) is not None:
                self.client.cancel(request_id)
                self._transmit()

    # --- asyncio.DatagramProtocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's datagram transports do not subclass DatagramTransport: no isinstance.
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        # IPv6 source addresses come as 4-tuples: the core wants (ip, port).
        why = self.client.receive_datagram(data, (addr[0], addr[1]), self._loop.time())
        if why is not None:
            log.debug("dropped a datagram from %s: %s", addr, why)
        self._transmit()

    def error_received(self, exc: Exception) -> None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self.client.abort(f"network error: {reason}")
        self._transmit()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._timer.cancel()
        self.client.abort("closed")
        self._deliver()

    # --- plumbing ---

    def _transmit(self) -> None:
        now = self._loop.time()
        if self._transport is not None:
            for data, _ in self.client.datagrams_to_send(now):
                self._transport.sendto(data)
        self._deliver()
        self._timer.arm(self.client.get_timer() if self._transport is not None else None)

    def _on_timer(self, now: float) -> None:
        self.client.handle_timer(now)
        self._transmit()

    def _deliver(self) -> None:
        while (event := self.client.next_event()) is not None:
            future = self._waiters.pop(event.request_id, None)
            if future is None or future.done():
                continue
            if isinstance(event, TrackerFailed):
                future.set_exception(TrackerError(event.reason))
            else:
                future.set_result(event)
