"""HTTP(S) tracker client: announce (BEP 3) and scrape (BEP 48), fetched with aiohttp.

URLs and answers are the sans-IO `magnet.trackers.http`; `http_announce` and `http_scrape`
fetch with bounds on redirects, body size and total time. aiohttp costs 0.1-0.3 s to import,
so it is imported inside `fetch` only: merely importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from dht.addresses import AddressClass, classify
from dht.wire import Addr
from magnet.trackers.http import (
    MAX_SCRAPE_HASHES,
    announce_url,
    parse_announce,
    parse_scrape,
    read_answer,
    scrape_query_url,
    scrape_url,
)
from magnet.trackers.messages import (
    MAX_PEERS,
    AnnounceRequest,
    AnnounceResult,
    ScrapeStats,
    TrackerError,
    refused_host,
)

if TYPE_CHECKING:
    import ssl

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_REDIRECTS",
    "fetch",
    "http_announce",
    "http_scrape",
]

#: Redirects followed at most; a tracker needs none, a moved one one or two.
MAX_REDIRECTS = 3
#: Largest answer read: 1 MiB holds some 170,000 compact peers, far more than any tracker sends.
MAX_BODY_BYTES = 1 << 20
USER_AGENT = "magnetar/0.1"


# --- fetching ---------------------------------------------------------------------------


async def fetch(
    url: str,
    *,
    timeout: float,
    max_redirects: int = MAX_REDIRECTS,
    max_body: int = MAX_BODY_BYTES,
    ssl_context: ssl.SSLContext | None = None,
    accept: Callable[[Addr], bool] | None = None,
) -> tuple[int, str, bytes]:
    """GET ``url``; returns (status, reason phrase, body). Raises `TrackerError` only.

    ``ssl_context`` replaces the default certificate checks for https (a private CA).
    ``accept`` (an address policy) judges every host before we connect: the addresses a
    name resolves to (in the connector's resolver, so a name cannot resolve to one address
    when checked and another when dialled) and address literals in the URL and in every
    redirect. A tracker must not be able to point us at our own LAN or machine.
    """
    import aiohttp
    import yarl

    guard: dict[str, Any] = {}
    if accept is not None:
        first = yarl.URL(url, encoded=True)
        _check_literal(first.raw_host, first.port, accept)
        guard = _policy_session_options(accept)
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
                    **guard,
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


def _check_literal(host: str | None, port: int | None, accept: Callable[[Addr], bool]) -> None:
    """Refuse an address literal the policy refuses (names are judged after DNS)."""
    if host is None or classify(host) is AddressClass.INVALID:
        return
    if not accept((host, port or 80)):
        raise TrackerError(refused_host(host, (host, port or 80)))


def _policy_session_options(accept: Callable[[Addr], bool]) -> dict[str, Any]:
    """A connector whose resolver drops refused addresses, and a redirect hook that checks
    each ``Location``'s address literal before aiohttp follows it."""
    import aiohttp
    import yarl

    class PolicyResolver(aiohttp.abc.AbstractResolver):
        def __init__(self) -> None:
            self._inner = aiohttp.DefaultResolver()

        async def resolve(
            self, host: str, port: int = 0, family: Any = 0
        ) -> list[aiohttp.abc.ResolveResult]:
            found = await self._inner.resolve(host, port, family)
            allowed = [r for r in found if accept((r["host"], r["port"] or port or 80))]
            if found and not allowed:
                raise TrackerError(refused_host(host, (found[0]["host"], port)))
            return allowed

        async def close(self) -> None:
            await self._inner.close()

    async def on_redirect(
        session: aiohttp.ClientSession,
        ctx: object,
        params: aiohttp.TraceRequestRedirectParams,
    ) -> None:
        resp = params.response
        location = resp.headers.get("Location") or resp.headers.get("URI")
        if location:
            try:
                hop = resp.url.join(yarl.URL(location, encoded=True))
            except ValueError:
                return  # aiohttp rejects it itself
            _check_literal(hop.raw_host, hop.port, accept)

    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(on_redirect)
    return {
        "connector": aiohttp.TCPConnector(resolver=PolicyResolver()),
        "trace_configs": [trace],
    }


async def http_announce(
    url: str,
    request: AnnounceRequest,
    *,
    timeout: float,
    max_peers: int = MAX_PEERS,
    max_redirects: int = MAX_REDIRECTS,
    max_body: int = MAX_BODY_BYTES,
    ssl_context: ssl.SSLContext | None = None,
    accept: Callable[[Addr], bool] | None = None,
) -> AnnounceResult:
    """Announce to the HTTP(S) tracker at ``url``; raises `TrackerError`."""
    status, phrase, body = await fetch(
        announce_url(url, request),
        timeout=timeout,
        max_redirects=max_redirects,
        max_body=max_body,
        ssl_context=ssl_context,
        accept=accept,
    )
    return read_answer(status, phrase, body, lambda b: parse_announce(b, max_peers=max_peers))


async def http_scrape(
    url: str,
    info_hashes: Sequence[bytes],
    *,
    timeout: float,
    max_redirects: int = MAX_REDIRECTS,
    max_body: int = MAX_BODY_BYTES,
    ssl_context: ssl.SSLContext | None = None,
    accept: Callable[[Addr], bool] | None = None,
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
        accept=accept,
    )
    return read_answer(status, phrase, body, lambda b: parse_scrape(b, info_hashes))
