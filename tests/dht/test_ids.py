import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dht.ids import (
    bep42_exempt,
    bep42_id,
    bep42_valid,
    bucket_index,
    crc32c,
    id_to_int,
    int_to_id,
    random_id_in_bucket,
)

# BEP 42's published examples: (ip, rand, node id).
BEP42_VECTORS = [
    ("124.31.75.21", 1, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
    ("21.75.31.124", 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
    ("65.23.51.170", 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
    ("84.124.73.14", 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
    ("43.213.53.83", 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
]


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize(("ip", "rand", "node_id"), BEP42_VECTORS)
def test_bep42_published_examples_are_valid(ip: str, rand: int, node_id: str) -> None:
    raw = bytes.fromhex(node_id)
    assert raw[19] == rand
    assert bep42_valid(raw, ip)


@pytest.mark.parametrize(("ip", "rand", "node_id"), BEP42_VECTORS)
def test_bep42_rejects_an_id_for_another_ip(ip: str, rand: int, node_id: str) -> None:
    raw = bytes.fromhex(node_id)
    assert not bep42_valid(raw, "8.8.8.8")
    # Flipping a bit inside the 21-bit prefix breaks it; the low 3 bits of byte 2 are free.
    assert not bep42_valid(bytes([raw[0] ^ 0x80]) + raw[1:], ip)
    assert bep42_valid(raw[:2] + bytes([raw[2] ^ 0x07]) + raw[3:], ip)


def test_bep42_generated_ids_validate() -> None:
    rng = random.Random(1)
    for ip in ("124.31.75.21", "8.8.4.4", "2001:db8::1", "203.0.113.7"):
        for _ in range(20):
            assert bep42_valid(bep42_id(ip, rng), ip)


def test_bep42_exempts_local_addresses() -> None:
    assert bep42_exempt("127.0.0.1")
    assert bep42_exempt("192.168.1.1")
    assert bep42_exempt("100.64.0.1")
    assert bep42_exempt("::1")
    assert not bep42_exempt("8.8.8.8")
    assert bep42_valid(b"\x00" * 20, "10.1.2.3")


@given(st.binary(min_size=20, max_size=20), st.integers(0, 159), st.randoms(use_true_random=False))
def test_random_id_in_bucket_shares_exactly_the_prefix(
    own: bytes, prefix: int, rng: random.Random
) -> None:
    target = random_id_in_bucket(id_to_int(own), prefix, rng)
    assert bucket_index(id_to_int(own), id_to_int(target)) == prefix


def test_int_round_trip() -> None:
    raw = bytes(range(20))
    assert int_to_id(id_to_int(raw)) == raw
