"""CoreTimer on a fake loop: re-armed only when the deadline moves, never hands back a past time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dht.io.timer import CoreTimer


class FakeLoop:
    """A clock that moves only when told, and the call_at handles made on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.loop = asyncio.new_event_loop()  # handles need one for cancel(); never run
        self.loop.close()
        self.handles: list[tuple[float, asyncio.TimerHandle]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], Any], /) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, (), self.loop)
        self.handles.append((when, handle))
        return handle

    def live(self) -> list[float]:
        return [when for when, h in self.handles if not h.cancelled()]

    def fire_due(self, now: float) -> None:
        self.now = now
        for when, handle in list(self.handles):
            if when <= now + 0.001 and not handle.cancelled():  # a hair early, as loops do
                self.handles.remove((when, handle))
                handle._run()


def make() -> tuple[FakeLoop, CoreTimer, list[float]]:
    loop = FakeLoop()
    fired: list[float] = []
    return loop, CoreTimer(loop, fired.append), fired


def test_same_deadline_is_not_rearmed() -> None:
    loop, timer, _ = make()
    timer.arm(5.0)
    timer.arm(5.0)
    assert len(loop.handles) == 1 and timer.deadline == 5.0


def test_a_moved_deadline_replaces_the_old_one() -> None:
    loop, timer, fired = make()
    timer.arm(5.0)
    timer.arm(3.0)
    timer.arm(7.0)
    assert loop.live() == [7.0]
    loop.fire_due(6.0)
    assert fired == []
    loop.fire_due(7.0)
    assert fired == [7.0] and timer.deadline is None


def test_none_and_cancel_disarm() -> None:
    loop, timer, fired = make()
    timer.arm(1.0)
    timer.arm(None)
    assert loop.live() == [] and timer.deadline is None
    timer.arm(2.0)
    timer.cancel()
    loop.fire_due(10.0)
    assert fired == []


def test_early_fire_gets_the_deadline_late_fire_gets_now() -> None:
    loop, timer, fired = make()
    timer.arm(4.0)
    loop.fire_due(3.9995)  # the loop fired a hair before the deadline
    assert fired == [4.0]
    timer.arm(5.0)
    loop.fire_due(9.0)
    assert fired == [4.0, 9.0]


def test_after_firing_the_same_deadline_arms_again() -> None:
    loop, timer, fired = make()
    timer.arm(1.0)
    loop.fire_due(1.0)
    timer.arm(1.0)  # a core may ask for the same instant again: it must fire again
    loop.fire_due(1.0)
    assert fired == [1.0, 1.0]
