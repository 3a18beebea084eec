"""Tracker URLs: which transport a URL names, where it points, and how long each side waits.

``parse_tracker_url`` checks a tracker URL once and says how to reach it: ``udp://`` speaks
BEP 15 (with the path and query sent as BEP 41 URLData), ``http://`` and ``https://`` speak
BEP 3. Anything else, or a URL without a host (or a UDP one without a port), is a
``TrackerError`` with one line saying why. No IO here; the asyncio side is
``magnet.io.trackers``.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from magnet.trackers.messages import TrackerError

__all__ = ["GRACE_S", "TrackerUrl", "parse_tracker_url"]

#: Of two time guards on one request, the one that should not speak waits this much longer.
#: For UDP the core's reason ("timed out after 3 attempts", or the tracker's words) says more
#: than the caller's cap; for HTTP the caller's cap, which also covers importing aiohttp,
#: speaks.
GRACE_S = 0.25


class TrackerUrl:
    """A checked tracker URL. ``url`` is the text given (HTTP requests are built from it).

    A plain slotted class, not a dataclass: building one costs a millisecond at import, and
    ``magnetar resolve`` is timed from process start.
    """

    __slots__ = ("host", "path", "port", "query", "scheme", "url")

    def __init__(
        self,
        url: str,
        scheme: Literal["udp", "http", "https"],
        host: str,
        port: int | None,  # always set for UDP; None for HTTP(S) means the scheme's default
        path: str,
        query: str,
    ) -> None:
        self.url = url
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.query = query

    @property
    def is_udp(self) -> bool:
        return self.scheme == "udp"

    @property
    def url_data(self) -> bytes:
        """Path and query, for BEP 41 URLData (a UDP tracker may route by them)."""
        data = self.path + (f"?{self.query}" if self.query else "")
        return data.encode("utf-8", errors="replace")

    @property
    def outer_grace_s(self) -> float:
        """Added to the caller's cap on the whole call (see ``GRACE_S``)."""
        return GRACE_S if self.is_udp else 0.0

    @property
    def inner_grace_s(self) -> float:
        """Added to the transport's own time limit (see ``GRACE_S``)."""
        return 0.0 if self.is_udp else GRACE_S


def parse_tracker_url(url: str) -> TrackerUrl:
    """Check ``url`` and split it; raises ``TrackerError`` with a one-line reason."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise TrackerError(f"bad tracker URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("udp", "http", "https"):
        raise TrackerError(
            f"unsupported scheme {scheme!r}" if scheme else f"bad tracker URL {url!r}"
        )
    if not parts.hostname:
        raise TrackerError(f"bad tracker URL {url!r}: no host")
    if scheme == "udp" and port is None:
        raise TrackerError(f"bad tracker URL {url!r}: no port")
    return TrackerUrl(
        url=url,
        scheme=scheme,  # type: ignore[arg-type]  # checked just above
        host=parts.hostname,
        port=port,
        path=parts.path,
        query=parts.query,
    )
