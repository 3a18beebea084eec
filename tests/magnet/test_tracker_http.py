"""HTTP tracker client: URL building and answer parsing alone, then fetches from fake trackers.

The fake tracker is an aiohttp.web application on 127.0.0.1 with honest and hostile routes
(garbage, failure, slow, huge, redirect chains and loops, lying fields); two raw asyncio
servers cover what aiohttp.web will not do (a body cut short, a server that never answers).
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from ipaddress import ip_address
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote_to_bytes, urlsplit

import bencode2
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from magnet.io.http_tracker import http_announce
from magnet.io.trackers import (
    AnnounceEvent,
    AnnounceRequest,
    ScrapeStats,
    TrackerError,
    announce,
    scrape,
)
from magnet.trackers.http import (
    DEFAULT_INTERVAL_S,
    announce_url,
    parse_announce,
    parse_scrape,
    scrape_query_url,
    scrape_url,
)

T = TypeVar("T")
IH = bytes(range(0, 200, 10))  # 20 bytes, most of them needing escapes
PEER_ID = b"-MG0001-~._-abcdefgh"
UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def run(coro: Awaitable[T], timeout: float = 20.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def request(**kw: Any) -> AnnounceRequest:
    fields: dict[str, Any] = {"info_hash": IH, "peer_id": PEER_ID, "port": 6881}
    fields.update(kw)
    return AnnounceRequest(**fields)


def raw_query(url: str) -> dict[str, bytes]:
    """Query parameters of ``url`` decoded to bytes, checking every escape on the way."""
    out = {}
    for part in urlsplit(url).query.split("&"):
        name, _, value = part.partition("=")
        i = 0
        while i < len(value):
            if value[i] == "%":
                byte = int(value[i + 1 : i + 3], 16)
                assert byte not in UNRESERVED, f"{name}: unreserved byte {byte:#x} was escaped"
                i += 3
            else:
                assert ord(value[i]) in UNRESERVED, f"{name}: {value[i]!r} not escaped"
                i += 1
        out[name] = unquote_to_bytes(value)
    return out


# --- URLs -------------------------------------------------------------------------------


def test_announce_url_has_every_field_escaped_byte_by_byte() -> None:
    url = announce_url(
        "http://t.example/announce",
        request(uploaded=1, downloaded=2, left=3, key=0xABC, num_want=50, tracker_id=b"t 1"),
    )
    assert url.startswith("http://t.example/announce?info_hash=%00%0A%14%1E")
    assert raw_query(url) == {
        "info_hash": IH,
        "peer_id": PEER_ID,
        "port": b"6881",
        "uploaded": b"1",
        "downloaded": b"2",
        "left": b"3",
        "compact": b"1",
        "key": b"00000abc",
        "numwant": b"50",
        "event": b"started",
        "trackerid": b"t 1",
    }


def test_announce_url_keeps_an_existing_query_and_drops_the_fragment() -> None:
    url = announce_url("http://t.example/a?passkey=x%20y#frag", request(event=AnnounceEvent.NONE))
    assert url.startswith("http://t.example/a?passkey=x%20y&info_hash=")
    assert "#" not in url and "event=" not in url
    assert "numwant=" not in announce_url("http://t/a", request(num_want=-1))


@given(info_hash=st.binary(min_size=20, max_size=20), peer_id=st.binary(min_size=20, max_size=20))
def test_any_binary_id_round_trips_through_the_query(info_hash: bytes, peer_id: bytes) -> None:
    url = announce_url("http://t/announce", request(info_hash=info_hash, peer_id=peer_id))
    fields = raw_query(url)
    assert fields["info_hash"] == info_hash and fields["peer_id"] == peer_id


@pytest.mark.parametrize(
    ("announce", "expected"),
    [  # BEP 48's table
        ("http://example.com/announce", "http://example.com/scrape"),
        ("http://example.com/x/announce", "http://example.com/x/scrape"),
        ("http://example.com/announce.php", "http://example.com/scrape.php"),
        ("http://example.com/a", None),
        ("http://example.com/announce?x2%0644", "http://example.com/scrape?x2%0644"),
        ("http://example.com/announce?x=2/4", "http://example.com/scrape?x=2/4"),
        ("http://example.com/x%064announce", None),
        ("http://example.com", None),
    ],
)
def test_scrape_url(announce: str, expected: str | None) -> None:
    assert scrape_url(announce) == expected


def test_scrape_query_repeats_info_hash() -> None:
    url = scrape_query_url("http://t/scrape?k=1", [b"\x01" * 20, b"\x02" * 20])
    assert parse_qsl(urlsplit(url).query, encoding="latin-1") == [
        ("k", "1"),
        ("info_hash", "\x01" * 20),
        ("info_hash", "\x02" * 20),
    ]


# --- answers ----------------------------------------------------------------------------


def b(value: Any) -> bytes:
    return bytes(bencode2.bencode(value))


def test_compact_answer() -> None:
    body = b(
        {
            "interval": 1800,
            "min interval": 900,
            "complete": 3,
            "incomplete": 4,
            "peers": bytes([10, 0, 0, 1, 0x1A, 0xE1, 10, 0, 0, 2, 0x1A, 0xE2]),
            "peers6": socket.inet_pton(socket.AF_INET6, "2001:db8::2") + b"\x00\x50",
            "tracker id": b"abc",
            "warning message": b"slow down",
        }
    )
    result = parse_announce(body)
    assert result.peers == [("10.0.0.1", 6881), ("10.0.0.2", 6882), ("2001:db8::2", 80)]
    assert (result.interval, result.min_interval) == (1800, 900)
    assert (result.seeders, result.leechers) == (3, 4)
    assert result.warning == "slow down" and result.tracker_id == b"abc"


def test_dict_peers_answer_skips_what_is_not_an_address() -> None:
    body = b(
        {
            "interval": 60,
            "peers": [
                {"ip": b"10.0.0.1", "peer id": b"x" * 20, "port": 6881},
                {"ip": b"::1", "port": 80},
                {"ip": b"tracker.example", "port": 80},  # a name: not looked up
                {"ip": b"10.0.0.3", "port": 0},
                {"ip": b"10.0.0.4", "port": 70000},
                {"ip": 5, "port": 1},
                b"not a dict",
            ],
        }
    )
    assert parse_announce(body).peers == [("10.0.0.1", 6881), ("::1", 80)]


def test_peer_cap_counts_both_families() -> None:
    v4 = b"".join(bytes([10, 0, 0, i, 0, 1]) for i in range(1, 101))
    v6 = b"".join(bytes(15) + bytes([i, 0, 1]) for i in range(1, 101))
    result = parse_announce(b({"interval": 1, "peers": v4, "peers6": v6}), max_peers=150)
    assert len(result.peers) == 150 and result.peers[100] == ("::1", 1)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"d14:failure reason12:unregisterede", "tracker said: unregistered"),
        (b"d14:failure reason3:a\nbe", "tracker said: a b"),
        (b"<html>oops</html>", "bad response: not bencoded"),
        (b"", "bad response: not bencoded"),
        (b"li1ee", "bad response: not a bencoded dictionary"),
        (b"d8:intervali1e5:peersi5ee", "bad response: peers is neither a string nor a list"),
        (b"d1:xi1ee", "bad response: no peers and no interval"),
        (b"d5:peers0:8:intervali1ee", "bad response: not bencoded"),  # keys out of order
    ],
)
def test_bad_answers(body: bytes, reason: str) -> None:
    with pytest.raises(TrackerError) as info:
        parse_announce(body)
    assert info.value.reason == reason


def test_lenient_where_it_costs_nothing() -> None:
    # A trailing newline, a missing interval, nonsense counts, a torn compact tail.
    result = parse_announce(
        b"d8:completei-5e10:incomplete3:abc5:peers8:\x01\x02\x03\x04\x00\x05xye\n"
    )
    assert result.peers == [("1.2.3.4", 5)]
    assert result.interval == DEFAULT_INTERVAL_S
    assert result.seeders is None and result.leechers is None


def test_scrape_answer_keeps_only_what_was_asked() -> None:
    one, two, three = b"\x01" * 20, b"\x02" * 20, b"\x03" * 20
    body = b(
        {
            "files": {
                one: {"complete": 5, "downloaded": 50, "incomplete": 10, "name": b"x"},
                two: {"complete": -1},
                three: {"complete": 1},
            }
        }
    )
    assert parse_scrape(body, [one, two]) == {
        one: ScrapeStats(5, 50, 10),
        two: ScrapeStats(0, 0, 0),
    }
    with pytest.raises(TrackerError, match="no files dictionary"):
        parse_scrape(b"de", [one])


bencoded = st.recursive(
    st.integers(-(2**70), 2**70) | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [b"peers", b"peers6", b"interval", b"complete", b"failure reason", b"ip", b"port"]
            )
            | st.binary(max_size=8),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(value=bencoded, noise=st.binary(max_size=60))
def test_any_answer_parses_or_raises_tracker_error(value: Any, noise: bytes) -> None:
    for body in (b(value), noise):
        try:
            result = parse_announce(body, max_peers=10)
        except TrackerError as exc:
            assert "\n" not in exc.reason
        else:
            assert len(result.peers) <= 10 and result.interval >= 0


# --- fake HTTP trackers on loopback -----------------------------------------------------


class FakeHttpTracker:
    """An aiohttp.web tracker on 127.0.0.1: routes named after how they behave."""

    def __init__(self) -> None:
        self.swarm: dict[bytes, dict[tuple[str, int], None]] = {}
        self.raw_paths: list[str] = []
        self.base = ""
        app = web.Application()
        app.router.add_get("/announce", self.honest)
        app.router.add_get("/x/announce.php", self.honest)
        app.router.add_get("/x/scrape.php", self.scrape)
        app.router.add_get("/scrape", self.scrape)
        app.router.add_get("/failure/announce", self.failure)
        app.router.add_get("/failure400/announce", self.failure400)
        app.router.add_get("/notfound/announce", self.notfound)
        app.router.add_get("/garbage/announce", self.garbage)
        app.router.add_get("/slow/announce", self.slow)
        app.router.add_get("/huge/announce", self.huge)
        app.router.add_get("/huge-declared/announce", self.huge_declared)
        app.router.add_get("/redirect/{n}/announce", self.redirect)
        app.router.add_get("/to-udp/announce", self.to_udp)
        app.router.add_get("/lying/announce", self.lying)
        app.router.add_get("/gzip-bomb/announce", self.gzip_bomb)
        self.app = app

    async def honest(self, req: web.Request) -> web.Response:
        self.raw_paths.append(req.raw_path)
        fields = raw_query(req.raw_path)
        swarm = self.swarm.setdefault(fields["info_hash"], {})
        packed = [ip_address(h).packed + p.to_bytes(2, "big") for h, p in swarm]
        swarm[(req.remote or "", int(fields["port"]))] = None
        body = {
            "interval": 900,
            "complete": 0,
            "incomplete": len(swarm),
            "peers": b"".join(p for p in packed if len(p) == 6),
            "peers6": b"".join(p for p in packed if len(p) == 18),  # BEP 7
        }
        return web.Response(body=b(body))

    async def scrape(self, req: web.Request) -> web.Response:
        hashes = [unquote_to_bytes(v) for k, v in _pairs(req.raw_path) if k == "info_hash"]
        files = {
            h: {"complete": 1, "downloaded": 2, "incomplete": len(self.swarm.get(h, {}))}
            for h in hashes
        }
        return web.Response(body=b({"files": files}))

    async def failure(self, req: web.Request) -> web.Response:
        return web.Response(body=b"d14:failure reason17:torrent not founde")

    async def failure400(self, req: web.Request) -> web.Response:
        return web.Response(status=400, body=b"d14:failure reason11:bad passkeye")

    async def notfound(self, req: web.Request) -> web.Response:
        return web.Response(status=404, text="no such page")

    async def garbage(self, req: web.Request) -> web.Response:
        return web.Response(text="<html><body>It works!</body></html>")

    async def slow(self, req: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(body=b"de")

    async def huge(self, req: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # chunked: no length declared up front
        await resp.prepare(req)
        chunk = b"0" * 65536
        try:
            for _ in range(64):  # 4 MiB, stopped early by the client
                await resp.write(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    async def huge_declared(self, req: web.Request) -> web.Response:
        return web.Response(body=b"5:peers" + b"1" * (2 << 20))

    async def redirect(self, req: web.Request) -> web.Response:
        n = int(req.match_info["n"])
        target = "/announce" if n == 0 else f"/redirect/{n - 1}/announce"
        # Not web.HTTPFound: it re-quotes the Location, unescaping bytes such as %28.
        location = f"{target}?{req.raw_path.partition('?')[2]}"
        return web.Response(status=302, headers={"Location": location})

    async def to_udp(self, req: web.Request) -> web.Response:
        raise web.HTTPFound("udp://127.0.0.1:1/announce")

    async def gzip_bomb(self, req: web.Request) -> web.Response:
        # 200 MiB of zeros in about 200 KB: sent compressed although nobody asked for it.
        self.raw_paths.append(req.headers.get("Accept-Encoding", ""))
        body = zlib.compress(bytes(200 << 20), 9)
        return web.Response(body=body, headers={"Content-Encoding": "deflate"})

    async def lying(self, req: web.Request) -> web.Response:
        body = {
            "complete": -3,
            "incomplete": 2**80,
            "interval": b"soon",
            "peers": bytes([1, 1, 1, 1, 0, 1]) * 3 + b"\x02\x02",
            "peers6": b"short",
            "warning message": b"\x1b[31mred\x1b[0m",
        }
        return web.Response(body=b(body))


def _pairs(raw_path: str) -> list[tuple[str, str]]:
    """Name and still-escaped value of each query parameter, in order."""
    return [
        (name, value)
        for name, _, value in (p.partition("=") for p in raw_path.split("?", 1)[1].split("&"))
    ]


@asynccontextmanager
async def fake_http_tracker(host: str = "127.0.0.1") -> AsyncIterator[FakeHttpTracker]:
    fake = FakeHttpTracker()
    runner = web.AppRunner(fake.app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.base = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def with_fake(body: Callable[[FakeHttpTracker], Awaitable[None]], host: str = "127.0.0.1") -> None:
    async def main() -> None:
        async with fake_http_tracker(host) as fake:
            await body(fake)

    run(main())


async def fails(url: str, timeout: float = 3.0) -> str:
    with pytest.raises(TrackerError) as info:
        await announce(url, IH, peer_id=PEER_ID, port=1, timeout=timeout)
    return info.value.reason


def test_announce_end_to_end_two_peers_see_each_other() -> None:
    async def body(fake: FakeHttpTracker) -> None:
        url = f"{fake.base}/announce"
        first = await announce(url, IH, peer_id=PEER_ID, port=1111, timeout=3)
        second = await announce(url, IH, peer_id=b"-MG0001-zzzzzzzzzzzz", port=2222, timeout=3)
        assert first.peers == [] and first.leechers == 1
        assert second.peers == [("127.0.0.1", 1111)] and second.leechers == 2
        assert second.interval == 900 and second.seeders == 0
        # The binary fields reached the tracker exactly as we escaped them.
        assert raw_query(fake.raw_paths[0])["info_hash"] == IH
        assert fake.raw_paths[0].split("?")[1].startswith("info_hash=%00%0A%14%1E%282%3CFPZdnx%82")

    with_fake(body)


def test_ipv6_tracker_answers_peers6() -> None:
    async def body(fake: FakeHttpTracker) -> None:
        url = f"{fake.base}/announce"
        await announce(url, IH, peer_id=PEER_ID, port=1111, timeout=3)
        second = await announce(url, IH, peer_id=PEER_ID, port=2222, timeout=3)
        assert second.peers == [("::1", 1111)]

    with_fake(body, host="::1")


def test_redirects_are_followed_up_to_three() -> None:
    async def body(fake: FakeHttpTracker) -> None:
        # /redirect/2 -> /redirect/1 -> /redirect/0 -> /announce: three redirects.
        result = await announce(
            f"{fake.base}/redirect/2/announce", IH, peer_id=PEER_ID, port=1, timeout=3
        )
        assert result.interval == 900
        assert (
            await fails(f"{fake.base}/redirect/3/announce") == "bad response: more than 3 redirects"
        )
        with pytest.raises(TrackerError, match="HTTP 302 Found"):
            await http_announce(
                f"{fake.base}/redirect/0/announce", request(), timeout=3, max_redirects=0
            )

    with_fake(body)


@pytest.mark.slow
def test_hostile_http_trackers_give_one_clear_error() -> None:
    async def body(fake: FakeHttpTracker) -> None:
        base = fake.base
        assert await fails(f"{base}/failure/announce") == "tracker said: torrent not found"
        assert await fails(f"{base}/failure400/announce") == "tracker said: bad passkey"
        assert await fails(f"{base}/notfound/announce") == "bad response: HTTP 404 Not Found"
        assert await fails(f"{base}/garbage/announce") == "bad response: not bencoded"
        assert await fails(f"{base}/huge/announce") == "bad response: body over 1048576 bytes"
        assert await fails(f"{base}/huge-declared/announce") == (
            "bad response: body over 1048576 bytes"
        )
        assert await fails(f"{base}/gzip-bomb/announce") == "bad response: not bencoded"
        assert fake.raw_paths[-1] == "identity"
        assert (await fails(f"{base}/to-udp/announce")).startswith(
            "bad response: redirect to a non-HTTP(S) URL"
        )
        started = time.monotonic()
        assert await fails(f"{base}/slow/announce", timeout=0.3) == "timed out after 0.3 s"
        assert time.monotonic() - started < 1.5

    with_fake(body)


def test_lying_tracker_yields_what_can_be_trusted() -> None:
    async def body(fake: FakeHttpTracker) -> None:
        result = await announce(
            f"{fake.base}/lying/announce", IH, peer_id=PEER_ID, port=1, timeout=3
        )
        assert result.peers == [("1.1.1.1", 1)]
        assert result.seeders is None and result.leechers is None
        assert result.interval == DEFAULT_INTERVAL_S
        assert result.warning == "[31mred [0m"

    with_fake(body)


def test_scrape_end_to_end_via_the_derived_url() -> None:
    async def body(fake: FakeHttpTracker) -> None:
        await announce(f"{fake.base}/x/announce.php", IH, peer_id=PEER_ID, port=1, timeout=3)
        hashes = [IH] + [i.to_bytes(20, "big") for i in range(1, 120)]
        stats = await scrape(f"{fake.base}/x/announce.php", hashes, timeout=3)
        assert len(stats) == 120
        assert stats[IH] == ScrapeStats(1, 2, 1)
        with pytest.raises(TrackerError, match="no scrape URL"):
            await scrape(f"{fake.base}/a", [IH], timeout=3)

    with_fake(body)


@asynccontextmanager
async def raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/announce"
    finally:
        server.close()
        await server.wait_closed()


def test_body_cut_short() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nd8:interval")
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with raw_server(handler) as url:
            assert await fails(url) == "bad response: body cut short or malformed"

    run(main())


def test_server_that_never_answers() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(30)
        finally:
            writer.close()

    async def main() -> None:
        async with raw_server(handler) as url:
            started = time.monotonic()
            assert await fails(url, timeout=0.3) == "timed out after 0.3 s"
            assert time.monotonic() - started < 1.5

    run(main())


def test_nobody_listening() -> None:
    async def main() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        reason = await fails(f"http://127.0.0.1:{port}/announce")
        assert reason.startswith(f"cannot connect to 127.0.0.1:{port}")

    run(main())


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("wss://tracker.example/announce", "unsupported scheme 'wss'"),
        ("ftp://tracker.example/announce", "unsupported scheme 'ftp'"),
        ("udp://127.0.0.1/announce", "bad tracker URL 'udp://127.0.0.1/announce': no port"),
        ("http:///announce", "bad tracker URL 'http:///announce': no host"),
        (
            "udp://127.0.0.1:99999",
            "bad tracker URL 'udp://127.0.0.1:99999': Port out of range 0-65535",
        ),
        ("tracker.example:80", "unsupported scheme 'tracker.example'"),
    ],
)
def test_bad_urls(url: str, reason: str) -> None:
    assert run(fails(url)) == reason


def test_http_announce_called_directly() -> None:
    async def body(fake: FakeHttpTracker) -> None:
        result = await http_announce(f"{fake.base}/announce", request(), timeout=3)
        assert result.leechers == 1

    with_fake(body)


def test_aiohttp_is_loaded_only_for_http_trackers() -> None:
    # A fresh interpreter: importing the package, and a UDP announce, must not load aiohttp.
    code = """
