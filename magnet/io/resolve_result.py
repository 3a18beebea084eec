"""What ``magnet.io.resolve`` answers: the result, the error, progress, and why it failed.

``ResolveResult`` (the verified info dict, its piece layers and how they were had, the
sources and transports that brought them), ``ResolveError`` with its kind, the
``Progress`` snapshot for displays, and the one-line explanations of a failed resolve
(built from ``magnet.resolution``'s counts and the DHT's and trackers' own).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from magnet.resolution import Resolution, ResolutionStats, Resolved
from magnet.torrentfile import TorrentMeta, build_torrent
from magnet.uri import MagnetLink

__all__ = [
    "Progress",
    "ResolveError",
    "ResolveResult",
    "explain_failure",
    "explain_trackers",
    "failure_kind",
    "layers_outcome",
]

Addr = tuple[str, int]


class ResolveError(Exception):
    """Resolution failed; ``str(exc)`` is one line saying why."""

    def __init__(self, reason: str, kind: str, stats: ResolutionStats | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # "bad-link", "no-dht", "no-peers", "no-metadata", "bad-metadata", "timeout"
        self.kind = kind
        self.stats = stats


@dataclass(slots=True)
class Progress:
    """A snapshot for progress displays."""

    nodes_asked: int = 0
    nodes_answered: int = 0
    lookups: int = 0
    peers_found: int = 0
    peers_tried: int = 0
    peers_connected: int = 0
    metadata_bytes: int = 0
    metadata_size: int = 0


@dataclass(slots=True)
class ResolveResult:
    link: MagnetLink
    info: bytes  # the verified info dict, byte for byte as received
    meta: TorrentMeta
    peer: Addr
    source: str
    seconds: float
    trace: list[tuple[str, float]] = field(default_factory=list)  # (phase, seconds from start)
    # Where peers came from and how each source fared when the metadata arrived, e.g.
    # {"dht": "2 lookups done, 16 nodes answered", "udp://t:1/announce": "pending"}.
    sources: dict[str, str] = field(default_factory=dict)
    # BEP 52 piece layers (root -> hashes), proven against the info dict's pieces roots.
    piece_layers: dict[bytes, bytes] | None = None
    # "fetched", "not needed" (v1, or no file over one piece), "skipped" (not asked for),
    # "v1 link" (a hybrid named by its v1 hash alone: resolved as v1, as ever), or
    # "missing" (asked for, not all fetched in time: the .torrent lacks them).
    layers_status: str = "not needed"
    layer_peers: tuple[Addr, ...] = ()  # whose hashes were kept
    layers_seconds: float = 0.0  # from the metadata verified to the layers proven

    transport: str = "tcp"  # what carried the metadata: "tcp" or "utp"
    # Each peer that answered ("host:port") and the transport it answered on.
    connections: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """The .torrent holds all its author's torrent had: no piece layers missing."""
        return self.layers_status != "missing"

    def torrent(self, *, creation_date: int | None = None) -> bytes:
        """A complete .torrent: the info dict spliced in verbatim, the piece layers (v2),
        the link's trackers."""
        return build_torrent(
            self.info,
            trackers=self.link.trackers,
            web_seeds=self.link.web_seeds,
            creation_date=int(time.time()) if creation_date is None else creation_date,
            piece_layers=self.piece_layers,
        )


def layers_outcome(
    meta: TorrentMeta, resolved: Resolved, verified_at: float, asked: bool, wanted: bool
) -> dict[str, Any]:
    """The piece-layer fields of a ``ResolveResult``: ``verified_at`` is when the metadata
    was verified (monotonic), ``asked`` whether the resolution fetched layers at all."""
    from magnet.layers import layer_files

    if resolved.piece_layers is not None:
        return {
            "piece_layers": resolved.piece_layers,
            "layers_status": "fetched",
            "layer_peers": resolved.layer_peers,
            "layers_seconds": time.monotonic() - verified_at,
        }
    if not layer_files(meta):
        return {"layers_status": "not needed"}
    if not asked and wanted:
        # A hybrid found by its v1 hash: a v1 link gets what it always got (the v1 piece
        # hashes check every piece), and v1 peers may not speak BEP 52 at all.
        return {"layers_status": "v1 link"}
    return {"layers_status": "missing" if wanted else "skipped"}


def explain_trackers(urls: list[str], errors: dict[str, str]) -> str:
    parts = [f"{url}: {errors.get(url, 'no answer yet')}" for url in urls[:3]]
    more = f" (+{len(urls) - 3} more)" if len(urls) > 3 else ""
    return "trackers: " + ", ".join(parts) + more


def failure_kind(res: Resolution, dht_state: dict[str, int], use_dht: bool) -> str:
    if res.stats.known:
        return "no-metadata"
    if use_dht and dht_state["answered"] == 0:
        return "no-dht"
    return "no-peers"


def explain_failure(
    res: Resolution, dht_state: dict[str, int], use_dht: bool, timeout: float, transport: str
) -> str:
    st = res.stats
    head = f"no metadata after {timeout:g} s: "
    if st.known == 0:
        if not use_dht:
            return head + "no peers known (DHT off, no x.pe peers in the link)"
        if dht_state["answered"] == 0:
            return head + "no DHT node answered"
        return (
            head + f"{dht_state['answered']} DHT nodes answered in {dht_state['lookups']} lookups, "
            "but none knows peers for this info-hash"
        )
    why = head + res.explain()
    if transport != "auto" and st.connected == 0:
        other = "uTP" if transport == "tcp" else "TCP"
        why += f" (over {transport.upper()} only: peers that accept only {other} are missed)"
    return why
