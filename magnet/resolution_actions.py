"""What a resolve (``magnet.resolution``) hands its driver, and what it counts, sans IO.

The actions (``Connect``, ``Send``, ``Close``, ``MetadataVerified``, ``Resolved``) a
``Resolution`` queues for its driver, and ``ResolutionStats``: the counts of what happened
to every peer, turned into one line when a resolve fails (``explain``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

__all__ = [
    "Action",
    "Addr",
    "Close",
    "Connect",
    "MetadataVerified",
    "ResolutionStats",
    "Resolved",
    "Send",
    "explain",
]

Addr = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Connect:
    addr: Addr


@dataclass(frozen=True, slots=True)
class Send:
    addr: Addr
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    addr: Addr
    reason: str


@dataclass(frozen=True, slots=True)
class Resolved:
    info: bytes  # the raw, verified info dict
    peer: Addr
    source: str  # where we learned of the peer: "dht", "x.pe", "tracker ..."
    # BEP 52 piece layers (root -> hashes), proven; None when not fetched (v1, or not asked)
    piece_layers: dict[bytes, bytes] | None = None
    layer_peers: tuple[Addr, ...] = ()  # the peers whose hashes were kept


@dataclass(frozen=True, slots=True)
class MetadataVerified:
    """The info dict verified; the piece layers phase starts (``Resolved`` ends it)."""

    result: Resolved  # what the resolve is worth without the layers


Action = Connect | Send | Close | Resolved | MetadataVerified


@dataclass(slots=True)
class ResolutionStats:
    """What happened so far: progress for a display, and reasons for a failure line."""

    known: int = 0  # distinct peers heard of
    tried: int = 0  # connections attempted
    connected: int = 0  # connections that reached a handshake
    with_metadata: int = 0  # peers whose ext handshake offered the metadata
    metadata_bytes: int = 0  # piece bytes received
    refused: int = 0  # peers the address policy refused (private, loopback, bogons)
    failures: Counter[str] | None = None

    def __post_init__(self) -> None:
        if self.failures is None:
            self.failures = Counter()


def explain(st: ResolutionStats) -> str:
    """Why there is no result yet, in one line (for the peer side of a failure)."""
    assert st.failures is not None
    reasons = ", ".join(f"{n} {why}" for why, n in st.failures.most_common(4))
    if st.known == 0:
        if st.refused:
            return (
                f"no peers found ({st.refused} on private or loopback addresses refused;"
                " allow_private opts in)"
            )
        return "no peers found"
    if st.connected == 0:
        return f"{st.known} peers found, none could be connected ({reasons or 'still trying'})"
    if st.with_metadata == 0:
        return (
            f"{st.connected} of {st.known} peers connected, none offers the metadata"
            f" ({reasons or 'still waiting'})"
        )
    return (
        f"{st.with_metadata} of {st.known} peers offered the metadata, none delivered a"
        f" verified copy ({reasons or 'still waiting'})"
    )
