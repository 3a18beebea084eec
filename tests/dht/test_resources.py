import sys

import pytest

from dht.io.resources import cpu_seconds, rss_bytes


def test_rss_is_plausible_and_grows() -> None:
    before = rss_bytes()
    assert 1 << 20 < before < 1 << 40
    if not sys.platform.startswith("linux"):
        pytest.skip("only /proc gives the current (not peak) size")
    block = bytearray(64 << 20)
    block[::4096] = b"\1" * len(block[::4096])  # touch every page so it is resident
    assert rss_bytes() > before + (32 << 20)
    del block


def test_rss_degrades_without_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_open = builtins.open

    def no_proc(path: object, *args: object, **kwargs: object) -> object:
        if str(path).startswith("/proc"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "open", no_proc)
    assert rss_bytes() > 0  # the peak size from getrusage


def test_cpu_seconds() -> None:
    start = cpu_seconds()
    sum(i * i for i in range(200_000))
    assert cpu_seconds() >= start > 0
