"""One uTP connection as a sans-IO state machine (BEP 29), for either end of the handshake.

Theory of operation. The owner feeds datagrams addressed to this connection
(`receive_datagram`), stream bytes to send (`send`) and the clock (every call takes
``now``, seconds); it takes back datagrams (`datagrams_to_send`), one deadline
(`get_timer` / `handle_timer`) and stream events (`next_event`). Nothing here touches a
socket or a clock, so the same object runs under asyncio and on a test's fake clock.

Sequence numbers count packets, not bytes, and wrap at 16 bits. ST_STATE carries the
*next* sequence number without consuming it, so an initiator that receives the acceptor's
ST_STATE sets ``ack_nr = seq_nr - 1`` (as libtorrent and libutp do). Every received ST_DATA
or ST_FIN is acknowledged by the next datagram we send; out-of-order packets wait in the
`reorder` buffer and are reported with a selective ACK. Our packets wait in `outbound`
until acknowledged; it detects losses (fast retransmit, once per packet), and a whole
timeout without acknowledgement (`rtt`: 1 s at first, then max(rtt + 4 * rtt_var, 500 ms),
doubling per consecutive timeout) resends everything; after a bounded number of timeouts
the peer is gone. New data goes out only
while bytes in flight stay within min(LEDBAT window, the peer's advertised window); a fast
retransmit replaces its lost packet at once, and a zero window is probed with one byte per
timeout. Every buffer is bounded: the send buffer by `UtpConfig.send_buffer` (the
caller's misuse raises), the reorder buffer and undelivered data by ``recv_buffer`` (the
peer's excess is dropped, never stored).
"""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass
from typing import Final

from magnet.utp.events import (
    Connected,
    ConnectionReset,
    ConnectionTimedOut,
    DataReceived,
    EndOfStream,
    UtpEvent,
    UtpUsageError,
)
from magnet.utp.header import (
    HEADER_SIZE,
    MAX_SACK_BYTES,
    SEQ_MASK,
    ST_DATA,
    ST_FIN,
    ST_RESET,
    ST_STATE,
    ST_SYN,
    Packet,
    UtpError,
    encode,
    parse,
    seq_add,
    seq_lt,
)
from magnet.utp.ledbat import Ledbat
from magnet.utp.outbound import SentPacket, SentPackets
from magnet.utp.reorder import ReorderBuffer
from magnet.utp.rtt import RttEstimator

__all__ = ["LINGER_S", "State", "UtpConfig", "UtpConnection"]

# After both FINs are exchanged the connection stays a while to re-ack a retransmitted FIN
# (our ack may have been lost) instead of letting the socket answer it with ST_RESET.
LINGER_S: Final = 5.0
_U32: Final = 0xFFFFFFFF


class State(enum.Enum):
    IDLE = "idle"
    SYN_SENT = "syn-sent"
    SYN_RECV = "syn-recv"
    CONNECTED = "connected"
    CLOSED = "closed"  # both FINs done, or the peer timed out
    RESET = "reset"  # ST_RESET sent or received


@dataclass(frozen=True, slots=True)
class UtpConfig:
    """Limits of one connection. ``mtu`` bounds a whole uTP packet (header included)."""

    mtu: int = 1400
    recv_buffer: int = 1 << 20
    send_buffer: int = 1 << 20
    max_reorder_packets: int = 256
    max_packets_in_flight: int = 512
    syn_retries: int = 2
    data_retries: int = 4
    initial_rto_s: float = 1.0
    min_rto_s: float = 0.5

    @property
    def max_payload(self) -> int:
        """Payload bytes per packet: the MTU less the header and a full selective ACK."""
        return max(1, self.mtu - HEADER_SIZE - 2 - MAX_SACK_BYTES)


def _us(now: float) -> int:
    return int(now * 1_000_000) & _U32


