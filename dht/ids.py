"""Node ids and info-hashes: 160-bit values under the XOR metric (BEP 5), and BEP 42 ids.

Ids travel as 20-byte strings; the routing table and lookups compare them as Python ints
(``int.from_bytes(id, "big")``) because XOR and ordering on ints is far cheaper than on bytes.
BEP 42 binds a node id to its IP address through CRC32-C so that a host cannot choose where in
the keyspace it sits; ``bep42_id`` makes such an id and ``bep42_valid`` checks one.
"""

from __future__ import annotations

import ipaddress
import random

__all__ = [
    "ID_BITS",
    "ID_LEN",
    "bep42_exempt",
    "bep42_id",
    "bep42_valid",
    "bucket_index",
    "crc32c",
    "distance",
    "id_to_int",
    "int_to_id",
    "parse_info_hash",
    "random_id",
    "random_id_in_bucket",
]

ID_LEN = 20
ID_BITS = 160


def parse_info_hash(text: str) -> bytes:
    """A v1 info-hash as 40 hex digits or 32 base32 characters -> 20 bytes (ValueError)."""
    text = text.strip()
    if len(text) == 40:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    elif len(text) == 32:
        import base64
        import binascii

        try:
            return base64.b32decode(text.upper())
        except (binascii.Error, ValueError):
            pass
    raise ValueError(f"{text!r} is not an info-hash (40 hex digits or 32 base32 characters)")


def id_to_int(node_id: bytes) -> int:
    return int.from_bytes(node_id, "big")


def int_to_id(value: int) -> bytes:
    return value.to_bytes(ID_LEN, "big")


def distance(a: bytes, b: bytes) -> int:
    """XOR distance between two ids, as an int (smaller is closer)."""
    return id_to_int(a) ^ id_to_int(b)


def bucket_index(own: int, other: int) -> int:
    """Length of the common prefix of two ids (0..160); 160 means they are equal."""
    return ID_BITS - (own ^ other).bit_length()


def random_id(rng: random.Random) -> bytes:
    return rng.getrandbits(ID_BITS).to_bytes(ID_LEN, "big")


def random_id_in_bucket(own: int, prefix_len: int, rng: random.Random) -> bytes:
    """A random id sharing exactly ``prefix_len`` leading bits with ``own``.

    Used to refresh a bucket: a lookup for such a target walks exactly that bucket's range.
    ``prefix_len == 160`` returns ``own`` itself.
    """
    if prefix_len >= ID_BITS:
        return int_to_id(own)
    flip = 1 << (ID_BITS - 1 - prefix_len)  # the first bit that differs
    low_bits = ID_BITS - 1 - prefix_len
    low = rng.getrandbits(low_bits) if low_bits else 0
    high_mask = ~((flip << 1) - 1) & ((1 << ID_BITS) - 1)
    return int_to_id((own & high_mask) | ((own & flip) ^ flip) | low)


# --- BEP 42 ----------------------------------------------------------------------------------


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32-C (Castagnoli), as BEP 42 uses; crc32c(b"123456789") == 0xE3069283."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_V4_MASK = bytes((0x03, 0x0F, 0x3F, 0xFF))
_V6_MASK = bytes((0x01, 0x03, 0x07, 0x0F, 0x1F, 0x3F, 0x7F, 0xFF))

# Addresses BEP 42 does not apply to (libtorrent's list, which adds 100.64/10 to the BEP's).
_EXEMPT = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "100.64.0.0/10",
        "::1/128",
        "fe80::/10",
        "fec0::/10",
        "fc00::/7",
    )
)


def bep42_exempt(ip: str) -> bool:
    """True for local addresses, whose node ids BEP 42 does not constrain."""
    addr = ipaddress.ip_address(ip)
    return any(addr.version == net.version and addr in net for net in _EXEMPT)


def _bep42_crc(ip: str, r: int) -> int:
    packed = ipaddress.ip_address(ip).packed
    if len(packed) == 4:
        masked = bytearray(a & m for a, m in zip(packed, _V4_MASK, strict=True))
    else:
        masked = bytearray(a & m for a, m in zip(packed[:8], _V6_MASK, strict=True))
    masked[0] |= (r & 7) << 5
    return crc32c(bytes(masked))


def bep42_id(ip: str, rng: random.Random) -> bytes:
    """A node id that conforms to BEP 42 for ``ip``."""
    r = rng.getrandbits(3)
    crc = _bep42_crc(ip, r)
    rest = rng.getrandbits(8 * 16).to_bytes(16, "big")
    first = bytes(
        ((crc >> 24) & 0xFF, (crc >> 16) & 0xFF, ((crc >> 8) & 0xF8) | rng.getrandbits(3))
    )
    last = (rng.getrandbits(5) << 3) | r
    return first + rest + bytes((last,))


def bep42_valid(node_id: bytes, ip: str, *, exempt_local: bool = True) -> bool:
    """True when ``node_id`` carries the CRC32-C prefix BEP 42 requires for ``ip``.

    Only the top 21 bits are compared; the random selector ``r`` is in the id's last byte.
    Local addresses are always valid unless ``exempt_local`` is False (tests).
    """
    if len(node_id) != ID_LEN:
        return False
    if exempt_local and bep42_exempt(ip):
        return True
    crc = _bep42_crc(ip, node_id[19] & 7)
    return (
        node_id[0] == (crc >> 24) & 0xFF
        and node_id[1] == (crc >> 16) & 0xFF
        and (node_id[2] & 0xF8) == (crc >> 8) & 0xF8
    )
