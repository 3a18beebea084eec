"""Hostile input to a connected uTP core: it never raises and never holds unbounded memory."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magnet.utp import UtpConfig, UtpConnection, UtpSocket
from magnet.utp.header import Packet, encode
from tests.utp.fakelink import Link

CONFIG = UtpConfig(recv_buffer=64_000, send_buffer=64_000)
LIMIT = CONFIG.recv_buffer + CONFIG.send_buffer  # held for the peer + held for us


def connected_pair() -> tuple[Link, UtpConnection, UtpConnection]:
    link = Link(config=CONFIG)
    client, server = link.open()
    client.send(b"x" * 10_000)
    server.send(b"y" * 10_000)
    link.run(link.now + 0.05)
    return link, client, server


def packets_for(conn: UtpConnection) -> st.SearchStrategy[bytes]:
    """Well-formed packets on the connection's own id: they get past routing."""
    return st.builds(
        lambda t, ts, diff, wnd, seq, ack, sack, payload: encode(
            Packet(t, conn.recv_id, ts, diff, wnd, seq, ack, sack, payload)
        ),
        st.integers(0, 4),
        st.integers(0, 0xFFFFFFFF),
        st.integers(0, 0xFFFFFFFF),
        st.integers(0, 0xFFFFFFFF),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        st.none() | st.binary(min_size=4, max_size=4) | st.binary(min_size=32, max_size=32),
        st.binary(max_size=1500),
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@pytest.mark.slow
@given(st.data())
def test_random_datagrams_never_raise_nor_grow_memory(data: st.DataObject) -> None:
    link, client, server = connected_pair()
    now = link.now
    target = data.draw(st.sampled_from([client, server]))
    datagrams = data.draw(
        st.lists(packets_for(target) | st.binary(max_size=200), min_size=1, max_size=80)
    )
    for datagram in datagrams:
        now += data.draw(st.floats(0, 2))
        target.receive_datagram(datagram, now)
        target.datagrams_to_send(now)
        deadline = target.get_timer()
        if deadline is not None and deadline <= now:
            target.handle_timer(now)
        assert target.buffered <= LIMIT
        assert target.in_flight >= 0
    while target.next_event() is not None:
        pass


def test_socket_fed_a_flood_of_random_bytes_stays_bounded() -> None:
    rng = random.Random(5)
    sock = UtpSocket(rng=random.Random(6), max_connections=50)
    for i in range(20_000):
        data = rng.randbytes(rng.randrange(0, 60))
        if data and rng.random() < 0.5:
            data = bytes([rng.choice([0x01, 0x11, 0x21, 0x31, 0x41])]) + data[1:]
        addr = (f"127.0.{rng.randrange(4)}.{rng.randrange(256)}", 9000)
        sock.receive_datagram(data, addr, i * 0.001)
        sock.datagrams_to_send(i * 0.001)
    assert len(sock) <= 50
    while sock.next_event() is not None:
        pass
