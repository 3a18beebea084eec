"""Dialling a peer over TCP and uTP (BEP 29) at once: the first transport to connect wins.

Most of the swarm is libtorrent and accepts both; some peers accept only uTP (TCP off, or
only UDP reachable through their NAT), others only TCP. A `Dialer` starts one attempt per
allowed transport, in ``order``, the next one ``stagger`` seconds after the previous (or at
once when the previous one failed), as happy eyeballs (RFC 8305) does for address families.
The first connection made is handed to the caller; the others are cancelled, or closed if
they connected too. Both transports give an ``asyncio.Transport`` to an
``asyncio.Protocol``, so what runs over the stream (the BitTorrent handshake, MSE/PE) never
knows which one carries it.

Why the winner is the first *connected* stream rather than the first to finish the
BitTorrent handshake: the handshake belongs to the ``Resolution`` core, one session per
peer address. Running two sessions to one peer would send the peer our peer id twice, and
libtorrent drops one of two connections with the same peer id, maybe the one we would keep.

Why both at once by default (``stagger`` 0): on loopback and in the WAN lab the two
connects take the same round trip, so any stagger is pure delay whenever the first
transport fails (a TCP-only peer ignores our uTP SYN; a uTP-only peer refuses TCP only if
its host answers with a reset). The price is one extra connection per peer, closed at once.

All uTP connections of a dialer share one UDP socket per address family, opened on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from magnet.io.utp import UtpEndpoint

__all__ = ["TRANSPORTS", "DialError", "Dialer"]

TRANSPORTS = ("auto", "tcp", "utp")
P = TypeVar("P", bound=asyncio.Protocol)
Addr = tuple[str, int]


class DialError(ConnectionError):
    """No transport connected; ``str(exc)`` says how each attempt ended."""


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer"
    if isinstance(exc, OSError) and exc.errno:
        # asyncio's own text ("Connect call failed ('1.2.3.4', 5)") names no cause.
        return os.strerror(exc.errno).lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).lower() or type(exc).__name__


class Dialer(Generic[P]):
    """Opens peer connections over the transports ``transport`` allows.

    :param transport: "auto" (TCP and uTP raced), "tcp" or "utp".
    :param stagger: seconds between starting one attempt and the next (0: all at once).
    :param order: which transport starts first in "auto".
    :param timeout: bound on each attempt (a caller's own deadline may cancel earlier).
    """

    def __init__(
        self,
        transport: str = "auto",
        *,
        stagger: float = 0.0,
        order: Sequence[str] = ("tcp", "utp"),
        timeout: float = 10.0,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")
        self.kinds = tuple(order) if transport == "auto" else (transport,)
        self.stagger = stagger
        self.timeout = timeout
        self._endpoints: dict[int, asyncio.Task[UtpEndpoint]] = {}
        self._closed = False

    async def dial(self, addr: Addr, factory: Callable[[str], P]) -> tuple[asyncio.Transport, P]:
        """Connect to ``addr``; ``factory(kind)`` makes the protocol of an attempt over
        ``kind`` ("tcp" or "utp"). Returns the winner; raises `DialError`."""
        attempts: dict[asyncio.Task[tuple[asyncio.Transport, P]], str] = {}
        errors: dict[str, str] = {}
        waiting = list(self.kinds)
        try:
            while True:
                if waiting and (not attempts or self.stagger <= 0):
                    kind = waiting.pop(0)
                    attempts[asyncio.create_task(self._attempt(kind, addr, factory))] = kind
                    continue  # with no stagger, all of them now
                if not attempts:
                    raise DialError(", ".join(f"{k}: {why}" for k, why in errors.items()))
                running = [t for t in attempts if not t.done()]
                done, _ = await asyncio.wait(
                    running,
                    timeout=self.stagger if waiting else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done and waiting:  # the stagger passed: start the next one too
                    kind = waiting.pop(0)
                    attempts[asyncio.create_task(self._attempt(kind, addr, factory))] = kind
                    continue
                # Several may finish in one wake-up: the first in ``order`` wins.
                for task in sorted(done, key=lambda t: self.kinds.index(attempts[t])):
                    kind = attempts.pop(task)
                    exc = task.exception()
                    if exc is None:
                        return task.result()
                    errors[kind] = _why(exc)
        finally:
            for task in attempts:
                task.cancel()
            for task in attempts:
                with contextlib.suppress(BaseException):
                    transport, _ = await task
                    transport.abort()  # connected too, but lost the race

    async def _attempt(
        self, kind: str, addr: Addr, factory: Callable[[str], P]
    ) -> tuple[asyncio.Transport, P]:
        loop = asyncio.get_running_loop()
        if kind == "tcp":
            async with asyncio.timeout(self.timeout):
                return await loop.create_connection(lambda: factory("tcp"), addr[0], addr[1])
        endpoint = await self._endpoint(6 if ":" in addr[0] else 4)
        transport, protocol = await endpoint.create_connection(
            lambda: factory("utp"), addr[0], addr[1], timeout=self.timeout
        )
        assert isinstance(protocol, asyncio.Protocol)
        return transport, protocol  # type: ignore[return-value]  # made by ``factory``

    async def _endpoint(self, family: int) -> UtpEndpoint:
        if self._closed:
            raise DialError("dialer closed")
        task = self._endpoints.get(family)
        if task is None:
            from magnet.io.utp import UtpEndpoint

            host = "::" if family == 6 else "0.0.0.0"
            task = asyncio.ensure_future(UtpEndpoint.create(host, 0))
            self._endpoints[family] = task
        return await asyncio.shield(task)

    def close(self) -> None:
        """Close the UDP sockets and every uTP connection on them."""
        self._closed = True
        for task in self._endpoints.values():
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().close()
            else:
                task.cancel()
        self._endpoints.clear()
