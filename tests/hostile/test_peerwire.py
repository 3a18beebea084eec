"""The peer wire's front door: extended handshakes are bounded before they are decoded.

bencode2 takes ~16 ms to reject 60 KB of unclosed nesting; a peer could send such a
handshake in every message. The attack is fed to a real ``PeerConnection``; the defence is a
``Violation`` reached without handing the bytes to the decoder.
"""

from __future__ import annotations

import os

import bencode2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magnet.peerwire import NEED_DATA, ExtHandshake, PeerConnection, PeerEvent, Violation

INFO_HASH = bytes(range(20))


def opened() -> PeerConnection:
    conn = PeerConnection(INFO_HASH, os.urandom(20))
    peer = PeerConnection(INFO_HASH, os.urandom(20))
    conn.send_handshake()
    conn.receive_data(peer.send_handshake())
    assert conn.next_event() is not NEED_DATA
    return conn


def ext_handshake(payload: bytes) -> bytes:
    return (len(payload) + 2).to_bytes(4, "big") + bytes([20, 0]) + payload


def events_of(conn: PeerConnection, data: bytes) -> list[PeerEvent]:
    conn.receive_data(data)
    out = []
    while (ev := conn.next_event()) is not NEED_DATA:
        out.append(ev)
        if isinstance(ev, Violation):
            break
    return out


@pytest.mark.parametrize(
    "payload",
    [
        b"d1:m" + b"l" * 60_000,  # unclosed nesting
        b"d1:m" + b"l" * 1000 + b"e" * 1000 + b"e",  # closed, but 1000 deep
        b"d1:v" + b"60000:" + b"x" * 60_000 + b"e" + b"d" * 20_000,  # oversized
    ],
    ids=["unclosed", "deep", "oversized"],
)
def test_hostile_ext_handshakes_never_reach_the_decoder(
    payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decode(data: bytes) -> object:
        raise AssertionError("bencode2 was handed a hostile handshake")

    monkeypatch.setattr(bencode2, "bdecode", no_decode)
    events = events_of(opened(), ext_handshake(payload))
    assert events and isinstance(events[-1], Violation)


def test_an_honest_ext_handshake_still_passes() -> None:
    hello = bencode2.bencode({b"m": {b"ut_metadata": 3}, b"metadata_size": 1000, b"v": b"x"})
    events = events_of(opened(), ext_handshake(hello))
    assert isinstance(events[-1], ExtHandshake) and events[-1].metadata_size == 1000


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_ext_handshake_bytes_give_an_event_or_a_violation(payload: bytes) -> None:
    events = events_of(opened(), ext_handshake(payload))
    assert events and isinstance(events[-1], (ExtHandshake, Violation))
