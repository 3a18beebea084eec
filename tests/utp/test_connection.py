"""The uTP connection core end to end: two sockets over a fake path on a virtual clock."""

from __future__ import annotations

import random

import pytest

from magnet.utp import (
    Connected,
    ConnectionReset,
    ConnectionTimedOut,
    DataReceived,
    EndOfStream,
    State,
    UtpConfig,
    UtpConnection,
    UtpUsageError,
)
from magnet.utp.connection import LINGER_S
from magnet.utp.header import ST_DATA, ST_STATE, ST_SYN, Packet, encode, parse
from tests.utp.fakelink import Link


def payload(n: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(n)


def test_handshake_initiator_side() -> None:
    link = Link()
    client, server = link.open()
    assert client.state is State.CONNECTED and client.initiator
    assert server.state in (State.SYN_RECV, State.CONNECTED) and not server.initiator
    # BEP 29: the initiator receives on the id its SYN carried and sends on that id + 1.
    assert client.send_id == (client.recv_id + 1) & 0xFFFF
    assert server.send_id == client.recv_id and server.recv_id == client.send_id
    assert link.a.kinds(client) == ["Connected"] and link.b.kinds(server) == ["Connected"]


def test_handshake_other_way_and_data_both_ways() -> None:
    link = Link()
    server = link.b.socket.connect(link.a.addr, link.now)  # b dials a this time
    link.run(5)
    client = link.a.events[0][0]
    server.send(b"from b")
    client.send(b"from a")
    link.run(10)
    assert bytes(link.a.received[client]) == b"from b"
    assert bytes(link.b.received[server]) == b"from a"


def test_syn_lost_is_retransmitted() -> None:
    link = Link()
    link.cut = True
    client = link.a.socket.connect(link.b.addr, 0.0)
    link.run(0.5)  # the first SYN is lost; its retransmission 1 s later is not
    link.cut = False
    link.run(10, stop=lambda: "Connected" in link.a.kinds(client))
    assert "Connected" in link.a.kinds(client)


def test_syn_to_nobody_times_out() -> None:
    link = Link()
    link.cut = True
    client = link.a.socket.connect(link.b.addr, 0.0)
    link.run(120)
    assert link.a.kinds(client) == ["ConnectionTimedOut"]
    # 1 s, then 2 s and 4 s of back-off: bounded, and the socket forgot the connection
    assert link.now < 10
    assert len(link.a.socket) == 0


def test_long_transfer_under_loss_reordering_and_duplication() -> None:
    link = Link(seed=3, delay=0.03, jitter=0.02, loss=0.02, dup=0.01)
    client, server = link.open()
    data = payload(2 << 20)
    sent = 0
    while sent < len(data) or len(link.b.received.get(server, b"")) < len(data):
        if sent < len(data):
            chunk = min(client.writable(), len(data) - sent)
            client.send(data[sent : sent + chunk])
            sent += chunk
        link.run(link.now + 1)
        assert link.now < 600, "transfer stalled"
    assert bytes(link.b.received[server]) == data
    assert link.max_in_flight > 20_000  # the window opened up past its first packets


def test_receiver_window_bounds_the_flight_and_zero_window_recovers() -> None:
    config = UtpConfig(recv_buffer=16_384)
    link = Link(config=config)
    client, server = link.open()
    link.hold_b = True  # b's owner stops reading
    data = payload(100_000)
    client.send(data)
    link.run(link.now + 20)
    assert link.max_in_flight <= 16_384
    assert server.buffered <= 16_384  # the peer's excess was never stored
    link.hold_b = False
    link.run(link.now + 120, stop=lambda: len(link.b.received.get(server, b"")) == len(data))
    assert bytes(link.b.received[server]) == data


def test_fin_both_ways_closes_cleanly() -> None:
    link = Link(loss=0.05, seed=11)
    client, server = link.open()
    client.send(b"request")
    client.close()
    with pytest.raises(UtpUsageError):
        client.send(b"late")
    link.run(link.now + 30, stop=lambda: "EndOfStream" in link.b.kinds(server))
    assert bytes(link.b.received[server]) == b"request"
    server.send(b"answer")
    server.close()
    link.run(link.now + 30, stop=lambda: "EndOfStream" in link.a.kinds(client))
    assert bytes(link.a.received[client]) == b"answer"
    link.run(link.now + 30)
    assert client.state is State.CLOSED and server.state is State.CLOSED
    assert link.a.kinds(client)[-1] == "EndOfStream"
    # after the linger both sockets have forgotten their connections
    link.run(link.now + LINGER_S + 1)
    assert len(link.a.socket) == 0 and len(link.b.socket) == 0


def test_peer_that_vanishes_times_out_in_bounded_time() -> None:
    link = Link()
    client, _server = link.open()
    started = link.now
    link.cut = True
    client.send(payload(50_000))
    link.run(link.now + 600)
    assert link.a.kinds(client)[-1] == "ConnectionTimedOut"
    timed_out = [e for c, e in link.a.events if c is client and isinstance(e, ConnectionTimedOut)]
    assert len(timed_out) == 1
    # RTO back-off 1+2+4+8+16 s at most (min RTO is lower once an RTT was measured)
    assert link.now - started < 40
    assert len(link.a.socket) == 0


def test_abort_resets_the_peer() -> None:
    link = Link()
    client, server = link.open()
    server.abort()
    link.run(link.now + 5)
    assert server.state is State.RESET
    assert link.a.kinds(client)[-1] == "ConnectionReset"
    assert client.state is State.RESET


@pytest.mark.parametrize("seed", range(1, 17))
@pytest.mark.parametrize("after_data", [False, True])
def test_a_reset_always_acks_what_the_peer_sent(seed: int, after_data: bool) -> None:
    """The reset carried ack_nr 0 once the aborting side had dropped its receive state: the
    peer's check (no acking of unsent packets) then ignored it for about half the seeds."""
    link = Link(seed=seed)
    client, server = link.open()
    if after_data:
        client.send(b"hello")
        link.run(link.now + 1)
    server.abort()
    link.run(link.now + 5)
    assert link.a.kinds(client)[-1] == "ConnectionReset"


def test_unknown_connection_is_answered_with_reset() -> None:
    link = Link()
    client, server = link.open()
    # b forgets the connection (as after a restart); a's next data draws an ST_RESET
    server.abort()
    link.cut = True
    link.flush()
    link.run(link.now + 1)
    link.cut = False
    client.send(b"anyone?")
    link.run(link.now + 10)
    assert link.b.socket.resets_sent >= 1
    assert isinstance([e for c, e in link.a.events if c is client][-1], ConnectionReset)


class _Fixed(random.Random):
    """Every id and initial sequence number is the same value near the top of 16 bits."""

    def randrange(self, *args: object, **kwargs: object) -> int:
        return 0xFFF0


def test_sequence_numbers_wrap_around() -> None:
    link = Link(loss=0.03, jitter=0.01, seed=5)
    link.a.socket._rng = _Fixed()
    link.b.socket._rng = _Fixed()
    client, server = link.open()
    data_a, data_b = payload(300_000, 1), payload(300_000, 2)
    client.send(data_a)
    server.send(data_b)

    def done() -> bool:
        return len(link.b.received.get(server, b"")) == len(data_a) and len(
            link.a.received.get(client, b"")
        ) == len(data_b)

    link.run(link.now + 300, stop=done)
    assert bytes(link.b.received[server]) == data_a
    assert bytes(link.a.received[client]) == data_b
    # both directions went past 0xFFFF: ~220 packets each from 0xFFF0
    assert client._sent.seq_nr < 0x1000 and server._sent.seq_nr < 0x1000


def test_initiator_syn_ack_as_state_then_data() -> None:
    """The acceptor's ST_STATE carries its next sequence number, unconsumed (libtorrent)."""
    rng = random.Random(1)
    client = UtpConnection(rng=rng)
    client.connect(0.0, recv_id=100, seq_nr=500)
    (syn_bytes,) = client.datagrams_to_send(0.0)
    syn = parse(syn_bytes)
    assert syn.type == ST_SYN and syn.connection_id == 100 and syn.seq_nr == 500
    state = Packet(ST_STATE, 100, 0, 0, 65536, seq_nr=9000, ack_nr=500)
    client.receive_datagram(encode(state), 0.1)
    assert isinstance(client.next_event(), Connected)
    data = Packet(ST_DATA, 100, 0, 0, 65536, seq_nr=9000, ack_nr=500, payload=b"hi")
    client.receive_datagram(encode(data), 0.2)
    assert client.next_event() == DataReceived(b"hi")
    (ack_bytes,) = client.datagrams_to_send(0.2)
    ack = parse(ack_bytes)
    assert ack.type == ST_STATE and ack.ack_nr == 9000 and ack.connection_id == 101


def test_fin_arriving_before_missing_data_waits_for_it() -> None:
    rng = random.Random(2)
    server = UtpConnection(rng=rng)
    syn = Packet(ST_SYN, 7, 0, 0, 65536, seq_nr=10, ack_nr=0)
    server.accept(syn, 0.0, seq_nr=3)
    assert isinstance(server.next_event(), Connected)
    fin = Packet(1, 7, 0, 0, 65536, seq_nr=12, ack_nr=2)
    server.receive_packet(fin, 0.1)
    assert server.next_event() is None  # seq 11 is still missing
    sack = parse(server.datagrams_to_send(0.1)[-1])
    assert sack.ack_nr == 10 and sack.sacked() == [12]
    server.receive_packet(Packet(ST_DATA, 7, 0, 0, 65536, seq_nr=11, ack_nr=2, payload=b"x"), 0.2)
    assert server.next_event() == DataReceived(b"x")
    assert server.next_event() == EndOfStream()
    assert parse(server.datagrams_to_send(0.2)[-1]).ack_nr == 12


def test_acks_after_our_fin_carry_the_fin_number() -> None:
    """libtorrent ignores packets numbered past the FIN it got: our acks must not be."""
    link = Link()
    client, server = link.open()
    client.close()
    link.flush()
    fin_seq = client._fin_seq
    assert fin_seq is not None
    server.send(b"late data")
    link.run(link.now + 5, stop=lambda: bool(link.a.received.get(client)))
    client._ack_due = True
    (ack,) = [parse(d) for d in client.datagrams_to_send(link.now)]
    assert ack.type == ST_STATE and ack.seq_nr == fin_seq


def connected_client(mss_payloads: int = 6) -> tuple[UtpConnection, list[Packet]]:
    """An initiator past its handshake (acceptor seq 900) with data packets 101.. sent."""
    client = UtpConnection(rng=random.Random(4), config=UtpConfig(mtu=200))
    client.connect(0.0, recv_id=40, seq_nr=100)
    client.datagrams_to_send(0.0)
    client.receive_packet(Packet(ST_STATE, 40, 0, 0, 1 << 20, seq_nr=900, ack_nr=100), 0.05)
    assert isinstance(client.next_event(), Connected)
    client.send(bytes(client.config.max_payload * mss_payloads))
    sent = [parse(d) for d in client.datagrams_to_send(0.05)]
    return client, [p for p in sent if p.type == ST_DATA]


def ack(ack_nr: int, sack: bytes | None = None, delay_us: int = 0) -> Packet:
    return Packet(ST_STATE, 40, 0, delay_us, 1 << 20, seq_nr=900, ack_nr=ack_nr, sack=sack)


def test_three_duplicate_acks_resend_the_next_packet_at_once() -> None:
    client, sent = connected_client()
    assert [p.seq_nr for p in sent] == [101, 102]  # the first window: two packets
    client.receive_packet(ack(101), 0.1)  # 102 missing from here on
    client.datagrams_to_send(0.1)
    for i in range(3):
        client.receive_packet(ack(101), 0.11 + i / 100)
    resent = [parse(d) for d in client.datagrams_to_send(0.14)]
    assert [p.seq_nr for p in resent if p.type == ST_DATA] == [102]  # long before an RTO


def test_selective_ack_of_three_later_packets_resends_the_hole() -> None:
    client, _ = connected_client()
    # acks with a delay sample: slow start opens the window packet by packet
    client.receive_packet(ack(101, delay_us=1000), 0.1)
    client.datagrams_to_send(0.1)
    client.receive_packet(ack(102, delay_us=1000), 0.12)
    assert 106 in [parse(d).seq_nr for d in client.datagrams_to_send(0.12)]
    # 103 lost; 104, 105, 106 arrived: bits 0..2 of the mask (ack_nr + 2 = 104)
    client.receive_packet(ack(102, sack=b"\x07\x00\x00\x00"), 0.15)
    resent = [parse(d) for d in client.datagrams_to_send(0.15)]
    assert resent and resent[0].type == ST_DATA and resent[0].seq_nr == 103
    assert client.unacked == client.config.max_payload * 1  # only the hole is left


def test_rto_follows_rtt_with_a_floor_and_backs_off() -> None:
    client, _ = connected_client(mss_payloads=1)
    client.receive_packet(ack(101), 0.15)  # one 100 ms sample (sent at 0.05)
    assert client._rtt.rto == pytest.approx(0.5)  # 0.1 + 4 * 0.05 = 0.3, floored to 500 ms
    client.send(b"more")
    client.datagrams_to_send(0.2)
    first = client.get_timer()
    assert first is not None and first == pytest.approx(0.2 + 0.5)
    client.handle_timer(first)
    client.datagrams_to_send(first)
    assert client.get_timer() == pytest.approx(first + 1.0)  # doubled
