"""`SentPackets`: numbering, acknowledgement (cumulative and selective), loss, flight."""

from __future__ import annotations

from magnet.utp.header import ST_DATA, ST_STATE, Packet
from magnet.utp.outbound import SentPackets


def test_sent_packets_retire_on_cumulative_and_selective_acks() -> None:
    sent = SentPackets()
    sent.start(0xFFFE)
    packets = [sent.take(ST_DATA, b"x" * 10) for _ in range(6)]  # 0xFFFE .. 3
    for p in packets:
        sent.transmitted(p, 0.0)
    assert sent.in_flight == sent.unacked == 60
    # 0xFFFE acked; 0xFFFF lost; 0, 1, 2 selectively acked (bits 0..2 from ack_nr + 2 = 0)
    result = sent.on_ack(Packet(ST_STATE, 1, 0, 0, 0, 0, 0xFFFE, sack=b"\x07\x00\x00\x00"), 0.1)
    assert result.acked_bytes == 40 and result.progressed and result.loss
    assert len(result.rtt_samples) == 4
    assert [p.seq for p in sent.to_resend()] == [0xFFFF]
    assert sent.in_flight == 10 and sent.unacked == 20  # 3 in flight; the lost one is not
    assert 3 in sent and 0 not in sent
