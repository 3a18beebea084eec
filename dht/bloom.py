"""BEP 33 scrape filters: how many seeds and peers a swarm has, counted without connecting.

A node asked ``get_peers`` with ``scrape=1`` answers with two bloom filters over the IPs it
stores for the info-hash, ``BFsd`` (seeds) and ``BFpe`` (peers). Each is 256 bytes, 2048 bits,
with two bit indexes per IP taken from SHA-1 of the packed address (4 bytes for IPv4, 16 for
IPv6, no port): the first and second little-endian 16-bit words of the hash, modulo 2048; bit
``i`` lives in byte ``i // 8`` at ``1 << (i % 8)``. A querier ORs the filters of the closest
nodes (the same IP counts once however many nodes saw it) and estimates the count from the
share of zero bits. Past about 6000 IPs the filter saturates and the estimate stops meaning
much; BEP 33 asks storing nodes to stay below that.
"""

from __future__ import annotations

import hashlib
import math
import socket
from collections.abc import Iterable

__all__ = ["BLOOM_BITS", "BLOOM_BYTES", "ScrapeFilter", "bloom_indexes", "packed_ip"]

BLOOM_BYTES = 256
BLOOM_BITS = BLOOM_BYTES * 8
BLOOM_HASHES = 2  # k: bits set per IP

_MAPPED_PREFIX = bytes(10) + b"\xff\xff"  # ::ffff:0:0/96, IPv4-mapped (RFC 4291)
# ln(1 - 1/m), the denominator's constant part in the BEP's estimate.
_LN_MISS = math.log(1.0 - 1.0 / BLOOM_BITS)


def packed_ip(ip: str) -> bytes:
    """The bytes an IP is hashed as: 4 for IPv4, 16 for IPv6. ValueError if ``ip`` is neither.

    An IPv4-mapped IPv6 address (what a dual-stack socket reports) is the IPv4 address it
    carries, so a peer counts once whichever socket it came in on.
    """
    try:
        if ":" not in ip:
            return socket.inet_pton(socket.AF_INET, ip)
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except OSError:
        raise ValueError(f"not an IP address: {ip!r}") from None
    return packed[12:] if packed[:12] == _MAPPED_PREFIX else packed


def bloom_indexes(packed: bytes) -> tuple[int, int]:
    """The two bits BEP 33 sets for a packed IP (see ``packed_ip``)."""
    h = hashlib.sha1(packed).digest()
    return (h[0] | h[1] << 8) % BLOOM_BITS, (h[2] | h[3] << 8) % BLOOM_BITS


class ScrapeFilter:
    """One BEP 33 bloom filter (``BFsd`` or ``BFpe``): add IPs, merge, estimate, serialise."""

    __slots__ = ("_bits",)

    def __init__(self, data: bytes = bytes(BLOOM_BYTES)) -> None:
        if len(data) != BLOOM_BYTES:
            raise ValueError(f"a scrape filter is {BLOOM_BYTES} bytes, not {len(data)}")
        self._bits = bytearray(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> ScrapeFilter:
        """The filter a node sent (ValueError unless exactly 256 bytes: BEP 33 fixes the size)."""
        return cls(data)

    @classmethod
    def of(cls, ips: Iterable[str]) -> ScrapeFilter:
        """The filter of these IPs: a storing node's answer, or a querier's own filter of the
        ``values`` a node without BEP 33 sent back."""
        result = cls()
        for ip in ips:
            result.add(ip)
        return result

    @classmethod
    def union_of(cls, filters: Iterable[ScrapeFilter]) -> ScrapeFilter:
        result = cls()
        for other in filters:
            result |= other
        return result

    def add(self, ip: str) -> None:
        self.add_packed(packed_ip(ip))

    def add_packed(self, packed: bytes) -> None:
        bits = self._bits
        for index in bloom_indexes(packed):
            bits[index >> 3] |= 1 << (index & 7)

    def __or__(self, other: ScrapeFilter) -> ScrapeFilter:
        result = ScrapeFilter(bytes(self._bits))
        result |= other
        return result

    def __ior__(self, other: ScrapeFilter) -> ScrapeFilter:
        merged = int.from_bytes(self._bits, "little") | int.from_bytes(other._bits, "little")
        self._bits[:] = merged.to_bytes(BLOOM_BYTES, "little")
        return self

    def union(self, other: ScrapeFilter) -> ScrapeFilter:
        """A new filter holding the IPs of both (bitwise OR)."""
        return self | other

    def zero_bits(self) -> int:
        return BLOOM_BITS - int.from_bytes(self._bits, "little").bit_count()

    def estimate(self) -> float:
        """How many distinct IPs went in, by BEP 33's formula.

        ``c = min(m - 1, zero bits)``; ``n = ln(c / m) / (k * ln(1 - 1 / m))``. The BEP's
        clamp at m - 1 makes an empty filter read 0.5, as libtorrent's does. A full filter
        would take ln(0): we clamp c at 1 too, the largest finite answer (about 7800).
        """
        c = min(BLOOM_BITS - 1, max(1, self.zero_bits()))
        return math.log(c / BLOOM_BITS) / (BLOOM_HASHES * _LN_MISS)

    def is_empty(self) -> bool:
        return not any(self._bits)

    def __bytes__(self) -> bytes:
        return bytes(self._bits)

    def to_bytes(self) -> bytes:
        """The 256 bytes to send as ``BFsd`` or ``BFpe``."""
        return bytes(self._bits)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScrapeFilter):
            return NotImplemented
        return self._bits == other._bits

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __repr__(self) -> str:
        return f"ScrapeFilter(zero_bits={self.zero_bits()}, estimate={self.estimate():.1f})"
