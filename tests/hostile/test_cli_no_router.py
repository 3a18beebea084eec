"""``magnetar resolve`` with no DHT to reach says so at once, as ``peers`` does.

When every bootstrap router is unresolvable, or the ones that resolve are silent, and the
link has no other source of peers, waiting out the whole timeout (60 s by default) only
hides the cause. Tested on loopback only: ``127.0.0.1:1`` (nobody there) and a DNS failure
made by replacing the router lookup (a ``.invalid`` name: it never reaches a real router).
A link with a tracker still waits for it: the DHT being down is not the end of it then.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

import pytest
from typer.testing import CliRunner

from dht.io import routers
from dht.wire import Addr
from magnet.cli.app import app
from magnet.io.resolve import ResolveError, resolve

HASH = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.slow
def test_silent_router_ends_the_resolve_long_before_its_timeout() -> None:
    # The old code waited the full 60 s: the subprocess limit below fails it.
    out = subprocess.run(
        [sys.executable, "-m", "magnet", "resolve", HASH, "-b", "127.0.0.1:1", "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=40,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert "no DHT node answered the bootstrap" in out.stderr, out.stderr


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    async def unresolvable(names: Sequence[Addr], **_: object) -> list[Addr]:
        return []

    monkeypatch.setattr(routers, "resolve_routers", unresolvable)
    monkeypatch.setattr("dht.io.node.resolve_routers", unresolvable)


def test_unresolvable_routers_end_the_resolve_at_once(no_dns: None) -> None:
    started = time.monotonic()
    result = CliRunner().invoke(
        app, ["resolve", HASH, "-b", "router.invalid:6881", "--timeout", "60"]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert "none of the 1 bootstrap routers resolved" in result.stderr
    # Nothing to wait for: no query was even sent. Generous, only to tell "at once" from 60 s.
    assert time.monotonic() - started < 30


def test_unresolvable_routers_in_bulk_fail_each_link_at_once(no_dns: None) -> None:
    result = CliRunner().invoke(
        app, ["resolve", HASH, HASH[::-1], "-b", "router.invalid:6881", "--timeout", "60"]
    )
    assert result.exit_code == 1
    assert result.stdout.count("FAILED") == 2, result.stdout
    assert "bootstrap routers resolved" in result.stdout


@pytest.mark.slow
def test_a_tracker_still_gets_its_chance_when_the_dht_is_down(no_dns: None) -> None:
    async def main(url: str) -> ResolveError:
        with pytest.raises(ResolveError) as caught:
            # The tracker never answers: the resolve ends by its timeout, not by the dead
            # DHT, because the tracker might still have brought peers. (A loopback tracker
            # with a public bootstrap is refused unless the caller opts in to private hosts.)
            await resolve(
                HASH,
                bootstrap=[("router.invalid", 6881)],
                trackers=[url],
                timeout=1.5,
                allow_private=True,
            )
        return caught.value

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        error = asyncio.run(main(f"udp://127.0.0.1:{silent.getsockname()[1]}/announce"))
    assert error.reason.startswith("no metadata after 1.5 s"), error.reason


@pytest.mark.slow
def test_dht_down_and_the_last_tracker_empty_ends_it_at_once() -> None:
    async def main() -> ResolveError:
        with pytest.raises(ResolveError) as caught:
            # Nobody on either port: the tracker's announce is refused (ICMP) at once, the
            # DHT's query times out; then nothing is left to wait for.
            await resolve(
                HASH,
                bootstrap=[("127.0.0.1", 1)],
                trackers=["udp://127.0.0.1:1/announce"],
                timeout=60,
            )
        return caught.value

    started = time.monotonic()
    error = asyncio.run(main())
    assert error.kind == "no-dht" and "trackers: udp://127.0.0.1:1" in error.reason, error.reason
    assert time.monotonic() - started < 40
