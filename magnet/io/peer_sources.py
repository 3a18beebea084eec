"""Where a resolve (``magnet.io.resolve``) gets peers: the DHT, trackers, and whom it may dial.

``dht_source`` repeats get_peers lookups while nothing resolves (and says when the DHT
cannot be reached: ``DhtDown``, ``give_up_if_alone``), ``tracker_source`` announces once to
one tracker; both hand the peers they find to the fetcher. ``peer_policy`` and
``peer_filter`` decide which peers and tracker hosts may be connected to at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dht.addresses import AddressClass, AddressPolicy, classify
from magnet.io.resolve_result import Progress, ResolveError, explain_trackers
from magnet.uri import MagnetLink

if TYPE_CHECKING:
    from dht.io.node import Node
    from magnet.io.resolve import Fetcher

__all__ = [
    "MAX_TRACKERS",
    "TRACKER_PORT",
    "TRACKER_TIMEOUT_S",
    "DhtDown",
    "dht_source",
    "give_up_if_alone",
    "peer_filter",
    "peer_policy",
    "tracker_source",
]

Addr = tuple[str, int]

log = logging.getLogger("magnet.io.resolve")  # the resolve's log, whichever part speaks


class DhtDown:
    """Why the DHT cannot be reached (None while it can), and whom to tell when that
    changes: a resolve with no other source of peers then ends at once."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.on_change: Callable[[], None] = lambda: None

    def set(self, reason: str | None) -> None:
        if reason != self.reason:
            self.reason = reason
            self.on_change()


def give_up_if_alone(
    fetcher: Fetcher,
    dht_down: DhtDown,
    tasks: list[asyncio.Task[None]],
    tracker_urls: list[str],
    tracker_errors: dict[str, str],
) -> None:
    """End the resolve with ``no-dht`` when the DHT is unreachable and nothing else can bring
    a peer: none known, and every tracker has answered (or failed)."""
    if dht_down.reason is None or fetcher.done.done() or fetcher.res.stats.known:
        return
    if any(not task.done() for task in tasks[: len(tracker_urls)]):
        return
    reason = dht_down.reason
    if tracker_urls:
        reason += "; " + explain_trackers(tracker_urls, tracker_errors)
    fetcher.done.set_exception(ResolveError(reason, "no-dht", fetcher.res.stats))


async def dht_source(
    node: Node,
    key: bytes,
    fetcher: Fetcher,
    progress: Progress,
    dht_state: dict[str, int],
    mark: Callable[[str], None],
    dht_down: DhtDown,
) -> None:
    """Repeated get_peers lookups until cancelled: swarms announce every few minutes, so a
    lookup that found nothing may find peers a little later. While the routing table is
    empty each lookup starts from the routers; if none resolves, or the lookup from them
    reaches nobody, ``dht_down`` says so (and is cleared when a later one succeeds)."""
    from dht.io.routers import resolve_routers

    seeds: list[Addr] = []
    if len(node.core.routing) == 0:
        seeds = await resolve_routers(node.routers)
        if not seeds:
            dht_down.set(_no_router_resolved(node.routers))
    mark("dht lookup started")
    pause = 1.0
    first_peer = True
    while True:
        stream = node.get_peers(key, seeds=seeds)
        try:
            async for peer in stream:
                if first_peer:
                    mark("first peer from dht")
                    first_peer = False
                fetcher.add_peers([peer], "dht")
        finally:
            stream.cancel()
        result = stream.result
        dht_state["lookups"] += 1
        progress.lookups = dht_state["lookups"]
        if result is not None:
            dht_state["asked"] += result.queried
            dht_state["answered"] += result.replied
            progress.nodes_asked = dht_state["asked"]
            progress.nodes_answered = dht_state["answered"]
            if result.replied or len(node.core.routing):
                dht_down.set(None)
            elif seeds:
                dht_down.set(f"no DHT node answered the bootstrap ({len(seeds)} asked)")
        if len(node.core.routing) == 0:
            seeds = await resolve_routers(node.routers)
            if not seeds:
                dht_down.set(_no_router_resolved(node.routers))
        await asyncio.sleep(pause)
        pause = min(pause * 2, 15.0)


def _no_router_resolved(routers: Sequence[Addr]) -> str:
    if not routers:
        return "no DHT node to ask: no bootstrap router given"
    return f"no DHT node to ask: none of the {len(routers)} bootstrap routers resolved"


MAX_TRACKERS = 20
TRACKER_TIMEOUT_S = 15.0
TRACKER_PORT = 6881  # what we announce: trackers want a port; we do not listen for pieces


async def tracker_source(
    url: str,
    key: bytes,
    peer_id: bytes,
    fetcher: Fetcher,
    errors: dict[str, str],
    mark: Callable[[str], None],
    policy: AddressPolicy,
) -> None:
    """One announce to one tracker, its peers into the pool; a failure is only recorded.
    The tracker's host passes ``policy`` after DNS (and after every redirect)."""
    from magnet.io.trackers import TrackerError, announce

    try:
        result = await announce(
            url,
            key,
            peer_id=peer_id,
            port=TRACKER_PORT,
            timeout=TRACKER_TIMEOUT_S,
            accept=policy.acceptable,
        )
    except TrackerError as exc:
        errors[url] = exc.reason
        return
    except Exception as exc:  # the one boundary for this tracker's answer: record, go on
        log.exception("tracker %s: unexpected error", url)
        errors[url] = f"unexpected error: {type(exc).__name__}"
        return
    errors[url] = f"{len(result.peers)} peers"
    if result.peers:
        mark(f"peers from tracker {url}")
        fetcher.add_peers(result.peers, f"tracker {url}")


def peer_policy(
    link: MagnetLink,
    *,
    node: Node | None = None,
    bootstrap: Sequence[Addr] | None = None,
    allow_private: bool = False,
) -> AddressPolicy:
    """Which peers and tracker hosts a resolve may connect to.

    ``allow_private`` opens private and loopback addresses. Otherwise the DHT node's network
    decides, as ``dht.io.node`` does for nodes (``AddressPolicy.for_network``: its bind
    address and its bootstrap addresses), widened by the link's own ``x.pe`` peers: a user
    who hands us a loopback or LAN peer, or bootstraps from one, is on a lab network.
    """
    if allow_private:
        return AddressPolicy(allow_private=True, allow_loopback=True)
    if node is not None:
        host, routers = node.host, tuple(node.routers)
    else:
        host, routers = "0.0.0.0", tuple(bootstrap or ())
    return AddressPolicy.for_network(host, (*routers, *link.peers))


def peer_filter(link: MagnetLink, policy: AddressPolicy) -> Callable[[Addr], bool]:
    """``policy`` for peers, except host names the link itself names in ``x.pe``: the user
    chose those, and the policy judges addresses, not names (DHT peers are addresses)."""
    named = frozenset(p for p in link.peers if not _is_ip(p[0]))
    if not named:
        return policy.acceptable
    return lambda addr: addr in named or policy.acceptable(addr)


def _is_ip(host: str) -> bool:
    return classify(host) is not AddressClass.INVALID
