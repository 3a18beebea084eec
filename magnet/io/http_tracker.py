"""HTTP(S) tracker client: announce (BEP 3) and scrape (BEP 48), fetched with aiohttp.

Announces ask for compact peers (BEP 23) yet also read the older list of dicts, and IPv6
peers from ``peers6`` (BEP 7); answers may carry ``failure reason``, ``warning message``,
``interval``/``min interval``, ``complete``/``incomplete`` and ``tracker id``. Building URLs
and reading answers are plain functions; `http_announce` and `http_scrape` fetch with bounds
on redirects, body size and total time. aiohttp costs 0.1-0.3 s to import, so it is
imported inside `fetch` only: merely importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote_from_bytes, urlsplit, urlunsplit

import bencode2

from dht.wire import Addr
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

if TYPE_CHECKING:
    import ssl

__all__ = [
    "DEFAULT_INTERVAL_S",
    "MAX_BODY_BYTES",
    "MAX_REDIRECTS",
    "MAX_SCRAPE_HASHES",
    "announce_url",
    "fetch",
    "http_announce",
    "http_scrape",
    "parse_announce",
    "parse_scrape",
    "scrape_query_url",
    "scrape_url",
]

#: Redirects followed at most; a tracker needs none, a moved one one or two.
MAX_REDIRECTS = 3
#: Largest answer read: 1 MiB holds some 170,000 compact peers, far more than any tracker sends.
MAX_BODY_BYTES = 1 << 20
#: Re-announce interval assumed when a tracker that sent peers forgot ``interval``.
DEFAULT_INTERVAL_S = 1800
#: Info hashes per scrape request: each costs 60 URL characters, and URLs past ~4 KB are
#: refused by some servers.
MAX_SCRAPE_HASHES = 50
USER_AGENT = "magnetar/0.1"

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


def _decode(body: bytes) -> dict[bytes, Any]:
    # Some trackers end the body with a newline; nothing else is forgiven.
    for candidate in dict.fromkeys((body, body.rstrip(b" \t\r\n"))):
        try:
            value = bencode2.bdecode(candidate)
            break
        except bencode2.BencodeDecodeError:
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


# --- fetching ---------------------------------------------------------------------------


async def fetch(
    url: str,
    *,
    timeout: float,
    max_redirects: int = MAX_REDIRECTS,
    max_body: int = MAX_BODY_BYTES,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[int, str, bytes]:
    """GET ``url``; returns (status, reason phrase, body). Raises `TrackerError` only.

    ``ssl_context`` replaces the default certificate checks for https (a private CA).
    """
    import aiohttp
    import yarl

    try:
        async with asyncio.timeout(timeout):
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    # No compression: trackers rarely use it, and a body inflated by aiohttp
                    # would reach our size cap only after a zip bomb had gone off in memory.
                    headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
                    auto_decompress=False,
                    # A redirect's Location must be followed as written: re-quoting turns
                    # an escaped info_hash byte such as %28 back into "(".
                    requote_redirect_url=False,
                ) as session,
                # encoded=True: the query is already percent-encoded byte by byte and must
                # reach the tracker as it is, not re-quoted.
                # aiohttp gives up on the redirect that reaches its max_redirects (and 0
                # means no limit), hence the +1 and the switch.
                session.get(
                    yarl.URL(url, encoded=True),
                    allow_redirects=max_redirects > 0,
                    max_redirects=max_redirects + 1,
                    ssl=ssl_context if ssl_context is not None else True,
                ) as resp,
            ):
                if resp.content_length is not None and resp.content_length > max_body:
                    raise TrackerError(f"bad response: body over {max_body} bytes")
                body = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > max_body:
                        raise TrackerError(f"bad response: body over {max_body} bytes")
                return resp.status, resp.reason or "", bytes(body)
    except TimeoutError:
        raise TrackerError(f"timed out after {timeout:g} s") from None
    except aiohttp.TooManyRedirects:
        raise TrackerError(f"bad response: more than {max_redirects} redirects") from None
    except aiohttp.RedirectClientError as exc:
        raise TrackerError(f"bad response: redirect to a non-HTTP(S) URL {exc}") from None
    except aiohttp.InvalidURL as exc:
        raise TrackerError(f"bad tracker URL: {exc.url}") from None
    except aiohttp.ClientSSLError as exc:
        why = " ".join(str(exc.os_error).split())
        raise TrackerError(f"TLS with {exc.host}:{exc.port} failed: {why}") from None
    except aiohttp.ClientConnectorError as exc:
        why = exc.os_error.strerror or str(exc.os_error)
        raise TrackerError(f"cannot connect to {exc.host}:{exc.port}: {why}") from None
    except aiohttp.ClientPayloadError:
        raise TrackerError("bad response: body cut short or malformed") from None
    except aiohttp.ServerDisconnectedError:
        raise TrackerError("connection closed before an answer") from None
    except aiohttp.ClientResponseError as exc:
        raise TrackerError(f"bad response: {' '.join(exc.message.split())}") from None
    except aiohttp.ClientError as exc:
        raise TrackerError(
            f"HTTP error: {' '.join(str(exc).split()) or type(exc).__name__}"
        ) from None


def _answer(status: int, phrase: str, body: bytes, parse: Callable[[bytes], _T]) -> _T:
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


async def http_announce(
    url: str,
    request: AnnounceRequest,
    *,
    timeout: float,
    max_peers: int = MAX_PEERS,
    max_redirects: int = MAX_REDIRECTS,
    max_body: int = MAX_BODY_BYTES,
    ssl_context: ssl.SSLContext | None = None,
) -> AnnounceResult:
    """Announce to the HTTP(S) tracker at ``url``; raises `TrackerError`."""
    status, phrase, body = await fetch(
        announce_url(url, request),
        timeout=timeout,
        max_redirects=max_redirects,
        max_body=max_body,
        ssl_context=ssl_context,
    )
    return _answer(status, phrase, body, lambda b: parse_announce(b, max_peers=max_peers))


async def http_scrape(
    url: str,
    info_hashes: Sequence[bytes],
    *,
    timeout: float,
    max_redirects: int = MAX_REDIRECTS,
    max_body: int = MAX_BODY_BYTES,
    ssl_context: ssl.SSLContext | None = None,
) -> dict[bytes, ScrapeStats]:
    """Scrape up to `MAX_SCRAPE_HASHES` torrents from the tracker announcing at ``url``."""
    if not 1 <= len(info_hashes) <= MAX_SCRAPE_HASHES:
        raise ValueError(f"scrape takes 1 to {MAX_SCRAPE_HASHES} info hashes")
    target = scrape_url(url)
    if target is None:
        raise TrackerError("tracker has no scrape URL (its path does not end in 'announce')")
    status, phrase, body = await fetch(
        scrape_query_url(target, info_hashes),
        timeout=timeout,
        max_redirects=max_redirects,
        max_body=max_body,
        ssl_context=ssl_context,
    )
    return _answer(status, phrase, body, lambda b: parse_scrape(b, info_hashes))
