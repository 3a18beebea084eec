"""Attacks on the DHT core's front door: nested garbage, queries that dodge the limits, floods.

Each test drives a ``DhtProtocol`` directly with explicit times. Cost is shown by counting
calls into the bencode decoder (``dht.wire._bdecode``), never by a clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import bencode2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dht import wire
from dht.config import DhtConfig
from dht.events import QueryAnswered
from dht.protocol import DhtProtocol
from dht.wire import KrpcDecodeError, Response, decode, encode_query

ATTACKER = ("198.51.100.66", 4000)


def core(**cfg: object) -> DhtProtocol:
    config = DhtConfig()
    for k, v in cfg.items():
        setattr(config, k, v)
    return DhtProtocol(b"s" * 20, rng=random.Random(1), now=0.0, config=config)


@pytest.fixture
def decoder_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every datagram that reached the bencode decoder."""
    calls: list[bytes] = []
    real: Callable[[bytes], object] = wire._bdecode

    def counting(data: bytes) -> object:
        calls.append(data)
        return real(data)

    monkeypatch.setattr(wire, "_bdecode", counting)
    yield calls


NESTED = [
    b"l" * 1400,
    b"d" * 1400,
    b"d1:a" + b"l" * 1396,
    b"d1:ad2:id20:" + b"i" * 20 + b"1:x" + b"l" * 1350,
    b"l1:a" * 350,
    b"d1:y1:q1:a" + b"l" * 1380 + b"1:y1:qe",  # ends like a query
    b"l" * 100 + b"1000:" + b"e" * 1000,  # the closing bytes hidden inside a string
]


@pytest.mark.parametrize("data", NESTED)
def test_deep_nesting_never_reaches_the_decoder(data: bytes, decoder_calls: list[bytes]) -> None:
    with pytest.raises(KrpcDecodeError) as info:
        decode(data)
    assert info.value.t is None  # garbage: dropped without a word
    assert decoder_calls == []


def test_nested_garbage_is_dropped_and_counted(decoder_calls: list[bytes]) -> None:
    p = core()
    for data in NESTED:
        p.receive_datagram(data, ATTACKER, 1.0)
    assert p.datagrams_to_send(1.0) == []
    assert p.stats.dropped["garbage"] == len(NESTED)
    assert decoder_calls == []


def test_real_messages_still_decode() -> None:
    rng = random.Random(5)
    for _ in range(200):
        r = {
            b"id": rng.randbytes(20),
            b"nodes": rng.randbytes(26 * 8),
            b"values": [rng.randbytes(6) for _ in range(50)],
            b"token": rng.randbytes(8),
        }
        msg = bencode2.bencode({b"r": r, b"t": rng.randbytes(2), b"y": b"r", b"v": b"MG01"})
        assert isinstance(decode(msg), Response)
    # BEP 44 values may nest a little
    v = [[[[[[b"x"]]]]]]
    q = encode_query(b"t", b"put", {b"id": b"i" * 20, b"v": v, b"token": b"k"})
    assert decode(q).args[b"v"] == v  # type: ignore[union-attr]


nested = st.recursive(
    st.one_of(st.binary(max_size=8), st.integers(-(2**70), 2**70)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.binary(max_size=4), inner, max_size=4)
    ),
    max_leaves=30,
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(value=nested, cut=st.integers(0, 2000), pad=st.binary(max_size=50))
def test_front_door_agrees_with_the_decoder(value: object, cut: int, pad: bytes) -> None:
    """Whatever the front door lets through decodes as before, whatever it refuses is garbage
    the decoder would refuse too or nests deeper than ``MAX_DEPTH``."""
    data = bencode2.bencode({b"t": b"aa", b"y": b"r", b"r": {b"id": b"i" * 20, b"x": value}})
    for candidate in (data, data[:cut], data + pad, pad + data):
        try:
            expected: object = bencode2.bdecode(candidate)
        except Exception:
            expected = None
        if candidate.count(b"l") + candidate.count(b"d") > wire._UNSCANNED:
            shape_ok = wire._shape_ok(candidate)
            if expected is not None:
                assert shape_ok or _depth(expected) > wire.MAX_DEPTH


