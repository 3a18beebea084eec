"""What is asked of a tracker and what it answers, whatever the transport.

BEP 3 names the announce fields and events, BEP 15 carries the same fields over UDP,
BEP 23 and BEP 7 pack peers as 6-byte (IPv4) and 18-byte (IPv6) compact strings, BEP 48
gives scrape counts. `magnet.trackers.udp` and `magnet.trackers.http` both speak in these
types, and every failure a caller sees is one `TrackerError` carrying a one-line reason.
No IO here, and nothing costly to import.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from dht.wire import Addr, unpack_addr

__all__ = [
    "MAX_PEERS",
    "UNKNOWN_LEFT",
    "AnnounceEvent",
    "AnnounceRequest",
    "AnnounceResult",
    "ScrapeStats",
    "TrackerError",
    "decode_compact_peers",
    "refused_host",
    "tracker_text",
]

#: Peers kept from one answer by default; a tracker may send more, the rest are not decoded.
MAX_PEERS = 1000

#: ``left`` when the size is not known yet (a magnet before its metadata): any value above 0
#: marks us a leecher, and some trackers hand seeds only to leechers. 16 KiB is what
#: libtorrent used to report in the same situation.
UNKNOWN_LEFT = 16 * 1024

#: Longest tracker-supplied text (failure reason, warning) kept in a reason line.
MAX_TEXT_CHARS = 200


class AnnounceEvent(enum.IntEnum):
    """BEP 3 ``event``; the values are BEP 15's numbers, the names are HTTP's words."""

    NONE = 0
    COMPLETED = 1
    STARTED = 2
    STOPPED = 3


class TrackerError(Exception):
    """A tracker could not be used: ``reason`` is one human line.

    Examples: ``tracker said: unregistered torrent``, ``timed out after 3 attempts``,
    ``bad response: not bencoded``, ``unsupported scheme 'wss'``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refused_host(host: str, addr: tuple[str, int]) -> str:
    """The reason for a tracker host the address policy refused (private, loopback)."""
    shown = addr[0] if host == addr[0] else f"{host} ({addr[0]})"
    return (
        f"tracker host {shown} is a private or loopback address: refused"
        " (allow_private opts in)"
    )


@dataclass(frozen=True, slots=True)
class AnnounceRequest:
    """One announce, as BEP 3 and BEP 15 define its fields.

    ``num_want`` -1 leaves the count to the tracker (BEP 15's default). ``key`` is a 32-bit
    value that lets a tracker recognise us across address changes. ``tracker_id`` is echoed
    back to HTTP trackers that handed one out (UDP has no such field).
    """

    info_hash: bytes
    peer_id: bytes
    port: int
    uploaded: int = 0
    downloaded: int = 0
    left: int = UNKNOWN_LEFT
    event: AnnounceEvent = AnnounceEvent.STARTED
    key: int = 0
    num_want: int = 200
    tracker_id: bytes | None = None

    def __post_init__(self) -> None:
        # Caller mistakes, raised at once rather than sent as a malformed packet.
        if len(self.info_hash) != 20:
            raise ValueError(f"info_hash must be 20 bytes, not {len(self.info_hash)}")
        if len(self.peer_id) != 20:
            raise ValueError(f"peer_id must be 20 bytes, not {len(self.peer_id)}")
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port {self.port} out of range")
        if not 0 <= self.key <= 0xFFFFFFFF:
            raise ValueError("key must fit in 32 bits")
        if not -1 <= self.num_want <= 0x7FFFFFFF:
            raise ValueError(f"num_want {self.num_want} out of range")
        for name in ("uploaded", "downloaded", "left"):
            if not 0 <= getattr(self, name) < 1 << 63:
                raise ValueError(f"{name} out of range")


@dataclass(frozen=True, slots=True)
class AnnounceResult:
    """What a tracker answered to an announce.

    ``seeders``/``leechers`` are None when an HTTP tracker left out
    ``complete``/``incomplete``; ``warning`` is BEP 3's unofficial ``warning message``.
    """

    peers: list[Addr]
    interval: int
    seeders: int | None = None
    leechers: int | None = None
    warning: str | None = None
    min_interval: int | None = None
    tracker_id: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ScrapeStats:
    """Counts for one torrent (BEP 48 ``complete``/``downloaded``/``incomplete``)."""

    seeders: int
    completed: int
    leechers: int


def decode_compact_peers(data: bytes, *, v6: bool, limit: int) -> list[Addr]:
    """Peers of a compact string: 6-byte (BEP 23) or 18-byte (BEP 7, BEP 15 over IPv6) entries.

    Only the first ``limit`` whole entries are looked at, so a huge list costs no more than a
    capped one; a partial entry at the end is ignored. Port 0 (not connectable) and repeats
    are dropped.
    """
    stride = 18 if v6 else 6
    end = min(len(data) // stride, max(limit, 0)) * stride
    seen: dict[Addr, None] = {}
    for i in range(0, end, stride):
        addr = unpack_addr(data[i : i + stride])
        if addr[1]:
            seen[addr] = None
    return list(seen)


def tracker_text(raw: bytes) -> str:
    """A tracker's free text (failure reason, warning, BEP 15 error) as one printable line."""
    text = raw.decode("utf-8", errors="replace")
    # Control characters and newlines would break the one-line promise of TrackerError.
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(text) > MAX_TEXT_CHARS:
        text = text[: MAX_TEXT_CHARS - 1] + "…"
    return text or "(no message)"
