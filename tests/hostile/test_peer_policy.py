"""Strangers must not make a resolve dial our own LAN or machine: the address policy for
peers and tracker hosts.

Peers come from the DHT, from trackers and from the link's ``x.pe``; tracker hosts from the
link and from HTTP redirects. A public resolve refuses private and loopback addresses among
them (after DNS, for names), unless the user opted in: ``allow_private=True``, or a lab
network, which the link's own ``x.pe`` peers or the bootstrap addresses being private or
loopback say. Every socket here is on 127.0.0.0/8; the policy is what refuses.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest
from aiohttp import web

from dht.addresses import AddressPolicy
from dht.wire import Addr
from magnet.io.http_tracker import fetch
from magnet.io.resolve import ResolveError, peer_policy, resolve
from magnet.io.trackers import TrackerError, announce
from magnet.resolution import Connect, Resolution
from magnet.uri import parse as parse_magnet

pytestmark = pytest.mark.timeout(60)
T = TypeVar("T")
IH = bytes(range(20))
PUBLIC: Addr = ("8.8.8.8", 6881)  # a Connect action for it is only ever data here
PRIVATE: list[Addr] = [("192.168.1.5", 6881), ("10.0.0.1", 1), ("100.64.0.1", 2)]
LOOPBACK: list[Addr] = [("127.0.0.1", 6881), ("::1", 6881)]
BOGONS: list[Addr] = [("0.0.0.0", 6881), ("224.0.0.1", 6881), ("8.8.4.4", 0)]


def run(coro: Awaitable[T], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def test_the_resolution_dials_only_what_the_policy_accepts() -> None:
    res = Resolution(
        IH, peer_id=os.urandom(20), encryption="off", accept=AddressPolicy().acceptable
    )
    assert res.add_peers([*PRIVATE, *LOOPBACK, *BOGONS, PUBLIC], "dht", 0.0) == 1
    assert res.stats.known == 1 and res.stats.refused == len(PRIVATE) + len(LOOPBACK) + 2
    actions = []
    while (action := res.next_action()) is not None:
        actions.append(action)
    assert actions == [Connect(PUBLIC)]


def test_refused_peers_are_named_in_the_failure_line() -> None:
    res = Resolution(
        IH, peer_id=os.urandom(20), encryption="off", accept=AddressPolicy().acceptable
    )
    res.add_peers(LOOPBACK, "tracker", 0.0)
    assert "2 on private or loopback addresses refused" in res.explain()


LINK = f"magnet:?xt=urn:btih:{IH.hex()}"


@pytest.mark.parametrize(
    ("link", "bootstrap", "allow_private", "private_ok", "loopback_ok"),
    [
        (LINK, None, False, False, False),  # public routers: a public resolve
        (LINK, [("router.example.org", 6881)], False, False, False),
        (LINK + "&x.pe=127.0.0.1:6881", None, False, True, True),  # the user's loopback peer
        (LINK + "&x.pe=192.168.1.7:6881", None, False, True, False),  # a LAN peer
        (LINK + "&x.pe=8.8.8.8:6881", None, False, False, False),
        (LINK, [("127.0.0.1", 6881)], False, True, True),  # a loopback testnet
        (LINK, [("10.0.0.2", 6881)], False, True, False),
        (LINK, None, True, True, True),  # opted in
    ],
    ids=[
        "public",
        "named-router",
        "xpe-loopback",
        "xpe-lan",
        "xpe-public",
        "bootstrap-loopback",
        "bootstrap-lan",
        "allow-private",
    ],
)
def test_the_peer_policy_opts_in_only_on_what_the_user_gave(
    link: str,
    bootstrap: list[Addr] | None,
    allow_private: bool,
    private_ok: bool,
    loopback_ok: bool,
) -> None:
    policy = peer_policy(parse_magnet(link), bootstrap=bootstrap, allow_private=allow_private)
    assert policy.acceptable(PUBLIC)
    assert policy.acceptable(PRIVATE[0]) is private_ok
    assert policy.acceptable(LOOPBACK[0]) is loopback_ok
    assert not policy.acceptable(BOGONS[1])


class _Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams += 1


@pytest.mark.slow
@pytest.mark.parametrize("allow_private", [False, True])
def test_a_loopback_udp_tracker_is_refused_unless_the_user_opts_in(allow_private: bool) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        counter = _Counter()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: counter, local_addr=("127.0.0.1", 0)
        )
        port = transport.get_extra_info("sockname")[1]
        try:
            with pytest.raises(ResolveError) as err:
                await resolve(
                    LINK,
                    use_dht=False,
                    trackers=[f"udp://127.0.0.1:{port}/announce"],
                    timeout=1.5,
                    allow_private=allow_private,
                )
        finally:
            transport.close()
        if allow_private:
            assert counter.datagrams >= 1  # the BEP 15 connect went out
        else:
            assert counter.datagrams == 0
            assert "tracker host 127.0.0.1 is a private or loopback address" in err.value.reason

    run(main())


@asynccontextmanager
async def http_server(
    host: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("guarded", [False, True])
def test_an_http_redirect_to_a_refused_address_is_not_followed(guarded: bool) -> None:
    """The first tracker is allowed (127.0.0.1 stands for a public host); its redirect
    points at 127.0.0.2, which stands for a host on our LAN."""
    hits: list[str] = []

    async def inner(req: web.Request) -> web.Response:
        hits.append(req.path)
        return web.Response(body=b"d8:intervali60e5:peers0:e")

    def allow(addr: Addr) -> bool:
        return addr[0] == "127.0.0.1"

    async def main() -> None:
        async with http_server("127.0.0.2", inner) as inner_port:

            async def outer(req: web.Request) -> web.Response:
                location = f"http://127.0.0.2:{inner_port}/announce"
                return web.Response(status=302, headers={"Location": location})

            async with http_server("127.0.0.1", outer) as port:
                url = f"http://127.0.0.1:{port}/announce"
                if not guarded:
                    status, _, _ = await fetch(url, timeout=5)
                    assert status == 200 and hits == ["/announce"]
                    return
                with pytest.raises(TrackerError, match=r"127\.0\.0\.2 is a private or loopback"):
                    await fetch(url, timeout=5, accept=allow)
                assert hits == []

    run(main())


def _localhost_resolves() -> bool:
    try:
        return bool(socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM))
    except OSError:
        return False


@pytest.mark.skipif(not _localhost_resolves(), reason="no 'localhost' name here")
@pytest.mark.parametrize("scheme", ["http", "udp"])
def test_a_tracker_name_that_resolves_to_loopback_is_refused_after_dns(scheme: str) -> None:
    async def main() -> None:
        with pytest.raises(TrackerError, match=r"tracker host localhost \(.*\) is a private"):
            await announce(
                f"{scheme}://localhost:9/announce",
                IH,
                peer_id=b"-MG0001-" + bytes(12),
                port=6881,
                timeout=5,
                accept=AddressPolicy().acceptable,
            )

    run(main())


@pytest.mark.parametrize(("args", "expected"), [([], False), (["--allow-private"], True)])
def test_the_cli_passes_allow_private_to_the_resolve(
    monkeypatch: pytest.MonkeyPatch, args: list[str], expected: bool
) -> None:
    from typer.testing import CliRunner

    import magnet.io.resolve
    from magnet.cli.app import app

    seen: list[object] = []

    async def fake_resolve(link: object, **options: object) -> object:
        seen.append(options.get("allow_private"))
        raise ResolveError("no peers (test)", "no-peers")

    monkeypatch.setattr(magnet.io.resolve, "resolve", fake_resolve)
    result = CliRunner().invoke(app, ["resolve", IH.hex(), "--no-dht", *args])
    assert seen == [expected], result.output
