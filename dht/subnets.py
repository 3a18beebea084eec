"""Which network an address belongs to, for limits that one operator must not escape.

One host holds one IPv4 address but a whole IPv6 /64, and one operator easily holds a whole
IPv4 /24 or IPv6 /48. The routing table, the bootstrap pool, the peer store and the BEP 42
vote count entries per ``host_key`` and per ``subnet_key`` so that no single host or network
can fill them (libtorrent keeps one node per IP and few per /24 in a bucket for the same
reason). Private and loopback addresses have no keys (None): a lab network on them is one
operator's by definition, and a public node refuses them anyway (``AddressPolicy``).
"""

from __future__ import annotations

import socket

from dht.addresses import AddressClass, classify_packed

__all__ = ["host_key", "packed_keys", "subnet_key"]

_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
_EXEMPT = (AddressClass.PRIVATE, AddressClass.LOOPBACK)


def _packed(ip: str) -> bytes | None:
    try:
        if ":" in ip:
            b = socket.inet_pton(socket.AF_INET6, ip)
            return b[12:] if b[:12] == _MAPPED_PREFIX else b
        return socket.inet_pton(socket.AF_INET, ip)
    except (OSError, ValueError):
        return None


def host_key(ip: str) -> bytes | None:
    """The IPv4 address, or the IPv6 /64; None for private, loopback or unparsable ones."""
    b = _packed(ip)
    if b is None or classify_packed(b) in _EXEMPT:
        return None
    return b if len(b) == 4 else b[:8]


def subnet_key(ip: str) -> bytes | None:
    """The IPv4 /24, or the IPv6 /48; None like ``host_key``."""
    b = _packed(ip)
    if b is None or classify_packed(b) in _EXEMPT:
        return None
    return b[:3] if len(b) == 4 else b[:6]


def packed_keys(ip: bytes) -> tuple[bytes, bytes] | None:
    """``(host_key, subnet_key)`` of a packed address (4 or 16 bytes, as in compact node
    info), or None like ``host_key``."""
    if len(ip) == 16 and ip[:12] == _MAPPED_PREFIX:
        ip = ip[12:]
    if classify_packed(ip) in _EXEMPT or len(ip) not in (4, 16):
        return None
    return (ip, ip[:3]) if len(ip) == 4 else (ip[:8], ip[:6])
