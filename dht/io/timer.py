"""One asyncio timer for a sans-IO core's single deadline: ``CoreTimer``.

Every core (the DHT protocol, a magnet ``Resolution``, a BEP 15 tracker client) hands out
one absolute deadline through ``get_timer()`` on the loop's clock. Its driver keeps one
``loop.call_at`` armed for it: re-armed only when the deadline moved (re-arming is a heap
push, and a busy node asks after every burst of datagrams), cancelled when there is none.
The callback gets ``max(loop.time(), deadline)``: the loop may fire a hair early, and a core
handed a time before its own deadline would find nothing due and ask again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # (a Protocol class costs a millisecond of start-up; magnetar resolve is timed)
    import asyncio
    from collections.abc import Callable

    class _Clock(Protocol):
        """The two things of an event loop the timer uses (tests pass a fake)."""

        def time(self) -> float: ...

        def call_at(self, when: float, callback: Callable[[], Any], /) -> asyncio.TimerHandle: ...


__all__ = ["CoreTimer"]


class CoreTimer:
    """Keeps one ``loop.call_at`` on a core's deadline; ``callback(now)`` runs when it is due."""

    __slots__ = ("_at", "_callback", "_handle", "_loop")

    def __init__(self, loop: _Clock, callback: Callable[[float], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._at: float | None = None

    @property
    def deadline(self) -> float | None:
        """When the armed timer fires (loop time), or None when it is not armed."""
        return self._at

    def arm(self, deadline: float | None) -> None:
        """Fire at ``deadline`` (loop time) instead of any earlier choice; None disarms."""
        if deadline == self._at:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._at = deadline
        if deadline is not None:
            self._handle = self._loop.call_at(deadline, self._fire)

    def cancel(self) -> None:
        """Disarm; ``arm`` may be called again later."""
        self.arm(None)

    def _fire(self) -> None:
        at = self._at
        self._handle = None
        self._at = None
        assert at is not None  # a handle exists only while a deadline is set
        self._callback(max(self._loop.time(), at))
