"""`ReorderBuffer`: in-order delivery, the reorder window, FIN and selective ACK."""

from __future__ import annotations

from magnet.utp.reorder import SACK_SPAN, ReorderBuffer


def buffer_at(ack_nr: int, span: int = 64) -> ReorderBuffer:
    buf = ReorderBuffer(span)
    buf.ack_nr = ack_nr
    return buf


def test_out_of_order_packets_wait_for_the_gap() -> None:
    buf = buffer_at(0xFFFE)
    assert buf.add_data(0, b"c", 100) == []  # 0xFFFF is missing
    assert buf.add_data(1, b"d", 100) == []
    assert buf.held_bytes == 2
    assert buf.sack() == b"\x03\x00\x00\x00"  # bits for ack_nr + 2 and + 3
    assert buf.add_data(0xFFFF, b"b", 100) == [b"b", b"c", b"d"]
    assert buf.ack_nr == 1 and buf.held_bytes == 0 and buf.sack() is None


def test_duplicates_overruns_and_far_packets_are_not_held() -> None:
    buf = buffer_at(10, span=8)
    assert buf.add_data(10, b"old", 100) == []
    assert buf.add_data(12, b"x" * 50, 10) == []  # no room for it
    assert buf.held_bytes == 0
    assert buf.beyond(19) and not buf.beyond(18)
    assert ReorderBuffer(10_000).span == SACK_SPAN


def test_fin_ahead_of_data_finishes_once_the_gap_fills() -> None:
    buf = buffer_at(5)
    buf.add_fin(8)
    assert not buf.finished and buf.sack() == b"\x02\x00\x00\x00"  # 8 = ack_nr + 3
    buf.add_data(7, b"b", 100)
    assert buf.add_data(9, b"after the end", 100) == []
    assert buf.add_data(6, b"a", 100) == [b"a", b"b"]
    assert buf.finished and buf.ack_nr == 8
    buf.add_fin(8)  # a retransmitted FIN changes nothing
    assert buf.finished and buf.ack_nr == 8
