"""``magnetar crawl``: a BEP 51 crawler of the Mainline DHT, with passive observation.

Cores (sans-IO: fed datagrams and ``now``):

* ``scheduler`` — ``CrawlScheduler``, the decisions: whom to ask, when, how fast.
* ``engine`` — ``CrawlEngine``: the crawl's ``dht.protocol.DhtProtocol`` cores and the
  scheduler as one object; datagrams and ``now`` in, datagrams, one timer and ``events`` out.
* ``events`` — what the engine learned, for a driver to store.
* ``health`` — periodic summaries that say why a crawl finds little.
* ``simulation`` — the engine on ``dht.simulation.SimNetwork``'s virtual clock.

Drivers (``crawl.io``): ``crawler`` (asyncio, sockets, the clock, metadata resolution) and
``store`` (``CrawlStore``, the SQLite database; its schema in its docstring; ``export``).
``run`` is the one call ``magnetar crawl`` makes. Heavy parts are imported by whoever needs
them; importing this package is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawl.io.crawler import CrawlConfig, CrawlReport

__all__ = ["run"]


def run(
    db: str,
    config: CrawlConfig,
    *,
    duration: float | None = None,
    on_health: Callable[[dict[str, object]], None] | None = None,
    on_progress: Callable[[dict[str, object]], None] | None = None,
) -> CrawlReport:
    """Crawl into the SQLite database ``db`` until ``duration`` passes or SIGINT/SIGTERM.

    See ``crawl.io.crawler.run``: raises ``DatabaseError`` (cannot open ``db``) or
    ``CrawlError`` (the crawl cannot run), each with a one-line reason.
    """
    from crawl.io.crawler import run as run_crawl

    return run_crawl(db, config, duration=duration, on_health=on_health, on_progress=on_progress)