class UtpConnection:
    """One uTP stream. Start it with `connect` (initiator) or `accept` (acceptor).

    :param rng: the source of connection ids and initial sequence numbers.
    """

    def __init__(self, *, rng: random.Random, config: UtpConfig | None = None) -> None:
        self.config = config or UtpConfig()
        self.state = State.IDLE
        self.initiator = False
        self.recv_id = 0
        self.send_id = 0
        self.dropped = 0  # datagrams that did not parse
        self._rng = rng
        self._mss = self.config.max_payload
        self._ledbat = Ledbat(self._mss)
        self._events: deque[UtpEvent] = deque()
        self._undelivered = 0  # bytes in DataReceived events not yet taken
        # sending side
        self._sent = SentPackets()  # numbered, not yet acknowledged
        self._pending = bytearray()  # stream bytes not yet in a packet
        self._peer_wnd = self._mss
        self._closing = False
        self._fin_seq: int | None = None
        self._reset_due = False
        self._probe_due = False
        # receiving side
        self._inbound = ReorderBuffer(self.config.max_reorder_packets)
        self._syn_seq = 0  # the SYN's sequence number (ours or the initiator's)
        self._ack_due = False
        self._reply_micro = 0
        # timing
        self._rtt = RttEstimator(self.config.initial_rto_s, self.config.min_rto_s)
        self._num_timeouts = 0
        self._timeout_at: float | None = None
        self._linger_until: float | None = None
        self._done = False

    # ------------------------------------------------------------------ commands

    def connect(self, now: float, *, recv_id: int | None = None, seq_nr: int | None = None) -> None:
        """Start the handshake: queue an ST_SYN carrying our receive id (BEP 29)."""
        if self.state is not State.IDLE:
            raise UtpUsageError(f"connect() in state {self.state.value}")
        self.initiator = True
        self.recv_id = self._rng.randrange(0x10000) if recv_id is None else recv_id & SEQ_MASK
        self.send_id = seq_add(self.recv_id, 1)
        self._start_seq(seq_nr)
        self._syn_seq = self._sent.take(ST_SYN, b"", need_resend=True).seq
        self.state = State.SYN_SENT

    def accept(self, syn: Packet, now: float, *, seq_nr: int | None = None) -> None:
        """Answer a received ST_SYN: ids from its connection_id, an ST_STATE queued."""
        if self.state is not State.IDLE:
            raise UtpUsageError(f"accept() in state {self.state.value}")
        if syn.type != ST_SYN:
            raise UtpUsageError("accept() needs an ST_SYN packet")
        self.send_id = syn.connection_id
        self.recv_id = seq_add(syn.connection_id, 1)
        self._start_seq(seq_nr)
        self._syn_seq = self._inbound.ack_nr = syn.seq_nr
        self._peer_wnd = syn.wnd_size
        self._reply_micro = (_us(now) - syn.timestamp_us) & _U32
        self.state = State.SYN_RECV
        self._ack_due = True
        self._events.append(Connected())
        self._timeout_at = now + self._rtt.rto

    def send(self, data: bytes) -> None:
        """Queue stream bytes. Raises `UtpUsageError` after close or past the send buffer."""
        if self._closing or self.state not in (State.SYN_SENT, State.SYN_RECV, State.CONNECTED):
            raise UtpUsageError(f"send() in state {self.state.value} (closing={self._closing})")
        if len(data) > self.writable():
            raise UtpUsageError("send buffer full: wait until writable() grows")
        self._pending += data

    def writable(self) -> int:
        """How many more bytes `send` takes now (queued plus unacknowledged <= send_buffer)."""
        return max(0, self.config.send_buffer - len(self._pending) - self._sent.unacked)

    def close(self) -> None:
        """Finish our stream: an ST_FIN follows the bytes already queued."""
        if self.state is State.SYN_SENT:
            self._finish(State.CLOSED)
        elif self.state in (State.SYN_RECV, State.CONNECTED):
            self._closing = True

    def abort(self) -> None:
        """Drop everything and tell the peer with ST_RESET."""
        if self.state in (State.SYN_SENT, State.SYN_RECV, State.CONNECTED):
            self._reset_due = True
        self._finish(State.RESET)

    # ------------------------------------------------------------------ inputs

    def receive_datagram(self, data: bytes, now: float) -> None:
        """Feed one datagram for this connection; garbage is counted and dropped."""
        try:
            packet = parse(data)
        except UtpError:
            self.dropped += 1
            return
        self.receive_packet(packet, now)

    def receive_packet(self, p: Packet, now: float) -> None:
        """Feed one parsed packet (the socket parses once to route it)."""
        if self._done or self.state in (State.IDLE, State.RESET):
            return
        if self.state is State.CLOSED:
            if p.type == ST_FIN and p.seq_nr == self._inbound.eof_seq:
                self._ack_due = True  # our ack of their FIN was lost
            return
        if p.type == ST_SYN:
            if not self.initiator and p.seq_nr == self._syn_seq:
                self._ack_due = True  # the initiator missed our ST_STATE
            return
        if p.type == ST_RESET:
            # A reset must not acknowledge packets we never sent (libtorrent's check).
            if not seq_lt(self._sent.seq_nr, p.ack_nr):
                self._fail(ConnectionReset(), State.RESET)
            return
        if self.state is State.SYN_SENT:
            if p.ack_nr != self._syn_seq or p.type not in (ST_STATE, ST_DATA):
                return
            self._inbound.ack_nr = seq_add(p.seq_nr, -1)
            self.state = State.CONNECTED
            self._events.append(Connected())
        elif self.state is State.SYN_RECV:
            self.state = State.CONNECTED
        if p.type in (ST_DATA, ST_FIN) and self._inbound.beyond(p.seq_nr):
            return  # beyond what we could buffer: damage or an attack
        self._peer_wnd = p.wnd_size
        self._reply_micro = (_us(now) - p.timestamp_us) & _U32
        self._num_timeouts = 0
        delay = None
        if p.timestamp_difference_us:
            delay = self._ledbat.delay_sample(p.timestamp_difference_us, now)
        in_flight_before = self._sent.in_flight
        acked = self._sent.on_ack(p, now)
        for sample in acked.rtt_samples:
            self._rtt.sample(sample)
        if acked.progressed:
            self._timeout_at = now + self._rtt.rto if self._sent else None
        if acked.loss:
            self._ledbat.on_loss()
        if delay is not None and acked.acked_bytes:
            # The one-way delay can never exceed the round trip: clamp noise with it.
            if acked.rtt_samples:
                delay = min(delay, int(min(acked.rtt_samples) * 1_000_000))
            self._ledbat.on_ack(acked.acked_bytes, delay, in_flight_before)
        if p.type in (ST_DATA, ST_FIN):
            self._on_stream(p)
        self._check_closed(now)

    def handle_timer(self, now: float) -> None:
        """Act on the deadline of `get_timer`: retransmit, probe, give up, or forget."""
        if self._linger_until is not None and now >= self._linger_until:
            self._linger_until = None
            self._done = True
            return
        if self._timeout_at is None or now < self._timeout_at or self._done:
            return
        self._timeout_at = None
        if self._sent or self.state is State.SYN_RECV:
            self._num_timeouts += 1
            limit = (
                self.config.syn_retries
                if self.state is State.SYN_SENT
                else self.config.data_retries
            )
            if self._num_timeouts > limit:
                self._fail(ConnectionTimedOut(), State.CLOSED)
                return
            if self.state is State.SYN_RECV:
                self._ack_due = True  # perhaps the initiator never saw our ST_STATE
            if self._sent:
                self._ledbat.on_timeout()
                self._sent.timed_out()
            self._timeout_at = now + self._backoff()
        elif self._pending or (self._closing and self._fin_seq is None):
            self._probe_due = True

    # ------------------------------------------------------------------ outputs

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """Everything due now: a reset, retransmissions, new data, a FIN, or a bare ack."""
        out: list[bytes] = []
        if self._reset_due:
            self._reset_due = False
            out.append(self._encode(ST_RESET, self._sent.seq_nr, b"", now))
        if self._done or self.state in (State.IDLE, State.RESET):
            return out
        for sent in self._sent.to_resend():
            # Resends go first, in order. A fast retransmit goes at once (as in TCP and
            # libtorrent: the packet it replaces has left the network); after a timeout one
            # packet goes even into a closed window (BEP 29: the timeout "allows it to send
            # one more packet") and the rest wait for room.
            in_flight = self._sent.in_flight
            if in_flight and in_flight + len(sent.payload) > self.send_window and not sent.urgent:
                break
            out.append(self._transmit(sent, now))
        if self.state in (State.SYN_RECV, State.CONNECTED):
            self._send_new(out, now)
        if self._ack_due and self.state is not State.SYN_SENT:
            # After our FIN, acks name the FIN's number: libtorrent drops any packet
            # numbered past the FIN it received, and this ack would be one.
            state_seq = self._sent.seq_nr if self._fin_seq is None else self._fin_seq
            out.append(self._encode(ST_STATE, state_seq, b"", now))
        self._ack_due = False
        if self._timeout_at is None and self._needs_timer():
            self._timeout_at = now + self._backoff()
        return out

    def get_timer(self) -> float | None:
        """The one absolute deadline at which `handle_timer` must run, if any."""
        if self._done:
            return None
        if self._linger_until is not None:
            return self._linger_until
        return self._timeout_at

    def next_event(self) -> UtpEvent | None:
        """The oldest event not yet taken."""
        if not self._events:
            return None
        event = self._events.popleft()
        if isinstance(event, DataReceived):
            self._undelivered -= len(event.data)
        return event

    # ------------------------------------------------------------------ views

    @property
    def send_window(self) -> int:
        """Bytes that may be in flight: min(congestion window, peer's receive window)."""
        return min(self._ledbat.window, self._peer_wnd)

    @property
    def in_flight(self) -> int:
        """Payload bytes sent and neither acknowledged nor given up as lost."""
        return self._sent.in_flight

    @property
    def unacked(self) -> int:
        """Payload bytes sent (each at least once) and not yet acknowledged."""
        return self._sent.unacked

    @property
    def is_finished(self) -> bool:
        """Nothing more will happen: the owner may forget this connection."""
        return self._done and not self._events and not self._reset_due

    @property
    def buffered(self) -> int:
        """Bytes held for the peer: send buffer, unacked packets, reorder and undelivered."""
        held = self._inbound.held_bytes
        return len(self._pending) + self._sent.unacked + held + self._undelivered

    # ------------------------------------------------------------------ internals

    def _start_seq(self, seq_nr: int | None) -> None:
        self._sent.start(self._rng.randrange(0x10000) if seq_nr is None else seq_nr & SEQ_MASK)

    def _backoff(self) -> float:
        return self._rtt.backoff(self._num_timeouts)

    def _needs_timer(self) -> bool:
        if self._sent or self.state is State.SYN_RECV:
            return True
        return bool(self._pending) or (self._closing and self._fin_seq is None)

    def _send_new(self, out: list[bytes], now: float) -> None:
        sent = self._sent
        while self._pending and len(sent) < self.config.max_packets_in_flight:
            room = self.send_window - sent.in_flight
            if self._probe_due and sent.in_flight == 0:
                room = max(room, 1)
            # Wait for a full packet's room rather than dribble small ones (silly window).
            if room <= 0 or (room < self._mss < len(self._pending) and sent.in_flight):
                break
            size = min(room, self._mss)
            payload = bytes(self._pending[:size])
            del self._pending[:size]
            self._probe_due = False
            out.append(self._transmit(sent.take(ST_DATA, payload), now))
        fin_due = self._closing and not self._pending and self._fin_seq is None
        if fin_due and len(sent) < self.config.max_packets_in_flight:
            fin = sent.take(ST_FIN, b"")
            self._fin_seq = fin.seq
            out.append(self._transmit(fin, now))

    def _transmit(self, sent: SentPacket, now: float) -> bytes:
        self._sent.transmitted(sent, now)
        return self._encode(sent.type, sent.seq, sent.payload, now)

    def _encode(self, ptype: int, seq: int, payload: bytes, now: float) -> bytes:
        return encode(
            Packet(
                type=ptype,
                connection_id=self.recv_id if ptype == ST_SYN else self.send_id,
                timestamp_us=_us(now),
                timestamp_difference_us=self._reply_micro,
                wnd_size=self._advertised_window(),
                seq_nr=seq,
                ack_nr=self._inbound.ack_nr,
                sack=self._inbound.sack() if ptype != ST_SYN else None,
                payload=payload,
            )
        )

    def _advertised_window(self) -> int:
        held = self._undelivered + self._inbound.held_bytes
        return max(0, self.config.recv_buffer - held)

    def _on_stream(self, p: Packet) -> None:
        self._ack_due = True
        inbound = self._inbound
        finished = inbound.finished
        if p.type == ST_FIN:
            inbound.add_fin(p.seq_nr)
        else:
            for payload in inbound.add_data(p.seq_nr, p.payload, self._advertised_window()):
                if payload:
                    self._events.append(DataReceived(payload))
                    self._undelivered += len(payload)
        if inbound.finished and not finished:
            self._events.append(EndOfStream())

    def _check_closed(self, now: float) -> None:
        fin_acked = self._fin_seq is not None and self._fin_seq not in self._sent
        if fin_acked and self._inbound.finished and self.state is State.CONNECTED:
            self.state = State.CLOSED
            self._timeout_at = None
            self._linger_until = now + LINGER_S

    def _fail(self, event: UtpEvent, state: State) -> None:
        self._events.append(event)
        self._finish(state)

    def _finish(self, state: State) -> None:
        self.state = state
        self._sent.clear()
        self._pending.clear()
        # Drop what is held, but keep the ack number: a reset still to go out must ack the
        # last packet we got, or the peer takes it for a forgery and ignores it.
        ack_nr = self._inbound.ack_nr
        self._inbound = ReorderBuffer(self.config.max_reorder_packets)
        self._inbound.ack_nr = ack_nr
        self._timeout_at = self._linger_until = None
        self._done = True
