"""EncryptedStream: two ends over a fake link, any chunking, payload held until the handshake."""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magnet.encrypted_stream import EncryptedStream
from magnet.mse import CryptoMethod, MseInitiator, MseResponder

IH = bytes(range(20))
BOTH = CryptoMethod.PLAINTEXT | CryptoMethod.RC4


def rng(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def shuttle(
    a: EncryptedStream, b: EncryptedStream, schedule: random.Random
) -> tuple[bytes, bytes]:
    """Move each side's output to the other in random pieces; return what each one read."""
    wire = [bytearray(a.data_to_send()), bytearray(b.data_to_send())]  # a->b, b->a
    got = [bytearray(), bytearray()]
    sides = (a, b)
    for _ in range(10_000):
        live = [i for i in (0, 1) if wire[i] and sides[1 - i].failure is None]
        if not live:
            break
        i = schedule.choice(live)
        n = schedule.randint(1, len(wire[i]))
        chunk = bytes(wire[i][:n])
        del wire[i][:n]
        receiver = sides[1 - i]
        got[1 - i] += receiver.receive_data(chunk)
        wire[1 - i] += receiver.data_to_send()
    return bytes(got[0]), bytes(got[1])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    provide=st.sampled_from([CryptoMethod.RC4, CryptoMethod.PLAINTEXT, BOTH]),
    ia=st.binary(max_size=100),
    held=st.binary(max_size=100),
    later=st.binary(max_size=100),
)
def test_payload_arrives_in_order_under_any_chunking(
    seed: int, provide: CryptoMethod, ia: bytes, held: bytes, later: bytes
) -> None:
    a = EncryptedStream(MseInitiator(IH, provide=provide, initial_payload=ia, randbytes=rng(seed)))
    b = EncryptedStream(MseResponder([IH], randbytes=rng(seed + 1)))
    a.send(held)  # before the handshake: must wait, then follow the initial payload
    schedule = random.Random(seed)
    got_a, got_b = shuttle(a, b, schedule)
    assert a.complete and b.complete and a.failure is None and b.failure is None
    assert got_b == ia + held and got_a == b""
    a.send(later)
    b.send(later[::-1])
    got_a, got_b = shuttle(a, b, schedule)
    assert (got_a, got_b) == (later[::-1], later)


def test_failure_is_reported_and_stops_the_stream() -> None:
    a = EncryptedStream(MseInitiator(bytes(20), randbytes=rng(1)))  # a torrent b lacks
    b = EncryptedStream(MseResponder([IH], randbytes=rng(2)))
    a.send(b"held")
    shuttle(a, b, random.Random(0))
    assert b.failure == "peer asked for a torrent we do not serve"
    assert b.receive_data(b"more") == b"" and b.data_to_send() == b""
    b.send(b"x")
    assert b.data_to_send() == b""


def test_end_of_stream_during_the_handshake_fails() -> None:
    b = EncryptedStream(MseResponder([IH], randbytes=rng(2)))
    assert b.receive_data(b"") == b""
    assert b.failure is not None and "closed" in b.failure