import asyncio, socket, sys
import magnet.io.trackers
loaded = [
    m for m in ("aiohttp", "magnet.io.http_tracker", "magnet.trackers.udp") if m in sys.modules
]
assert not loaded, loaded
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
try:
    asyncio.run(magnet.io.trackers.announce(
        f"udp://127.0.0.1:{port}", bytes(20), peer_id=bytes(20), port=1, timeout=2))
except magnet.io.trackers.TrackerError:
    pass
assert "aiohttp" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and a client
    context that trusts exactly that certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


def test_https_tracker(tmp_path: Path) -> None:
    server_ctx, client_ctx = self_signed(tmp_path)

    async def main() -> None:
        fake = FakeHttpTracker()
        runner = web.AppRunner(fake.app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        url = f"https://127.0.0.1:{runner.addresses[0][1]}/announce"
        try:
            # Trusting the certificate: a normal announce over TLS.
            result = await http_announce(url, request(), timeout=3, ssl_context=client_ctx)
            assert result.leechers == 1 and raw_query(fake.raw_paths[0])["info_hash"] == IH
            # Default checks: a self-signed certificate is refused, in one line.
            reason = await fails(url)
            assert (
                reason.startswith("TLS with 127.0.0.1:") and "certificate verify failed" in reason
            )
        finally:
            await runner.cleanup()

    run(main())
