"""HTTP(S) tracker protocol, sans IO: URLs to GET and answers to read (BEP 3, 7, 23, 48).

Announces ask for compact peers (BEP 23) yet also read the older list of dicts, and IPv6
peers from ``peers6`` (BEP 7); answers may carry ``failure reason``, ``warning message``,
``interval``/``min interval``, ``complete``/``incomplete`` and ``tracker id``. BEP 48 turns an
announce URL into a scrape URL. Every failure is a `TrackerError` with a one-line reason.
The fetching (aiohttp, with bounds on redirects, size and time) is `magnet.io.http_tracker`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote_from_bytes, urlsplit, urlunsplit

import bencode2

from dht.wire import Addr
from magnet.bencode_spans import value_end
from magnet.trackers.messages import (
    MAX_PEERS,
    AnnounceEvent,
    AnnounceRequest,
    AnnounceResult,
    ScrapeStats,
    TrackerError,
    decode_compact_peers,
    tracker_text,
)

__all__ = [
    "DEFAULT_INTERVAL_S",
    "MAX_SCRAPE_HASHES",
    "announce_url",
    "parse_announce",
    "parse_scrape",
    "read_answer",
    "scrape_query_url",
    "scrape_url",
]

#: Re-announce interval assumed when a tracker that sent peers forgot ``interval``.
DEFAULT_INTERVAL_S = 1800
#: Info hashes per scrape request: each costs 60 URL characters, and URLs past ~4 KB are
#: refused by some servers.
MAX_SCRAPE_HASHES = 50

_T = TypeVar("_T")


# --- URLs -------------------------------------------------------------------------------


def _with_query(url: str, params: Sequence[tuple[str, bytes | str]]) -> str:
    """``url`` plus ``params``, each value percent-encoded byte by byte.

    Every byte outside RFC 3986's unreserved set is escaped (``quote_from_bytes`` with no
    safe characters keeps only letters, digits and ``-._~``), which is what trackers expect
    of the binary ``info_hash`` and ``peer_id``. A query the URL already has (a passkey) is
    kept; the fragment is not sent.
    """
    base = url.partition("#")[0]
    query = "&".join(
        f"{name}={quote_from_bytes(v if isinstance(v, bytes) else v.encode(), safe='')}"
        for name, v in params
    )
    if "?" not in base:
        return f"{base}?{query}"
    return base + ("" if base.endswith(("?", "&")) else "&") + query


def announce_url(url: str, request: AnnounceRequest) -> str:
    """The GET URL of a BEP 3 announce asking for compact peers (BEP 23)."""
    params: list[tuple[str, bytes | str]] = [
        ("info_hash", request.info_hash),
        ("peer_id", request.peer_id),
        ("port", str(request.port)),
        ("uploaded", str(request.uploaded)),
        ("downloaded", str(request.downloaded)),
        ("left", str(request.left)),
        ("compact", "1"),
        ("key", f"{request.key:08x}"),
    ]
    if request.num_want >= 0:
        params.append(("numwant", str(request.num_want)))
    if request.event is not AnnounceEvent.NONE:
        params.append(("event", request.event.name.lower()))
    if request.tracker_id is not None:
        params.append(("trackerid", request.tracker_id))
    return _with_query(url, params)


def scrape_url(url: str) -> str | None:
    """BEP 48: the scrape URL of an announce URL, or None if the tracker has none.

    The last path segment must start with ``announce``; that word becomes ``scrape``
    (``/x/announce.php?k=1`` -> ``/x/scrape.php?k=1``).
    """
    parts = urlsplit(url)
    head, slash, last = parts.path.rpartition("/")
    if not slash or not last.startswith("announce"):
        return None
    path = f"{head}/scrape{last[len('announce') :]}"
    return urlunsplit(parts._replace(path=path, fragment=""))


def scrape_query_url(url: str, info_hashes: Sequence[bytes]) -> str:
    """A scrape URL asking for ``info_hashes`` (one ``info_hash`` parameter each)."""
    return _with_query(url, [("info_hash", h) for h in info_hashes])


# --- answers ----------------------------------------------------------------------------

MAX_BODY_DEPTH = 16


def _decode(body: bytes) -> dict[bytes, Any]:
    # Some trackers end the body with a newline; nothing else is forgiven.
    for candidate in dict.fromkeys((body, body.rstrip(b" \t\r\n"))):
        try:
            # The front door: nesting is checked without recursion before bencode2 builds
            # anything (an answer needs depth 3; garbage nested 1,000 deep costs ms there).
            value_end(candidate, max_depth=MAX_BODY_DEPTH, sorted_keys=False)
            value = bencode2.bdecode(candidate)
            break
        except (bencode2.BencodeDecodeError, ValueError):
            # ValueError: a BencodeError from the front door, or an integer past Python's
            # digit limit (a 5,000-digit "interval")
            continue
    else:
        raise TrackerError("bad response: not bencoded")
    if not isinstance(value, dict):
        raise TrackerError("bad response: not a bencoded dictionary")
    return value


def _failure(answer: dict[bytes, Any]) -> None:
    reason = answer.get(b"failure reason")
    if reason is not None:
        text = tracker_text(reason) if isinstance(reason, bytes) else "(unreadable reason)"
        raise TrackerError(f"tracker said: {text}")


def _count(value: Any) -> int | None:
    """A non-negative integer field, or None if absent or nonsense."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 63:
        return value
    return None


