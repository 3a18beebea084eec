"""The receiving half of a uTP stream (BEP 29): in-order delivery, the reorder buffer, ST_FIN.

Packets are numbered, not bytes. ``ack_nr`` is the last packet received in order; a packet
further ahead waits here until the gap before it fills, if it lies within ``span`` packets
(what a selective ACK can describe) and the caller's room allows its bytes. The peer's
ST_FIN names the last packet of its stream; the stream is finished once every packet before
it has arrived, whatever order they came in. `sack` is the bitmask we send back.
"""

from __future__ import annotations

from magnet.utp.header import MAX_SACK_BYTES, seq_add, seq_diff, seq_lt

__all__ = ["SACK_SPAN", "ReorderBuffer"]

# The furthest packet a selective ACK can name: its first bit is ack_nr + 2.
SACK_SPAN = MAX_SACK_BYTES * 8 + 1


class ReorderBuffer:
    """Out-of-order packets of one stream, bounded in packets and (by the caller) bytes."""

    __slots__ = ("_held", "ack_nr", "eof_seq", "finished", "held_bytes", "span")

    def __init__(self, span: int) -> None:
        self.span = min(span, SACK_SPAN)
        self.ack_nr = 0
        self.eof_seq: int | None = None
        self.finished = False
        self.held_bytes = 0
        self._held: dict[int, bytes] = {}

    def beyond(self, seq: int) -> bool:
        """Whether ``seq`` is further ahead than we would ever hold (damage or an attack)."""
        return seq_diff(seq, self.ack_nr) > self.span

    def add_data(self, seq: int, payload: bytes, room: int) -> list[bytes]:
        """Take one ST_DATA; return the payloads that are now in order (maybe none).

        :param room: bytes we may still hold; a packet that does not fit is dropped.
        """
        if self.eof_seq is not None and not seq_lt(seq, self.eof_seq):
            return []  # nothing comes after the FIN
        ahead = seq_diff(seq, self.ack_nr)
        if ahead <= 0 or seq in self._held or len(payload) > room:
            return []  # a duplicate (our ack tells the peer), or an overrun window
        if ahead > 1:
            self._held[seq] = payload
            self.held_bytes += len(payload)
            return []
        ready = [payload]
        self.ack_nr = seq
        while (nxt := seq_add(self.ack_nr, 1)) in self._held:
            held = self._held.pop(nxt)
            self.held_bytes -= len(held)
            ready.append(held)
            self.ack_nr = nxt
        self._check_end()
        return ready

    def add_fin(self, seq: int) -> None:
        """Take the peer's ST_FIN (the first one names the end; repeats change nothing)."""
        if self.eof_seq is None:
            self.eof_seq = seq
        self._check_end()

    def sack(self) -> bytes | None:
        """The selective-ACK bitmask of what we hold past ``ack_nr + 1`` (the FIN too)."""
        held = list(self._held)
        if self.eof_seq is not None and not self.finished:
            held.append(self.eof_seq)  # a FIN ahead of missing data is held too
        if not held:
            return None
        mask = bytearray(MAX_SACK_BYTES)
        top = 0
        for seq in held:
            bit = seq_diff(seq, self.ack_nr) - 2
            if 0 <= bit < MAX_SACK_BYTES * 8:
                mask[bit >> 3] |= 1 << (bit & 7)
                top = max(top, bit)
        return bytes(mask[: (top // 32 + 1) * 4])

    def _check_end(self) -> None:
        if self.finished or self.eof_seq is None:
            return
        if seq_add(self.ack_nr, 1) == self.eof_seq:
            self.ack_nr = self.eof_seq
            self.finished = True
            self._held.clear()
            self.held_bytes = 0