@settings(max_examples=200, deadline=None)
@given(depth=st.integers(wire.MAX_DEPTH + 1, 1400), head=st.binary(max_size=40))
def test_nesting_bombs_are_refused_before_decoding(depth: int, head: bytes) -> None:
    for bomb in (b"d1:a" + b"l" * depth, head + b"l" * depth, b"l" * depth + head):
        assert not wire._shape_ok(bomb)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


# --- limits on every decoded query ------------------------------------------------------


def answered(p: DhtProtocol, now: float) -> int:
    return sum(isinstance(decode(d), Response) for d, _ in p.datagrams_to_send(now))


def test_a_key_after_y_does_not_escape_the_per_source_limit() -> None:
    p = core(rate_per_ip=5.0, rate_burst=5.0)
    q = bencode2.bencode(
        {b"a": {b"id": b"c" * 20}, b"q": b"ping", b"t": b"aa", b"y": b"q", b"z": 1}
    )
    assert not q.endswith(b"1:y1:qe")
    for _ in range(50):
        p.receive_datagram(q, ATTACKER, 1.0)
    assert answered(p, 1.0) == 5
    assert p.stats.dropped["rate limited"] == 45


def test_a_key_after_y_does_not_escape_the_global_limit() -> None:
    p = core(max_query_rate=10.0)
    q = bencode2.bencode(
        {b"a": {b"id": b"c" * 20}, b"q": b"ping", b"t": b"aa", b"y": b"q", b"zz": b""}
    )
    for i in range(100):
        p.receive_datagram(q, (f"198.51.{i // 250}.{i % 250}", 1), 1.0)
    assert answered(p, 1.0) == 10


def test_queries_with_bad_arguments_are_limited_too() -> None:
    p = core(rate_per_ip=5.0, rate_burst=5.0)
    q = bencode2.bencode({b"a": {b"id": b"short"}, b"q": b"ping", b"t": b"aa", b"y": b"q", b"z": 1})
    for _ in range(50):
        p.receive_datagram(q, ATTACKER, 1.0)
    assert len(p.datagrams_to_send(1.0)) == 5  # five 203 errors, then nothing


def test_a_garbage_flood_from_one_source_runs_dry(decoder_calls: list[bytes]) -> None:
    p = core(rate_per_ip=5.0, rate_burst=5.0)
    for i in range(100):
        p.receive_datagram(b"garbage %d" % i, ATTACKER, 1.0)
    assert len(decoder_calls) == 5  # the rest never reached the decoder
    assert p.stats.dropped["garbage"] == 5
    assert p.stats.dropped["rate limited"] == 95
    # and the source's queries wait for its bucket like anyone's
    ping = encode_query(b"aa", b"ping", {b"id": b"c" * 20})
    p.receive_datagram(ping, ATTACKER, 1.0)
    assert answered(p, 1.0) == 0
    p.receive_datagram(ping, ATTACKER, 3.0)
    assert answered(p, 3.0) == 1
    # another source is not starved, and this host is never limited
    p.receive_datagram(ping, ("198.51.100.67", 1), 3.0)
    assert answered(p, 3.0) == 1
    for _ in range(20):
        p.receive_datagram(b"junk", ("127.0.0.9", 1), 3.0)
    p.receive_datagram(ping, ("127.0.0.9", 1), 3.0)
    assert answered(p, 3.0) == 1


def test_answers_from_a_flooding_source_still_arrive() -> None:
    p = core(rate_per_ip=1.0, rate_burst=1.0)
    for i in range(20):
        p.receive_datagram(b"junk %d" % i, ATTACKER, 0.0)
    rid = p.ping(ATTACKER, 0.0)
    ((data, _),) = p.datagrams_to_send(0.0)
    t = decode(data).t
    p.receive_datagram(
        bencode2.bencode({b"r": {b"id": b"x" * 20}, b"t": t, b"y": b"r"}), ATTACKER, 0.1
    )
    events = []
    while (ev := p.next_event()) is not None:
        events.append(ev)
    assert any(isinstance(ev, QueryAnswered) and ev.request_id == rid for ev in events)