def _dict_peers(entries: list[Any], limit: int) -> list[Addr]:
    """Peers of a non-compact answer: dicts with ``ip`` (an address literal) and ``port``."""
    out: list[Addr] = []
    for entry in entries:
        if len(out) >= limit:
            break
        if not isinstance(entry, dict):
            continue
        ip, port = entry.get(b"ip"), entry.get(b"port")
        if not isinstance(ip, bytes) or not isinstance(port, int) or not 0 < port <= 0xFFFF:
            continue
        try:
            # Host names are allowed by BEP 3 but would need a lookup per peer: skipped.
            host = ipaddress.ip_address(ip.decode("ascii")).compressed
        except (UnicodeDecodeError, ValueError):
            continue
        out.append((host, port))
    return out


def parse_announce(body: bytes, *, max_peers: int = MAX_PEERS) -> AnnounceResult:
    """Read an announce answer; raises `TrackerError` for a failure or nonsense.

    ``peers`` may be compact (BEP 23) or a list of dicts (BEP 3); ``peers6`` is compact
    IPv6 (BEP 7). At most ``max_peers`` are kept, IPv4 first, repeats dropped.
    """
    answer = _decode(body)
    _failure(answer)
    peers_v4, peers_v6 = answer.get(b"peers"), answer.get(b"peers6")
    interval = _count(answer.get(b"interval"))
    if interval is None and peers_v4 is None and peers_v6 is None:
        raise TrackerError("bad response: no peers and no interval")

    peers: dict[Addr, None] = {}
    if isinstance(peers_v4, bytes):
        peers.update(dict.fromkeys(decode_compact_peers(peers_v4, v6=False, limit=max_peers)))
    elif isinstance(peers_v4, list):
        peers.update(dict.fromkeys(_dict_peers(peers_v4, max_peers)))
    elif peers_v4 is not None:
        raise TrackerError("bad response: peers is neither a string nor a list")
    if isinstance(peers_v6, bytes) and len(peers) < max_peers:
        left = max_peers - len(peers)
        peers.update(dict.fromkeys(decode_compact_peers(peers_v6, v6=True, limit=left)))

    warning = answer.get(b"warning message")
    tracker_id = answer.get(b"tracker id")
    return AnnounceResult(
        peers=list(peers)[:max_peers],
        interval=DEFAULT_INTERVAL_S if interval is None else interval,
        seeders=_count(answer.get(b"complete")),
        leechers=_count(answer.get(b"incomplete")),
        warning=tracker_text(warning) if isinstance(warning, bytes) else None,
        min_interval=_count(answer.get(b"min interval")),
        tracker_id=tracker_id if isinstance(tracker_id, bytes) and tracker_id else None,
    )


def parse_scrape(body: bytes, info_hashes: Sequence[bytes]) -> dict[bytes, ScrapeStats]:
    """Read a BEP 48 scrape answer, keeping only the torrents asked about."""
    answer = _decode(body)
    _failure(answer)
    files = answer.get(b"files")
    if not isinstance(files, dict):
        raise TrackerError("bad response: no files dictionary")
    out: dict[bytes, ScrapeStats] = {}
    for info_hash in info_hashes:
        entry = files.get(info_hash)
        if isinstance(entry, dict):
            out[info_hash] = ScrapeStats(
                seeders=_count(entry.get(b"complete")) or 0,
                completed=_count(entry.get(b"downloaded")) or 0,
                leechers=_count(entry.get(b"incomplete")) or 0,
            )
    return out


def read_answer(status: int, phrase: str, body: bytes, parse: Callable[[bytes], _T]) -> _T:
    """``parse(body)`` of a 200 answer; otherwise the tracker's failure reason, if it gave
    one, or the status line, as `TrackerError`."""
    if status == 200:
        return parse(body)
    # Some trackers send their failure reason with a 4xx/5xx status: those words are worth
    # more than the status line.
    try:
        _failure(_decode(body))
    except TrackerError as exc:
        if exc.reason.startswith("tracker said:"):
            raise
    raise TrackerError(f"bad response: HTTP {status} {phrase}".rstrip())
