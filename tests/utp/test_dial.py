"""The TCP/uTP race (`magnet.io.dial`) and ``magnet.resolve(transport=...)`` on loopback."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import pytest

import magnet
import magnet.io.serve as serve_mod
from dht.io.node import Node
from magnet.io.dial import Dialer, DialError
from magnet.io.resolve import ResolveError
from magnet.io.serve import serve_torrents
from magnet.io.utp import UtpEndpoint
from magnet.metadata import METADATA_PIECE
from magnet.service import MetadataService
from magnet.torrentfile import parse_info
from tests.magnet.fakepeers import info_hash, make_info

pytestmark = pytest.mark.timeout(60)

INFO = make_info(5 * METADATA_PIECE)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 50))


@asynccontextmanager
async def served(*, utp: bool = True) -> AsyncIterator[int]:
    """``serve_torrents`` for ``INFO`` on 127.0.0.1 (``utp=False``: TCP only); its port."""
    async with Node("127.0.0.1", 0, bootstrap_routers=[]) as node:
        stop = asyncio.Event()
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        job = asyncio.create_task(
            serve_torrents(
                [parse_info(INFO)], node=node, host="127.0.0.1", stop=stop, ready=ready, utp=utp
            )
        )
        try:
            yield await asyncio.wait_for(ready, 10)
        finally:
            stop.set()
            await asyncio.wait_for(job, 10)


@asynccontextmanager
async def utp_only() -> AsyncIterator[int]:
    """The serve protocol on a uTP endpoint alone: nothing listens on TCP at its port."""
    service = MetadataService([parse_info(INFO)], b"-MG0000-" + bytes(12))
    state = serve_mod._Server(service, "prefer")
    endpoint = await UtpEndpoint.create(
        "127.0.0.1", 0, protocol_factory=lambda: serve_mod._ServeProtocol(state)
    )
    try:
        yield endpoint.local_address[1]
    finally:
        endpoint.close()


def link(port: int) -> str:
    return f"magnet:?xt=urn:btih:{info_hash(INFO).hex()}&x.pe=127.0.0.1:{port}"


@pytest.mark.parametrize("encryption", ["off", "require"])
@pytest.mark.parametrize("transport", ["utp", "tcp", "auto"])
def test_resolve_over_each_transport_says_which_one_served(transport: str, encryption: str) -> None:
    """Plaintext and MSE/PE alike: the stream is bytes whichever transport carries it."""

    async def main() -> None:
        async with served() as port:
            result = await magnet.resolve(
                link(port),
                use_dht=False,
                use_trackers=False,
                transport=transport,
                encryption=encryption,
                timeout=10,
            )
            assert result.info == INFO
            assert result.connections == {f"127.0.0.1:{port}": result.transport}
            if transport != "auto":
                assert result.transport == transport

    run(main())


@pytest.mark.slow  # the failing resolve waits out its timeout (3 s)
def test_auto_resolves_a_utp_only_peer_and_tcp_only_fails_it_clearly() -> None:
    async def main() -> None:
        async with utp_only() as port:
            result = await magnet.resolve(link(port), use_dht=False, use_trackers=False, timeout=10)
            assert result.info == INFO and result.transport == "utp"
            with pytest.raises(ResolveError) as failed:
                await magnet.resolve(
                    link(port), use_dht=False, use_trackers=False, transport="tcp", timeout=3
                )
            assert "connection refused" in failed.value.reason
            assert "over TCP only: peers that accept only uTP are missed" in failed.value.reason

    run(main())


@pytest.mark.slow  # the uTP attempt waits out its connect timeout (4.5 s)
def test_utp_only_fails_a_tcp_only_peer_clearly() -> None:
    async def main() -> None:
        async with served(utp=False) as port:
            with pytest.raises(ResolveError) as failed:
                await magnet.resolve(
                    link(port), use_dht=False, use_trackers=False, transport="utp", timeout=6
                )
            assert "utp: no answer" in failed.value.reason
            assert "over UTP only: peers that accept only TCP are missed" in failed.value.reason

    run(main())


class Counting(asyncio.Protocol):
    """A server that counts its open connections by transport and echoes in upper case."""

    open: ClassVar[Counter[str]] = Counter()

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        Counting.open[self.kind] += 1

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data.upper())

    def connection_lost(self, exc: Exception | None) -> None:
        Counting.open[self.kind] -= 1


class Client(asyncio.Protocol):
    """The caller's side: what it heard, and how often it was told of a connection."""

    def __init__(self) -> None:
        self.made = 0
        self.lost = 0
        self.heard = bytearray()
        self.answered = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made += 1

    def data_received(self, data: bytes) -> None:
        self.heard += data
        self.answered.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost += 1


def test_the_race_loser_is_closed_once_the_peer_answers() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Counting("tcp"), "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        endpoint = await UtpEndpoint.create(
            "127.0.0.1", port, protocol_factory=lambda: Counting("utp")
        )
        dialer: Dialer[Client] = Dialer("auto", stagger=0, timeout=5)  # both at once
        try:
            for _ in range(2):
                transport, client = await dialer.dial(("127.0.0.1", port), Client)
                transport.write(b"hello")
                await asyncio.wait_for(client.answered.wait(), 5)
                assert bytes(client.heard) == b"HELLO" and client.made == 1
                won = transport.get_extra_info("transport")
                await asyncio.sleep(0.2)  # the loser's FIN or reset has arrived
                assert Counting.open[won] == 1
                if won == "utp":
                    assert Counting.open["tcp"] == 0  # the TCP loser was closed
                # (A uTP loser still in SYN_SENT cannot be reset: BEP 29 peers, libtorrent
                # included, ignore a reset that acks nothing. It times out over there.)
                transport.abort()
                await asyncio.sleep(0.2)
                assert Counting.open[won] == 0 and client.lost == 1
        finally:
            dialer.close()
            endpoint.close()
            server.close()

    run(main())


