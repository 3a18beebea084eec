"""Hand-built IPv4 packets for the WAN lab's core tests (headers only as far as they matter)."""

from __future__ import annotations

import struct
from socket import inet_aton

__all__ = ["icmp_unreachable", "ipv4", "tcp", "udp"]


def ipv4(src: str, dst: str, proto: int, payload: bytes, *, flags_fragment: int = 0) -> bytes:
    """An IPv4 packet with a 20-byte header (checksum left 0: the lab never checks it)."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        0,
        flags_fragment,
        64,
        proto,
        0,
        inet_aton(src),
        inet_aton(dst),
    )
    return header + payload


def udp(src: str, sport: int, dst: str, dport: int, data: bytes = b"") -> bytes:
    return ipv4(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data)


def tcp(src: str, sport: int, dst: str, dport: int, data: bytes = b"") -> bytes:
    return ipv4(src, dst, 6, struct.pack("!HHIIHHHH", sport, dport, 0, 0, 0x5000, 0, 0, 0) + data)


def icmp_unreachable(src: str, dst: str, code: int) -> bytes:
    """ICMP destination unreachable with ``code`` (3: port), quoting nothing (enough here)."""
    return ipv4(src, dst, 1, struct.pack("!BBHI", 3, code, 0, 0))
