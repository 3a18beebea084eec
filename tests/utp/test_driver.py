"""The asyncio uTP driver on loopback: our endpoint to our endpoint, as streams."""

from __future__ import annotations

import asyncio
import random

import pytest

from magnet.io.utp import UtpEndpoint
from magnet.utp import UtpConfig

pytestmark = pytest.mark.timeout(60)


async def echo_upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read()  # until the peer's FIN
    writer.write(data.upper())
    await writer.drain()
    writer.close()


def test_stream_roundtrip_with_fin_both_ways() -> None:
    payload = random.Random(3).randbytes(400_000).hex().encode()[:600_000]

    async def run() -> bytes:
        server = await UtpEndpoint.create("127.0.0.1", 0, on_connection=echo_upper)
        client = await UtpEndpoint.create("127.0.0.1", 0)
        try:
            reader, writer = await client.open_connection(*server.local_address, timeout=5)
            assert writer.get_extra_info("peername") == server.local_address
            writer.write(payload)
            await writer.drain()
            writer.write_eof()
            async with asyncio.timeout(30):
                answer = await reader.read()
                writer.close()
                await writer.wait_closed()
            return answer
        finally:
            client.close()
            server.close()

    assert asyncio.run(run()) == payload.upper()


def test_dial_to_a_silent_port_times_out() -> None:
    async def run() -> None:
        silent = await UtpEndpoint.create("127.0.0.1", 0)  # accepts nothing
        client = await UtpEndpoint.create("127.0.0.1", 0)
        try:
            with pytest.raises(TimeoutError):
                await client.open_connection(*silent.local_address, timeout=0.5)
        finally:
            client.close()
            silent.close()

    asyncio.run(run())


def test_non_utp_datagrams_go_to_the_shared_handler() -> None:
    async def run() -> list[bytes]:
        seen: list[bytes] = []
        endpoint = await UtpEndpoint.create(
            "127.0.0.1", 0, on_datagram=lambda data, addr: seen.append(data)
        )
        loop = asyncio.get_running_loop()
        sender, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=endpoint.local_address
        )
        try:
            sender.sendto(b"d1:y1:qe")
            async with asyncio.timeout(5):
                while not seen:
                    await asyncio.sleep(0.01)
        finally:
            sender.close()
            endpoint.close()
        return seen

    assert asyncio.run(run()) == [b"d1:y1:qe"]


@pytest.mark.slow
def test_a_reader_that_stops_reading_closes_the_window() -> None:
    payload = random.Random(4).randbytes(2 << 20)
    config = UtpConfig(recv_buffer=256 * 1024)

    async def run() -> tuple[int, bytes]:
        received = asyncio.get_running_loop().create_future()
        held: list[int] = []

        async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(1.0)  # the owner is busy: nothing is read
            (conn,) = server.core.connections()
            held.append(conn.buffered)
            received.set_result(await reader.read())
            writer.close()

        server = await UtpEndpoint.create("127.0.0.1", 0, config=config, on_connection=slow_reader)
        client = await UtpEndpoint.create("127.0.0.1", 0)
        try:
            _, writer = await client.open_connection(*server.local_address, timeout=5)
            writer.write(payload)
            writer.write_eof()
            async with asyncio.timeout(30):
                data = await received
            return held[0], data
        finally:
            client.close()
            server.close()

    held, data = asyncio.run(run())
    assert data == payload
    # while unread, the receiving core held about its whole window and no more
    assert config.recv_buffer - 2 * config.max_payload <= held <= config.recv_buffer


class _PausedEcho(asyncio.Protocol):
    """Echoes every chunk as it arrives, its reading paused until told."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.chunks += 1
        self.transport.write(data)  # calls back into the endpoint's flush


def test_writing_from_data_received_over_a_backlog_of_events_does_not_recurse() -> None:
    """Thousands of queued packets delivered when reading resumes, each answered at once:
    every answer's flush used to deliver the next packet one stack frame deeper."""
    server_side: list[_PausedEcho] = []

    def make() -> _PausedEcho:
        server_side.append(_PausedEcho())
        return server_side[-1]

    async def run() -> bytes:
        server = await UtpEndpoint.create("127.0.0.1", 0, protocol_factory=make)
        client = await UtpEndpoint.create("127.0.0.1", 0)
        try:
            reader, writer = await client.open_connection(*server.local_address, timeout=5)
            for i in range(3000):  # one small packet each: 3000 events queue up over there
                writer.write(i.to_bytes(2, "big"))
                await asyncio.sleep(0)
            await asyncio.sleep(0.3)
            (echo,) = server_side
            assert echo.transport is not None and echo.chunks == 0
            echo.transport.resume_reading()
            async with asyncio.timeout(20):
                return await reader.readexactly(6000)
        finally:
            client.close()
            server.close()

    echoed = asyncio.run(run())
    assert echoed == b"".join(i.to_bytes(2, "big") for i in range(3000))
