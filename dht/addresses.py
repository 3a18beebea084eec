"""Address hygiene: which addresses learned from others a node may send to.

A node learns addresses from strangers (``nodes``/``nodes6``/``values`` in replies, BEP 5/32),
and some strangers lie or leak their LAN. A public node that sends UDP to 10.x, 100.64.x or
192.168.x probes networks it cannot reach and earns its host abuse reports, so such addresses
(private, CGNAT, loopback, link-local, multicast, documentation and reserved ranges; port 0)
are refused unless the node itself lives on such a network: a loopback testnet or a LAN.
libtorrent draws the same line in ``is_local``/``dht_ignore_dark_internet``. Checks run once
per learned node, so they are table lookups on the packed address, not ``ipaddress`` objects.
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Iterable

from dht.wire import Addr

__all__ = [
    "AddressClass",
    "AddressPolicy",
    "classify",
    "classify_packed",
    "as_addrs",
    "format_hostport",
    "parse_hostport",
]


class AddressClass(enum.IntEnum):
    GLOBAL = 0  # global unicast: where DHT peers live
    PRIVATE = 1  # RFC 1918, CGNAT, link-local, benchmarking, ULA: real only on a LAN
    LOOPBACK = 2  # 127/8, ::1: real only on this host
    RESERVED = 3  # never a peer: unspecified, multicast, broadcast, documentation, reserved
    INVALID = 4  # not an IP address at all


# The hot path works on plain ints: indexing a tuple with an IntEnum member costs 5x more.
_G, _P, _L, _R, _INVALID = (int(c) for c in AddressClass)
_CLASSES = tuple(AddressClass)
_DEEPER = -1  # table entry: the range is split, look at the next octet

# IPv4 special ranges (RFC 6890 and its updates). Whatever is not listed is global unicast.
_V4_SPECIAL: tuple[tuple[str, int], ...] = (
    ("0.0.0.0/8", _R),  # "this network"
    ("10.0.0.0/8", _P),
    ("100.64.0.0/10", _P),  # carrier-grade NAT (RFC 6598)
    ("127.0.0.0/8", _L),
    ("169.254.0.0/16", _P),  # link-local
    ("172.16.0.0/12", _P),
    ("192.0.0.0/24", _R),  # IETF protocol assignments
    ("192.0.2.0/24", _R),  # TEST-NET-1
    ("192.168.0.0/16", _P),
    ("198.18.0.0/15", _P),  # benchmarking: used by lab networks, never on the Internet
    ("198.51.100.0/24", _R),  # TEST-NET-2
    ("203.0.113.0/24", _R),  # TEST-NET-3
    ("224.0.0.0/4", _R),  # multicast
    ("240.0.0.0/4", _R),  # reserved, and 255.255.255.255 broadcast
)


def _v4_rules() -> list[tuple[int, int, int]]:
    rules = []
    for cidr, cls in _V4_SPECIAL:
        net_text, bits_text = cidr.split("/")
        bits = int(bits_text)
        assert bits <= 24, "the octet tables resolve prefixes up to /24"
        rules.append((bits, int.from_bytes(socket.inet_aton(net_text), "big"), cls))
    rules.sort(reverse=True)  # longest prefix first
    return rules


def _build_v4_tables() -> tuple[tuple[int, ...], dict[int, int], dict[int, int]]:
    # Three levels keyed by the first one, two and three octets. Each entry is the class of
    # the whole range, or _DEEPER when a longer special prefix splits it. Built by painting
    # the rules shortest prefix first, so longer prefixes overwrite the ranges they refine;
    # lookups never scan rules, and building costs a few thousand dict entries at import.
    first = [_G] * 256
    second: dict[int, int] = {}
    third: dict[int, int] = {}

    def deepen(table: list[int] | dict[int, int], key: int, below: dict[int, int]) -> None:
        if table[key] != _DEEPER:
            below.update(dict.fromkeys(range(key << 8, (key << 8) + 256), table[key]))
            table[key] = _DEEPER

    for bits, net, cls in sorted(_v4_rules()):
        if bits <= 8:
            start = net >> 24
            first[start : start + (1 << (8 - bits))] = [cls] * (1 << (8 - bits))
        elif bits <= 16:
            deepen(first, net >> 24, second)
            start = net >> 16
            second.update(dict.fromkeys(range(start, start + (1 << (16 - bits))), cls))
        else:
            deepen(first, net >> 24, second)
            deepen(second, net >> 16, third)
            start = net >> 8
            third.update(dict.fromkeys(range(start, start + (1 << (24 - bits))), cls))
    return tuple(first), second, third


_V4_FIRST, _V4_SECOND, _V4_THIRD = _build_v4_tables()

_MAPPED_PREFIX = bytes(10) + b"\xff\xff"  # ::ffff:0:0/96, IPv4-mapped (RFC 4291)
_NAT64_PREFIX = bytes.fromhex("0064ff9b") + bytes(8)  # 64:ff9b::/96 (RFC 6052)
_LOOPBACK6 = bytes(15) + b"\x01"
# Special prefixes inside 2000::/3 that are not global unicast: (prefix as int, bit length).
_V6_NOT_GLOBAL: tuple[tuple[int, int], ...] = tuple(
    (int.from_bytes(bytes.fromhex(h).ljust(16, b"\0"), "big") >> (128 - bits), bits)
    for h, bits in (
        ("20010db8", 32),  # documentation (RFC 3849)
        ("20010002", 48),  # benchmarking (RFC 5180)
        ("20010010", 28),  # ORCHID (deprecated)
        ("20010020", 28),  # ORCHIDv2 (RFC 7343): identifiers, not locators
        ("3fff", 20),  # documentation (RFC 9637)
    )
)

_inet_pton = socket.inet_pton
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6


def _classify_v4(b: bytes) -> int:
    cls = _V4_FIRST[b[0]]
    if cls == _DEEPER:
        key = (b[0] << 8) | b[1]
        cls = _V4_SECOND[key]
        if cls == _DEEPER:
            cls = _V4_THIRD[(key << 8) | b[2]]
    return cls


def _classify_v6(b: bytes) -> int:
    top = b[0]
    if top & 0xE0 == 0x20:  # 2000::/3, the only global unicast space
        # Exceptions live only under 2001::/24, 2001:d00::/24, 2002::/16 and 3fff::/20.
        if top == 0x20 and b[1] == 0x02:  # 6to4 (RFC 3056): as good as the IPv4 inside
            return _classify_v4(b[2:6])
        if (top == 0x20 and b[1] == 0x01 and b[2] in (0x00, 0x0D)) or (
            top == 0x3F and b[1] == 0xFF and b[2] < 0x10
        ):
            n = int.from_bytes(b, "big")
            for prefix, bits in _V6_NOT_GLOBAL:
                if n >> (128 - bits) == prefix:
                    return _R
        return _G
    if top & 0xFE == 0xFC:  # fc00::/7 unique local
        return _P
    if top == 0xFE and b[1] & 0x80:  # fe80::/10 link-local, fec0::/10 old site-local
        return _P
    if top == 0:
        head = b[:12]
        if head in (_MAPPED_PREFIX, _NAT64_PREFIX):  # the IPv4 address inside decides
            return _classify_v4(b[12:])
        if b == _LOOPBACK6:
            return _L
    return _R  # ::, multicast ff00::/8 and all space outside 2000::/3


def classify_packed(ip: bytes) -> AddressClass:
    """Classify a packed address: 4 bytes (IPv4) or 16 (IPv6)."""
    if len(ip) == 4:
        return _CLASSES[_classify_v4(ip)]
    if len(ip) == 16:
        return _CLASSES[_classify_v6(ip)]
    return AddressClass.INVALID


def classify(ip: str) -> AddressClass:
    """Classify an address in text form; anything unparsable (names, zone ids) is INVALID."""
    try:
        if ":" in ip:
            return _CLASSES[_classify_v6(_inet_pton(_AF_INET6, ip))]
        return _CLASSES[_classify_v4(_inet_pton(_AF_INET, ip))]
    except (OSError, ValueError, TypeError):
        return AddressClass.INVALID


class AddressPolicy:
    """Which learned addresses a node may send to.

    Global unicast with a non-zero port is always acceptable; private (LAN) and loopback
    addresses only when allowed; reserved and invalid ones never.
    """

    __slots__ = ("_ok", "_v4_first", "_v4_second", "_v4_third", "allow_loopback", "allow_private")

    def __init__(self, allow_private: bool = False, allow_loopback: bool = False) -> None:
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback
        ok = [False] * len(AddressClass)
        ok[_G] = True
        ok[_P] = allow_private
        ok[_L] = allow_loopback
        self._ok = tuple(ok)
        # The class tables turned into verdicts: None means "look at the next octet".
        self._v4_first: tuple[bool | None, ...] = tuple(
            None if c == _DEEPER else ok[c] for c in _V4_FIRST
        )
        self._v4_second: dict[int, bool | None] = {
            k: None if c == _DEEPER else ok[c] for k, c in _V4_SECOND.items()
        }
        self._v4_third: dict[int, bool] = {k: ok[c] for k, c in _V4_THIRD.items()}

    @classmethod
    def for_bind(cls, host: str) -> AddressPolicy:
        """The policy for a node bound to ``host``.

        Loopback allows loopback and private peers (a testnet on one host may still reach
        LAN nodes); a private address allows private peers; a public address, the wildcard
        and anything unrecognised allow only global unicast. Names other than ``localhost``
        are not resolved here: pass the policy explicitly for those.
        """
        kind = AddressClass.LOOPBACK if host == "localhost" else classify(host)
        if kind is AddressClass.LOOPBACK:
            return cls(allow_private=True, allow_loopback=True)
        if kind is AddressClass.PRIVATE:
            return cls(allow_private=True)
        return cls()

    @classmethod
    def for_network(cls, host: str, routers: Iterable[Addr]) -> AddressPolicy:
        """``for_bind(host)``, widened to the kinds of address the bootstrap routers have:
        a client bound to the wildcard that joins a loopback testnet or a LAN DHT is
        crawling such a network on purpose. Router names (not addresses) widen nothing."""
        base = cls.for_bind(host)
        allow_private, allow_loopback = base.allow_private, base.allow_loopback
        for router_host, _ in routers:
            try:
                kind = classify(router_host)
            except ValueError:
                continue
            if kind is AddressClass.LOOPBACK:
                allow_private = allow_loopback = True
            elif kind is AddressClass.PRIVATE:
                allow_private = True
        return cls(allow_private=allow_private, allow_loopback=allow_loopback)

    def acceptable(self, addr: Addr) -> bool:
        """True if a datagram may be sent to ``addr``; never raises."""
        host, port = addr
        if not 0 < port < 0x10000:
            return False
        try:
            if ":" in host:
                return self._ok[_classify_v6(_inet_pton(_AF_INET6, host))]
            b = _inet_pton(_AF_INET, host)
        except (OSError, ValueError, TypeError):
            return False
        verdict = self._v4_first[b[0]]
        if verdict is None:
            key = (b[0] << 8) | b[1]
            verdict = self._v4_second[key]
            if verdict is None:
                return self._v4_third[(key << 8) | b[2]]
        return verdict

    def acceptable_packed(self, ip: bytes, port: int) -> bool:
        """``acceptable`` for an address still in compact form (4 or 16 bytes)."""
        if not 0 < port < 0x10000:
            return False
        if len(ip) == 4:
            return self._ok[_classify_v4(ip)]
        return len(ip) == 16 and self._ok[_classify_v6(ip)]

    def __repr__(self) -> str:
        return (
            f"AddressPolicy(allow_private={self.allow_private}, "
            f"allow_loopback={self.allow_loopback})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AddressPolicy):
            return NotImplemented
        return (self.allow_private, self.allow_loopback) == (
            other.allow_private,
            other.allow_loopback,
        )

    def __hash__(self) -> int:
        return hash((self.allow_private, self.allow_loopback))


def parse_hostport(text: str, default_port: int | None = None) -> Addr:
    """``host:port``, ``1.2.3.4:port`` or ``[v6]:port`` -> (host, port). Raises ValueError."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"{text!r}: missing ']'")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':' after ']'")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"{text!r}: no host")
    if not port_text:
        if default_port is None:
            raise ValueError(f"{text!r}: no port (expected HOST:PORT)")
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: port must be a number from 1 to 65535")
    return host, int(port_text)


def format_hostport(addr: Addr) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def as_addrs(values: Iterable[Addr | str]) -> list[Addr]:
    """Addresses given as ``(host, port)`` or as ``"host:port"`` / ``"[v6]:port"`` text (what
    library callers and config files naturally write). Raises ValueError for bad text."""
    return [parse_hostport(v) if isinstance(v, str) else (v[0], v[1]) for v in values]
