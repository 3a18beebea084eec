"""Fixtures running libtorrent 2.1.1 on loopback (see ``ltswarm.py``).

Everything here is skipped, with the reason shown, when ``import libtorrent`` fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.interop.ltswarm import LtNode, LtSwarm, TorrentKind, TorrentSpec

LIBTORRENT_MISSING = (
    "libtorrent is not importable: interop tests need `pip install libtorrent==2.1.1`"
)


def require_libtorrent() -> None:
    """Skip the calling test (or fixture) when libtorrent cannot be imported."""
    pytest.importorskip("libtorrent", reason=LIBTORRENT_MISSING)


@pytest.fixture(scope="module")
def lt_swarm() -> Iterator[LtSwarm]:
    """A swarm of 8 libtorrent DHT nodes on 127.0.0.2-9, tables populated; one per module."""
    require_libtorrent()
    from tests.interop.ltswarm import LtSwarm

    with LtSwarm(8) as swarm:
        yield swarm


@pytest.fixture(scope="module")
def lt_client(lt_swarm: LtSwarm) -> LtNode:
    """One more libtorrent node joined to ``lt_swarm`` (bootstrapped), to resolve magnets."""
    return lt_swarm.add_node()


@pytest.fixture(scope="module")
def lt_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for torrent data that lives as long as the module's swarm."""
    return tmp_path_factory.mktemp("lt")


@pytest.fixture
def make_lt_torrent(lt_workdir: Path) -> Callable[..., TorrentSpec]:
    """``make_lt_torrent(kind="single", **kw)``: :func:`ltswarm.make_torrent` in ``lt_workdir``.

    Data lives as long as the module (a swarm seeding it may outlive the test).
    """
    require_libtorrent()
    from tests.interop.ltswarm import make_torrent

    def make(kind: TorrentKind = "single", **kw: object) -> TorrentSpec:
        return make_torrent(lt_workdir, kind, **kw)  # type: ignore[arg-type]

    return make


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every interop test starts real peers (libtorrent sessions, opentracker): slow."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.slow)
