"""The background import of aiohttp: the loop keeps running, and exiting never waits for it."""

from __future__ import annotations

import asyncio
import builtins
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from magnet.io.trackers import _Loader

# Stands in for aiohttp: an import that takes long. It waits for the test's go-ahead
# (bounded, so nothing hangs) instead of sleeping for a fixed time.
SLOW_MODULE = """
import builtins
builtins._magnetar_slow_import_go.wait(10)
VALUE = 42
"""


@pytest.fixture
def slow_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, threading.Event]]:
    name = "magnetar_slow_import_probe"
    (tmp_path / f"{name}.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    go = threading.Event()
    monkeypatch.setattr(builtins, "_magnetar_slow_import_go", go, raising=False)
    yield name, go
    go.set()
    for t in _import_threads():
        t.join(5)
    sys.modules.pop(name, None)


def _import_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("import magnetar_slow")]


def test_loop_runs_while_the_module_imports_and_exit_does_not_wait(
    slow_module: tuple[str, threading.Event],
) -> None:
    name, go = slow_module
    loader = _Loader(name)
    ticks = 0

    async def main() -> None:
        nonlocal ticks
        waiter = asyncio.create_task(loader.wait())
        for _ in range(5):
            await asyncio.sleep(0.01)
            ticks += 1
        assert not waiter.done()  # the import is still blocked on its go-ahead
        waiter.cancel()

    asyncio.run(main())
    # asyncio.run returned with the import still under way: it was not joined.
    assert ticks == 5
    threads = _import_threads()
    assert threads and all(t.daemon for t in threads)

    go.set()
    for t in threads:
        t.join(5)

    async def again() -> None:
        await asyncio.wait_for(loader.wait(), 5)

    asyncio.run(again())
    assert sys.modules[name].VALUE == 42


def test_import_error_reaches_every_waiter() -> None:
    loader = _Loader("magnetar_no_such_module_anywhere")

    async def main() -> list[BaseException | None]:
        results = await asyncio.gather(loader.wait(), loader.wait(), return_exceptions=True)
        return list(results)

    results = asyncio.run(asyncio.wait_for(main(), 10))
    assert all(isinstance(r, ModuleNotFoundError) for r in results)


def test_start_begins_the_import_without_a_loop(slow_module: tuple[str, threading.Event]) -> None:
    # preload_http_client's path: called from synchronous code, before any loop runs.
    name, go = slow_module
    loader = _Loader(name)
    loader.start()
    loader.start()  # a second call starts nothing more
    threads = _import_threads()
    assert len(threads) == 1 and threads[0].daemon
    assert name not in sys.modules or not hasattr(sys.modules[name], "VALUE")
    go.set()
    threads[0].join(5)
    asyncio.run(asyncio.wait_for(loader.wait(), 5))
    assert sys.modules[name].VALUE == 42
