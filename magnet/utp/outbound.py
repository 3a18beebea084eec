"""The sending half of a uTP stream (BEP 29): numbered packets until acknowledged, and loss.

Each packet we send takes the next 16-bit sequence number (ST_STATE takes none) and stays
here until acknowledged, cumulatively by ``ack_nr`` or selectively by the bitmask. Bytes
*in flight* are those sent and neither acknowledged nor given up as lost; what the window
limits. A packet is lost when three packets after it were selectively acknowledged, or
when three duplicate ST_STATE acks name the packet before it (BEP 29 "packet loss"); it is
then resent at once, once. A timeout gives every packet up. The window is cut at most once
per flight: only a loss of a packet sent after the last cut cuts it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from magnet.utp.header import ST_STATE, Packet, seq_add, seq_lt

__all__ = ["DUPLICATE_ACKS_BEFORE_RESEND", "AckResult", "SentPacket", "SentPackets"]

DUPLICATE_ACKS_BEFORE_RESEND: Final = 3


@dataclass(slots=True)
class SentPacket:
    """A packet that took a sequence number and is not yet acknowledged."""

    seq: int
    type: int
    payload: bytes
    sent_at: float = 0.0
    transmissions: int = 0
    need_resend: bool = False  # not counted in flight until sent again
    fast_resent: bool = False  # fast retransmit happens once per packet
    urgent: bool = False  # a fast retransmit: it replaces a lost packet, window or not


@dataclass(slots=True)
class AckResult:
    """What one received packet acknowledged."""

    acked_bytes: int = 0
    rtt_samples: list[float] = field(default_factory=list)
    progressed: bool = False  # ack_nr moved forward
    loss: bool = False  # a loss that should cut the window


class SentPackets:
    """Our numbered packets from send to acknowledgement."""

    __slots__ = ("_packets", "acked_seq", "dup_acks", "in_flight", "loss_seq", "seq_nr", "unacked")

    def __init__(self) -> None:
        self._packets: dict[int, SentPacket] = {}  # in sequence order
        self.seq_nr = 0  # the next number to take
        self.acked_seq = 0  # every packet up to this one is acknowledged
        self.loss_seq = 0
        self.dup_acks = 0
        self.in_flight = 0
        self.unacked = 0  # payload bytes held here

    def start(self, seq_nr: int) -> None:
        self.seq_nr = seq_nr
        self.acked_seq = self.loss_seq = seq_add(seq_nr, -1)

    def __len__(self) -> int:
        return len(self._packets)

    def __contains__(self, seq: int) -> bool:
        return seq in self._packets

    def take(self, ptype: int, payload: bytes, *, need_resend: bool = False) -> SentPacket:
        """Number a new packet (not yet transmitted)."""
        sent = SentPacket(self.seq_nr, ptype, payload, need_resend=need_resend)
        self._packets[sent.seq] = sent
        self.unacked += len(payload)
        self.seq_nr = seq_add(self.seq_nr, 1)
        return sent

    def transmitted(self, sent: SentPacket, now: float) -> None:
        if sent.need_resend or not sent.transmissions:
            self.in_flight += len(sent.payload)
        sent.need_resend = sent.urgent = False
        sent.transmissions += 1
        sent.sent_at = now

    def to_resend(self) -> Iterator[SentPacket]:
        """Packets given up as lost, oldest first."""
        return (sent for sent in self._packets.values() if sent.need_resend)

    def timed_out(self) -> None:
        """Nothing came back for a whole timeout: every packet is to be sent again."""
        self.loss_seq = seq_add(self.seq_nr, -1)
        for sent in self._packets.values():
            self._mark_resend(sent)

    def clear(self) -> None:
        self._packets.clear()
        self.in_flight = self.unacked = 0

    def on_ack(self, p: Packet, now: float) -> AckResult:
        """Retire what ``p`` acknowledges and look for losses."""
        result = AckResult()
        last_sent = seq_add(self.seq_nr, -1)
        if seq_lt(self.acked_seq, p.ack_nr) and not seq_lt(last_sent, p.ack_nr):
            seq = self.acked_seq
            while seq != p.ack_nr:
                seq = seq_add(seq, 1)
                self._retire(seq, now, result)
            self.acked_seq = p.ack_nr
            self.dup_acks = 0
            result.progressed = True
        elif p.type == ST_STATE and p.ack_nr == self.acked_seq and self._packets:
            self.dup_acks += 1
        sacked = [s for s in p.sacked() if seq_lt(self.acked_seq, s) and not seq_lt(last_sent, s)]
        for seq in sacked:
            self._retire(seq, now, result)
        if len(sacked) >= DUPLICATE_ACKS_BEFORE_RESEND:
            third_last = sacked[-DUPLICATE_ACKS_BEFORE_RESEND]
            for sent in list(self._packets.values()):
                if not seq_lt(sent.seq, third_last):
                    break
                self._lost(sent, result)
        if self.dup_acks >= DUPLICATE_ACKS_BEFORE_RESEND:
            first = self._packets.get(seq_add(self.acked_seq, 1))
            if first is not None:
                self._lost(first, result)
        return result

    def _retire(self, seq: int, now: float, result: AckResult) -> None:
        sent = self._packets.pop(seq, None)
        if sent is None:
            return
        self.unacked -= len(sent.payload)
        if not sent.need_resend:
            self.in_flight -= len(sent.payload)
        if sent.transmissions == 1:  # Karn: an ack of a resent packet times nothing
            result.rtt_samples.append(max(0.0, now - sent.sent_at))
        result.acked_bytes += len(sent.payload)

    def _lost(self, sent: SentPacket, result: AckResult) -> None:
        if sent.fast_resent or not sent.transmissions:
            return
        sent.fast_resent = True
        self._mark_resend(sent)
        sent.urgent = True
        if seq_lt(self.loss_seq, sent.seq):
            result.loss = True
            self.loss_seq = seq_add(self.seq_nr, -1)

    def _mark_resend(self, sent: SentPacket) -> None:
        if not sent.need_resend and sent.transmissions:
            self.in_flight -= len(sent.payload)
        sent.need_resend = True
