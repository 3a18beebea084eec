"""Fixtures shared by the test suites: the simulator and two wired DHT cores.

``sim`` is a seeded ``SimNetwork`` (the production core on a virtual clock) and ``make_sim``
builds one with other settings; ``pair`` is two ``DhtProtocol`` cores talking to each other
(``tests.dht.pair.CorePair``). Tests pass explicit times through these and never sleep.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dht.config import DhtConfig
from dht.simulation import SimNetwork
from tests.dht.pair import CorePair


@pytest.fixture
def make_sim() -> Callable[..., SimNetwork]:
    """``make_sim(seed, latency=..., loss=..., config=...)``: a fresh simulated network."""

    def build(
        seed: int = 0,
        *,
        latency: tuple[float, float] = (0.01, 0.1),
        loss: float = 0.0,
        config: DhtConfig | None = None,
    ) -> SimNetwork:
        return SimNetwork(seed, latency=latency, loss=loss, config=config)

    return build


@pytest.fixture
def sim() -> SimNetwork:
    """An empty simulated network, seeded: the same run every time."""
    return SimNetwork(seed=0)


@pytest.fixture
def pair() -> CorePair:
    """Two cores with default settings, ``pair.a`` and ``pair.b``, at time 0."""
    return CorePair()