class HangUp(asyncio.Protocol):
    """A TCP listener that accepts and closes at once (libtorrent with TCP switched off)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def test_a_stream_closed_before_the_peer_answers_moves_to_the_other_transport() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(HangUp, "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        endpoint = await UtpEndpoint.create(
            "127.0.0.1", port, protocol_factory=lambda: Counting("utp")
        )
        # TCP first, uTP only after 30 s: unless a hang-up before any answer starts it now.
        dialer: Dialer[Client] = Dialer("auto", stagger=30, timeout=5)
        try:
            start = loop.time()
            transport, client = await dialer.dial(("127.0.0.1", port), Client)
            transport.write(b"hello, ")
            transport.write(b"peer")
            await asyncio.wait_for(client.answered.wait(), 5)
            while len(client.heard) < len(b"HELLO, PEER"):
                await asyncio.sleep(0.01)
            # The caller saw one connection, and every byte it wrote reached the peer once.
            assert bytes(client.heard) == b"HELLO, PEER"
            assert (client.made, client.lost) == (1, 0)
            assert transport.get_extra_info("transport") == "utp"
            assert loop.time() - start < 20  # not the stagger (generous: a busy machine)
            transport.close()
        finally:
            dialer.close()
            endpoint.close()
            server.close()

    run(main())


def test_a_redialling_caller_is_told_at_once_and_its_redial_tries_the_other_first() -> None:
    """As a Resolution: a hang-up before any answer ends the stream now (the caller redials
    with the other encryption: no uTP wait for a peer that wanted MSE over TCP), and the
    redial starts with uTP, not after the 30 s stagger: a uTP-only peer is reached then."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(HangUp, "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        endpoint = await UtpEndpoint.create(
            "127.0.0.1", port, protocol_factory=lambda: Counting("utp")
        )
        dialer: Dialer[Client] = Dialer("auto", stagger=30, timeout=5, redialled=True)
        try:
            transport, first = await dialer.dial(("127.0.0.1", port), Client)
            transport.write(b"plaintext")
            async with asyncio.timeout(5):
                while not first.lost:
                    await asyncio.sleep(0.01)
            assert transport.get_extra_info("transport") is None and not first.heard
            transport, second = await dialer.dial(("127.0.0.1", port), Client)
            transport.write(b"encrypted")
            await asyncio.wait_for(second.answered.wait(), 5)
            while len(second.heard) < len(b"ENCRYPTED"):
                await asyncio.sleep(0.01)
            assert bytes(second.heard) == b"ENCRYPTED" and second.lost == 0
            assert transport.get_extra_info("transport") == "utp"
            transport.close()
        finally:
            dialer.close()
            endpoint.close()
            server.close()

    run(main())


def test_nothing_listening_fails_with_each_transports_reason() -> None:
    async def main() -> None:
        silent = await UtpEndpoint.create("127.0.0.1", 0)  # a UDP port that accepts no uTP
        dialer: Dialer[asyncio.Protocol] = Dialer("auto", timeout=0.5)
        try:
            with pytest.raises(DialError) as failed:
                await dialer.dial(silent.local_address, asyncio.Protocol)
            assert str(failed.value) == "tcp: connection refused, utp: no answer"
        finally:
            dialer.close()
            silent.close()

    run(main())


def test_a_stagger_starts_the_next_attempt_at_once_when_the_first_fails() -> None:
    """uTP first with a long stagger against a TCP-only peer whose UDP port answers SYNs
    with silence: the uTP attempt ends at its own timeout and TCP starts then, not after
    the stagger."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        dialer: Dialer[asyncio.Protocol] = Dialer(
            "auto", order=("utp", "tcp"), stagger=30.0, timeout=0.3
        )
        try:
            start = loop.time()
            transport, _ = await dialer.dial(("127.0.0.1", port), asyncio.Protocol)
            assert loop.time() - start < 20  # not the stagger: generous for a busy machine
            assert transport.get_extra_info("transport") == "tcp"
            transport.abort()
        finally:
            dialer.close()
            server.close()

    run(main())


def test_bad_transport_is_refused() -> None:
    with pytest.raises(ValueError):
        Dialer("sctp")

    async def main() -> None:
        with pytest.raises(ValueError):
            await magnet.resolve(link(1), use_dht=False, transport="sctp")

    run(main())


def test_a_cancelled_dial_leaves_no_attempt_behind() -> None:
    """The Resolution gives up on a peer (its connect deadline): every attempt goes."""

    async def main() -> None:
        silent = await UtpEndpoint.create("127.0.0.1", 0)
        dialer: Dialer[asyncio.Protocol] = Dialer("utp", timeout=30)
        before = asyncio.all_tasks()
        try:
            job = asyncio.create_task(dialer.dial(silent.local_address, asyncio.Protocol))
            await asyncio.sleep(0.2)
            own = await dialer._endpoint(4)
            assert len(own.core) == 1  # the SYN is out, unanswered
            job.cancel()
            with pytest.raises(asyncio.CancelledError):
                await job
            await asyncio.sleep(0.05)
            assert len(own.core) == 0 and not own._transports
            assert asyncio.all_tasks() == before  # the race and its attempts are over
        finally:
            dialer.close()
            silent.close()

    run(main())
