"""`UtpSocket`: routing by (address, connection id), SYN limits, resets, DHT coexistence."""

from __future__ import annotations

import random

from magnet.utp import UtpSocket, is_utp
from magnet.utp.header import ST_DATA, ST_RESET, ST_STATE, ST_SYN, Packet, encode, parse

PEER = ("127.0.0.9", 7000)


def syn(cid: int, seq: int = 1) -> bytes:
    return encode(Packet(ST_SYN, cid, 0, 0, 65536, seq, 0))


def test_is_utp_tells_krpc_from_utp() -> None:
    assert is_utp(syn(5))
    assert not is_utp(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")
    assert not is_utp(b"\x41" * 10)  # too short
    assert not is_utp(b"\x61" + bytes(19))  # type 6 does not exist


def test_syn_opens_a_connection_and_its_retransmission_finds_it() -> None:
    sock = UtpSocket(rng=random.Random(1))
    conn = sock.receive_datagram(syn(100), PEER, 0.0)
    assert conn is not None and conn.recv_id == 101 and conn.send_id == 100
    assert sock.receive_datagram(syn(100), PEER, 0.5) is conn
    assert len(sock) == 1
    replies = sock.datagrams_to_send(0.5)
    assert [parse(d).type for d, _ in replies] == [ST_STATE]
    assert replies[0][1] == PEER


def test_same_id_from_another_address_is_another_connection() -> None:
    sock = UtpSocket(rng=random.Random(1))
    first = sock.receive_datagram(syn(100), PEER, 0.0)
    second = sock.receive_datagram(syn(100), ("127.0.0.10", 7000), 0.0)
    assert first is not None and second is not None and first is not second


def test_syn_flood_is_bounded_per_ip_and_in_total() -> None:
    sock = UtpSocket(rng=random.Random(1), max_connections=20, max_incoming_per_ip=4)
    for cid in range(0, 100, 2):
        sock.receive_datagram(syn(cid), PEER, 0.0)
    assert len(sock) == 4 and sock.refused == 46
    for host in range(30):
        sock.receive_datagram(syn(1), (f"127.0.1.{host}", 7000), 0.0)
    assert len(sock) == 20


def test_refusing_incoming() -> None:
    sock = UtpSocket(rng=random.Random(1), accept_incoming=False)
    assert sock.receive_datagram(syn(100), PEER, 0.0) is None and len(sock) == 0


def test_unknown_connection_gets_a_reset_no_larger_than_the_packet() -> None:
    sock = UtpSocket(rng=random.Random(1))
    stray = encode(Packet(ST_DATA, 4242, 0, 0, 65536, 77, 9, payload=b"x"))
    assert sock.receive_datagram(stray, PEER, 0.0) is None
    ((reply, addr),) = sock.datagrams_to_send(0.0)
    reset = parse(reply)
    assert addr == PEER and reset.type == ST_RESET
    assert reset.connection_id == 4242 and reset.ack_nr == 77
    assert len(reply) <= len(stray)
    # a reset for an unknown connection is never answered (no reset ping-pong)
    sock.receive_datagram(reply, PEER, 0.0)
    assert sock.datagrams_to_send(0.0) == []


def test_queued_resets_are_bounded() -> None:
    sock = UtpSocket(rng=random.Random(1))
    for cid in range(1000):
        sock.receive_datagram(encode(Packet(ST_STATE, cid, 0, 0, 0, 1, 1)), PEER, 0.0)
    assert len(sock.datagrams_to_send(0.0)) == 64


def test_garbage_is_counted_and_dropped() -> None:
    sock = UtpSocket(rng=random.Random(1))
    assert sock.receive_datagram(b"d1:y1:qe", PEER, 0.0) is None
    assert sock.dropped == 1 and sock.datagrams_to_send(0.0) == []


def test_connect_routes_the_answer_and_reports_connected() -> None:
    sock = UtpSocket(rng=random.Random(1))
    conn = sock.connect(PEER, 0.0)
    ((data, addr),) = sock.datagrams_to_send(0.0)
    syn_packet = parse(data)
    assert addr == PEER and syn_packet.connection_id == conn.recv_id
    answer = Packet(ST_STATE, conn.recv_id, 0, 0, 65536, 500, syn_packet.seq_nr)
    assert sock.receive_datagram(encode(answer), PEER, 0.1) is conn
    item = sock.next_event()
    assert item is not None and item[0] is conn and type(item[1]).__name__ == "Connected"
    assert sock.address_of(conn) == PEER
