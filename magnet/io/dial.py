"""Dialling a peer over TCP and uTP (BEP 29), happy-eyeballs style: the answered stream wins.

Most of the swarm is libtorrent and accepts both; some peers accept only uTP (TCP off, or
only UDP reachable through their NAT), others only TCP. A `Dialer` starts one attempt per
allowed transport, in ``order``, the next one ``stagger`` seconds after the previous (or at
once when the previous one failed), as happy eyeballs (RFC 8305) does for address families.

The caller's protocol sees one stream, a `RacedTransport`, from the first attempt that
connects. What the caller writes goes to that attempt and is also kept until the peer has
sent its first byte back. If the attempt dies before that, the peer may not take this
transport (libtorrent with TCP off accepts a TCP connection and hangs up at once) or may not
like what we sent (plaintext to a peer that wants MSE/PE): the stream moves to another
attempt that connects, the kept bytes written to it again, the caller none the wiser. A
caller that redials such a stream anyway (a ``Resolution`` does, with the other encryption)
is told at once unless another attempt is already under way, and its next dial to that
address tries the other transport first (not both at once: libtorrent, which by default
takes one connection per address, may still hold the first and drop the second). Once the
peer has answered, the other attempts are cancelled or closed. So the winner is the first
stream over which the peer answers our BitTorrent (or MSE) handshake, while one handshake at
a time is in flight: two at once would show the peer one peer id on two connections, and
libtorrent drops one of such a pair.

Why TCP first and uTP 250 ms later by default: in the WAN lab (one-way delays 10-150 ms,
5 ms jitter, 2% loss; ``scripts/bench_dial_wan.py --rounds 10``: 40 resolves of a 96 KiB
info dict per way) the two connects take the same round trip, so with both at once uTP won
half the races, and a transfer over our uTP (LEDBAT's slow start from two packets) is slower
than over the kernel's TCP: mean 1.61 s both at once, 1.41 s TCP only, 2.14 s uTP only,
1.43 s TCP first and uTP after 250 ms (p90 2.11 s, as TCP only's 2.12 s; uTP carried 3 of
the 40, where TCP was slow to connect). A peer that refuses TCP, or accepts it and hangs up
(libtorrent with TCP off), gets its uTP attempt at once, not after the stagger.

All uTP connections of a dialer share one UDP socket per address family, opened on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from magnet.io.utp import UtpEndpoint

__all__ = ["TRANSPORTS", "DialError", "Dialer", "RacedTransport"]

TRANSPORTS = ("auto", "tcp", "utp")
log = logging.getLogger("magnet.io.dial")
P = TypeVar("P", bound=asyncio.Protocol)
Addr = tuple[str, int]
_MAX_REPLAY = 64 * 1024  # kept for a failover: handshakes are ~100-700 bytes
_MAX_HUNG_UP = 4096


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


class _Leg(asyncio.Protocol):
    """One attempt's connection, feeding the race."""

    def __init__(self, race: _Race[Any], kind: str) -> None:
        self.race = race
        self.kind = kind
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # streams, TCP or uTP
        self.race.connected(self)

    def data_received(self, data: bytes) -> None:
        self.race.leg_data(self, data)

    def eof_received(self) -> bool | None:
        return self.race.leg_eof(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.race.leg_lost(self, exc)

    def pause_writing(self) -> None:
        if self.race.current is self and self.race.app is not None:
            self.race.app.pause_writing()

    def resume_writing(self) -> None:
        if self.race.current is self and self.race.app is not None:
            self.race.app.resume_writing()


class RacedTransport(asyncio.Transport):
    """The caller's stream: the current attempt's transport, swapped on a failover.
    ``get_extra_info("transport")`` is "tcp" or "utp"."""

    def __init__(self, race: _Race[Any]) -> None:
        super().__init__()
        self._race = race

    def _current(self) -> asyncio.Transport | None:
        leg = self._race.current
        return leg.transport if leg is not None else None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        leg = self._race.current
        if name == "transport":
            return leg.kind if leg is not None else default
        current = self._current()
        return current.get_extra_info(name, default) if current is not None else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        race = self._race
        if not race.answered:
            race.sent += data
            if len(race.sent) > _MAX_REPLAY:  # not a handshake: no failover for this one
                race.answered = True
                race.settle()
        current = self._current()
        if current is not None and not current.is_closing():
            current.write(data)

    def write_eof(self) -> None:
        current = self._current()
        if current is not None:
            current.write_eof()

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self._race.end(abort=False)

    def abort(self) -> None:
        self._race.end(abort=True)

    def is_closing(self) -> bool:
        current = self._current()
        return self._race.ended or current is None or current.is_closing()

    def get_write_buffer_size(self) -> int:
        current = self._current()
        return current.get_write_buffer_size() if current is not None else 0

    def pause_reading(self) -> None:
        current = self._current()
        if current is not None:
            current.pause_reading()

    def resume_reading(self) -> None:
        current = self._current()
        if current is not None:
            current.resume_reading()

    def is_reading(self) -> bool:
        current = self._current()
        return current is not None and current.is_reading()


class _Race(Generic[P]):
    """The attempts of one dial and the one stream they give the caller."""

    def __init__(
        self, dialer: Dialer[P], addr: Addr, factory: Callable[[], P], kinds: list[str]
    ) -> None:
        self.dialer = dialer
        self.addr = addr
        self.stagger = dialer.stagger
        self.waiting = kinds  # transports not tried yet, in order
        self.attempts: dict[asyncio.Task[_Leg], str] = {}  # started, not over
        self.factory = factory
        self.loop = asyncio.get_running_loop()
        self.transport = RacedTransport(self)
        self.app: P | None = None
        self.current: _Leg | None = None
        self.spares: list[_Leg] = []  # connected, unused: the failover candidates
        self.sent = bytearray()  # what the caller wrote, until the peer answers
        self.answered = False
        self.closing = False  # the caller closed the stream: no failover
        self.ended = False
        self.errors: dict[str, str] = {}
        self.last_exc: Exception | None = None  # how the last attempt in use ended
        self.hurry = asyncio.Event()  # start the next attempt now, not at the stagger
        self.first: asyncio.Future[None] = self.loop.create_future()
        self.task: asyncio.Task[None] | None = None

    # --- the attempts -------------------------------------------------------------------
    async def run(self) -> None:
        """Start the attempts: the next one ``stagger`` seconds after the previous, or at
        once when nothing is left to wait for (an attempt failed, or the stream died before
        the peer answered). Each connected one reports to `connected`."""
        dialer, loop = self.dialer, self.loop
        waiting, attempts = self.waiting, self.attempts
        next_at = loop.time()
        try:
            while not (self.answered or self.ended) and (waiting or attempts):
                now = loop.time()
                idle = not attempts and self.current is None and not self.spares
                if waiting and (now >= next_at or idle or self.hurry.is_set()):
                    self.hurry.clear()
                    kind = waiting.pop(0)
                    attempts[asyncio.create_task(dialer.attempt(kind, self))] = kind
                    next_at = now + self.stagger
                    continue
                hurry = asyncio.ensure_future(self.hurry.wait())
                try:
                    done, _ = await asyncio.wait(
                        [*attempts, hurry],
                        timeout=next_at - now if waiting else None,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    hurry.cancel()
                for task in [t for t in attempts if t in done]:
                    kind = attempts.pop(task)
                    exc = task.exception()
                    if exc is not None:
                        self.errors[kind] = _why(exc)
                        log.debug("%s:%d over %s: %s", *self.addr, kind, self.errors[kind])
                        self.hurry.set()  # no reason to wait for the stagger any more
        finally:
            for task in attempts:
                task.cancel()
            for task in attempts:
                with contextlib.suppress(BaseException):
                    leg = await task
                    if leg is not self.current and leg.transport is not None:
                        leg.transport.abort()  # connected as it was cancelled
        self.attempts_over()

    def connected(self, leg: _Leg) -> None:
        assert leg.transport is not None
        if self.ended or self.answered:
            leg.transport.abort()  # too late: the peer answered on another one
        elif self.current is None:
            self.switch_to(leg)
        else:
            self.spares.append(leg)

    def switch_to(self, leg: _Leg) -> None:
        self.current = leg
        if self.app is None:
            self.app = self.factory()
            self.app.connection_made(self.transport)
            if not self.first.done():
                self.first.set_result(None)
        elif self.sent and leg.transport is not None:
            leg.transport.write(bytes(self.sent))  # the failover: the handshake again

    def attempts_over(self) -> None:
        """No attempt left running: if none ever connected, the dial failed."""
        if self.current is None and not self.first.done():
            reasons = ", ".join(f"{k}: {why}" for k, why in self.errors.items())
            self.first.set_exception(DialError(reasons or "no transport to try"))

    # --- the legs -----------------------------------------------------------------------
    def leg_data(self, leg: _Leg, data: bytes) -> None:
        if leg is not self.current:
            if leg.transport is not None:
                leg.transport.abort()  # a spare the peer talks on first: not ours to use
            return
        if not self.answered:
            self.answered = True
            self.settle()
        if self.app is not None:
            self.app.data_received(data)

    def leg_eof(self, leg: _Leg) -> bool | None:
        if leg is self.current and self.answered and self.app is not None:
            return self.app.eof_received()
        return False  # before an answer: the attempt failed (the transport closes itself)

    def leg_lost(self, leg: _Leg, exc: Exception | None) -> None:
        if leg in self.spares:
            self.spares.remove(leg)
            return
        if leg is not self.current:
            return
        self.errors[leg.kind] = "hung up" if exc is None else _why(exc)
        self.current = None
        if not (self.answered or self.closing or self.ended):
            why = self.errors[leg.kind]
            log.debug("%s:%d over %s: %s before answering", *self.addr, leg.kind, why)
            # Died before the peer said a word: the peer may not take this transport (as
            # libtorrent with TCP off, which accepts and hangs up) or may not like what we
            # sent (plaintext to a peer that wants MSE). The next dial tries all at once.
            self.dialer.hung_up(self.addr, leg.kind)
            if self.spares:
                self.switch_to(self.spares.pop(0))
                return
            in_flight = any(not t.done() for t in self.attempts)
            if in_flight or (self.waiting and not self.dialer.redialled):
                self.last_exc = exc  # another transport is on its way: it may take over
                self.hurry.set()
                return
        self.finish(exc)

    def finish(self, exc: Exception | None) -> None:
        """The stream is over for the caller."""
        if self.ended:
            return
        self.ended = True
        self.settle()
        if self.app is not None:
            self.app.connection_lost(exc)

    def settle(self) -> None:
        """The peer answered (or the stream ended): the other attempts go."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        for spare in self.spares:
            if spare.transport is not None:
                spare.transport.abort()
        self.spares.clear()

    def end(self, *, abort: bool) -> None:
        """The caller closes the stream."""
        self.closing = True
        leg = self.current
        self.settle()
        if leg is not None and leg.transport is not None:
            if abort:
                leg.transport.abort()
            else:
                leg.transport.close()
        elif not self.ended:
            self.finish(None)

    def on_task_done(self, task: asyncio.Task[None]) -> None:
        # Every attempt is over; a caller waiting on a failover that never came is told.
        if self.current is None and self.app is not None and not self.ended:
            self.finish(self.last_exc)


class Dialer(Generic[P]):
    """Opens peer connections over the transports ``transport`` allows.

    :param transport: "auto" (TCP and uTP raced), "tcp" or "utp".
    :param stagger: seconds between starting one attempt and the next (0: all at once);
        the next starts at once when nothing is left to wait for.
    :param order: which transport starts first in "auto".
    :param timeout: bound on each attempt (a caller's own deadline may cancel earlier).
    :param redialled: the caller dials again a stream that ends before the peer answers
        (as a ``Resolution`` does, with the other encryption): such a stream then ends at
        once rather than waiting out a transport not tried yet, and the next dial to that
        address tries that transport last.
    """

    def __init__(
        self,
        transport: str = "auto",
        *,
        stagger: float = 0.25,
        order: Sequence[str] = ("tcp", "utp"),
        timeout: float = 10.0,
        redialled: bool = False,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")
        self.kinds = tuple(order) if transport == "auto" else (transport,)
        self.stagger = stagger
        self.timeout = timeout
        self.redialled = redialled
        self._hung_up: dict[Addr, set[str]] = {}  # transports peers hung up on, unanswered
        self._endpoints: dict[int, asyncio.Task[UtpEndpoint]] = {}
        self._closed = False

    async def dial(self, addr: Addr, factory: Callable[[], P]) -> tuple[RacedTransport, P]:
        """Connect to ``addr``; ``factory()`` makes the caller's protocol, whose
        ``connection_made`` runs as soon as one attempt connects. Raises `DialError`."""
        # A transport the peer hung up on before answering goes last next time.
        shunned = self._hung_up.get(addr, ())
        kinds = sorted(self.kinds, key=lambda kind: kind in shunned)
        race: _Race[P] = _Race(self, addr, factory, kinds)
        race.task = asyncio.create_task(race.run())
        race.task.add_done_callback(race.on_task_done)
        try:
            await asyncio.shield(race.first)
        except BaseException:
            if not race.first.done():  # cancelled: by the caller
                race.end(abort=True)
            if race.task is not None:
                race.task.cancel()
            raise
        assert race.app is not None
        return race.transport, race.app

    def hung_up(self, addr: Addr, kind: str) -> None:
        if addr not in self._hung_up and len(self._hung_up) >= _MAX_HUNG_UP:
            self._hung_up.clear()  # a bound, not a cache worth keeping in order
        self._hung_up.setdefault(addr, set()).add(kind)

    async def attempt(self, kind: str, race: _Race[Any]) -> _Leg:
        loop = asyncio.get_running_loop()
        host, port = race.addr
        leg = _Leg(race, kind)
        if kind == "tcp":
            async with asyncio.timeout(self.timeout):
                await loop.create_connection(lambda: leg, host, port)
            return leg
        endpoint = await self._endpoint(6 if ":" in host else 4)
        await endpoint.create_connection(lambda: leg, host, port, timeout=self.timeout)
        return leg

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
