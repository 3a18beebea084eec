import hashlib
import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dht.bloom import BLOOM_BITS, BLOOM_BYTES, ScrapeFilter, bloom_indexes, packed_ip

# BEP 33's vector (shared/protocol-notes.md): 192.0.2.0-192.0.2.255 and
# 2001:db8::-2001:db8::3e7, inclusive (256 + 1000 addresses).
VECTOR = bytes.fromhex(
    "F6C3F5EAA07FFD91BDE89F777F26FB2BFF37BDB8FB2BBAA2FD3DDDE7BACFFF75EE7CCBAEFE5EEDB1FBFAFF67F6ABFF"
    "5E43DDBCA3FD9B9FFDF4FFD3E9DFF12D1BDF59DB53DBE9FA5B7FF3B8FDFCDE1AFB8BEDD7BE2F3EE71EBBBFE93BCDEE"
    "FE148246C2BC5DBFF7E7EFDCF24FD8DC7ADFFD8FFFDFDDFFF7A4BBEEDF5CB95CE81FC7FCFF1FF4FFFFDFE5F7FDCBB7"
    "FD79B3FA1FC77BFE07FFF905B7B7FFC7FEFEFFE0B8370BB0CD3F5B7F2BD93FEB4386CFDD6F7FD5BFAF2E9EBFFFFEEC"
    "D67ADBF7C67F17EFD5D75EBA6FFEBA7FFF47A91EB1BFBB53E8ABFB5762ABE8FF237279BFEFBFEEF5FFC5FEBFDFE5AD"
    "FFADFEE1FB737FFFFBFD9F6AEFFEEE76B6FD8F72EF"
)
V4 = [f"192.0.2.{i}" for i in range(256)]
V6 = [str(ipaddress.IPv6Address("2001:db8::") + i) for i in range(1000)]


def _set_bits(f: ScrapeFilter) -> set[int]:
    data = bytes(f)
    return {i for i in range(BLOOM_BITS) if data[i // 8] >> (i % 8) & 1}


def test_the_bep_vector() -> None:
    assert len(VECTOR) == BLOOM_BYTES
    f = ScrapeFilter.of(V4 + V6)
    assert f.to_bytes() == VECTOR
    assert f.zero_bits() == 619
    assert f.estimate() == pytest.approx(1224.93088982, abs=1e-6)


def test_the_vector_is_the_union_of_its_parts() -> None:
    v4, v6 = ScrapeFilter.of(V4), ScrapeFilter.of(V6)
    assert v4 | v6 == ScrapeFilter.from_bytes(VECTOR)
    assert v6.union(v4).to_bytes() == VECTOR
    # Three nodes that each saw part of the swarm, overlapping: same filter as one that saw all.
    parts = [ScrapeFilter.of(V4[:200] + V6[:300]), ScrapeFilter.of(V6[250:]), ScrapeFilter.of(V4)]
    assert ScrapeFilter.union_of(parts).to_bytes() == VECTOR
    assert bytes(v4) == bytes(ScrapeFilter.of(V4))  # the operands are left alone


def test_bits_are_placed_as_the_bep_says() -> None:
    ip = "192.168.1.1"  # the BEP's own example address
    h = hashlib.sha1(bytes([192, 168, 1, 1])).digest()
    expected = {int.from_bytes(h[0:2], "little") % 2048, int.from_bytes(h[2:4], "little") % 2048}
    assert set(bloom_indexes(packed_ip(ip))) == expected
    f = ScrapeFilter()
    f.add(ip)
    assert _set_bits(f) == expected
    f.add(ip)
    assert _set_bits(f) == expected  # adding again changes nothing


def test_ips_are_hashed_in_their_packed_form() -> None:
    assert packed_ip("192.0.2.1") == bytes([192, 0, 2, 1])
    assert packed_ip("2001:db8::1") == bytes.fromhex("20010db8000000000000000000000001")
    assert packed_ip("::ffff:192.0.2.1") == bytes([192, 0, 2, 1])  # dual-stack view of IPv4
    for bad in ("192.0.2", "example.org", "1.2.3.4:80", ""):
        with pytest.raises(ValueError):
            packed_ip(bad)


def test_filters_from_the_wire_must_be_256_bytes() -> None:
    assert ScrapeFilter.from_bytes(bytes(256)).is_empty()
    for size in (0, 255, 257):
        with pytest.raises(ValueError):
            ScrapeFilter.from_bytes(bytes(size))
    f = ScrapeFilter.from_bytes(VECTOR)
    assert not f.is_empty() and bytes(ScrapeFilter.from_bytes(bytes(f))) == VECTOR


def test_estimate_clamps_at_both_ends() -> None:
    assert ScrapeFilter().estimate() == pytest.approx(0.5)  # the BEP's min(m - 1, zeros)
    full = ScrapeFilter(b"\xff" * 256)
    assert full.zero_bits() == 0
    assert 7000 < full.estimate() < 8000
    one = ScrapeFilter()
    one.add("10.0.0.1")
    assert 1 <= one.estimate() < 2


def test_estimate_grows_with_the_swarm_and_tracks_it() -> None:
    rng = random.Random(33)
    f = ScrapeFilter()
    previous = f.estimate()
    seen: set[str] = set()
    while len(seen) < 3000:
        ip = str(ipaddress.IPv4Address(rng.getrandbits(32)))
        seen.add(ip)
        f.add(ip)
        estimate = f.estimate()
        assert estimate >= previous
        previous = estimate
        if len(seen) in (10, 100, 1000, 3000):
            assert estimate == pytest.approx(len(seen), rel=0.1)


ipv4s = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6s = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
ip_sets = st.lists(ipv4s | ipv6s, max_size=80)


@settings(max_examples=100, deadline=None)
@given(a=ip_sets, b=ip_sets, c=ip_sets)
def test_union_is_the_filter_of_all_the_ips(a: list[str], b: list[str], c: list[str]) -> None:
    fa, fb, fc = ScrapeFilter.of(a), ScrapeFilter.of(b), ScrapeFilter.of(c)
    assert fa | fb == ScrapeFilter.of(a + b)
    assert fa | fb == fb | fa
    assert (fa | fb) | fc == fa | (fb | fc) == ScrapeFilter.union_of([fa, fb, fc])
    assert fa | fa == fa and fa | ScrapeFilter() == fa
    assert (fa | fb).estimate() >= max(fa.estimate(), fb.estimate())
