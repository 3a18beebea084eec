import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dht.addresses import AddressClass, AddressPolicy, classify, classify_packed

G, P, L, R, X = (
    AddressClass.GLOBAL,
    AddressClass.PRIVATE,
    AddressClass.LOOPBACK,
    AddressClass.RESERVED,
    AddressClass.INVALID,
)

CASES = [
    # IPv4: each special range at its edges, and the global space right outside them.
    ("0.0.0.0", R),
    ("0.255.255.255", R),
    ("1.0.0.0", G),
    ("9.255.255.255", G),
    ("10.0.0.0", P),
    ("10.255.255.255", P),
    ("11.0.0.0", G),
    ("100.63.255.255", G),
    ("100.64.0.0", P),
    ("100.127.255.255", P),
    ("100.128.0.0", G),
    ("126.255.255.255", G),
    ("127.0.0.1", L),
    ("127.255.255.254", L),
    ("128.0.0.0", G),
    ("169.253.255.255", G),
    ("169.254.0.1", P),
    ("169.255.0.0", G),
    ("172.15.255.255", G),
    ("172.16.0.0", P),
    ("172.31.255.255", P),
    ("172.32.0.0", G),
    ("191.255.255.255", G),
    ("192.0.0.0", R),
    ("192.0.0.255", R),
    ("192.0.1.0", G),
    ("192.0.2.0", R),
    ("192.0.2.255", R),
    ("192.0.3.0", G),
    ("192.167.255.255", G),
    ("192.168.0.0", P),
    ("192.168.255.255", P),
    ("192.169.0.0", G),
    ("198.17.255.255", G),
    ("198.18.0.0", P),
    ("198.19.255.255", P),
    ("198.20.0.0", G),
    ("198.51.99.255", G),
    ("198.51.100.0", R),
    ("198.51.100.255", R),
    ("198.51.101.0", G),
    ("203.0.112.255", G),
    ("203.0.113.1", R),
    ("203.0.114.0", G),
    ("223.255.255.255", G),
    ("224.0.0.1", R),
    ("239.255.255.255", R),
    ("240.0.0.1", R),
    ("255.255.255.255", R),
    ("8.8.8.8", G),
    # IPv6
    ("::", R),
    ("::1", L),
    ("::2", R),
    ("::ffff:8.8.8.8", G),
    ("::ffff:10.0.0.1", P),
    ("::ffff:127.0.0.1", L),
    ("::ffff:224.0.0.1", R),
    ("::8.8.8.8", R),  # IPv4-compatible: deprecated
    ("64:ff9b::8.8.8.8", G),
    ("64:ff9b::192.168.0.1", P),
    ("64:ff9b:1::1", R),
    ("100::1", R),
    ("1fff:ffff::1", R),
    ("2000::1", G),
    ("2001::1", G),  # Teredo: reachable through relays
    ("2001:470::1", G),
    ("2001:2::1", R),
    ("2001:2:0:ffff::1", R),
    ("2001:2:1::1", G),
    ("2001:10::1", R),
    ("2001:20::1", R),
    ("2001:db8::1", R),
    ("2001:db8:ffff::1", R),
    ("2001:db9::1", G),
    ("2002:0808:0808::1", G),  # 6to4 of 8.8.8.8
    ("2002:c0a8:0101::1", P),  # 6to4 of 192.168.1.1
    ("2a01:4f8::1", G),
    ("3ffe::1", G),
    ("3fff::1", R),
    ("3fff:0fff::1", R),
    ("3fff:1000::1", G),
    ("4000::1", R),
    ("fc00::1", P),
    ("fdff::1", P),
    ("fe00::1", R),
    ("fe80::1", P),
    ("febf::1", P),
    ("fec0::1", P),
    ("ff02::1", R),
    # Not addresses
    ("", X),
    ("localhost", X),
    ("1.2.3", X),
    ("1.2.3.4.5", X),
    ("01.2.3.4", X),
    ("256.1.1.1", X),
    ("fe80::1%eth0", X),
    ("1.2.3.4 ", X),
    ("::g", X),
]


@pytest.mark.parametrize(("ip", "expected"), CASES)
def test_classify(ip: str, expected: AddressClass) -> None:
    assert classify(ip) is expected
    if expected is not X:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        assert classify_packed(socket.inet_pton(family, ip)) is expected


@pytest.mark.parametrize(("ip", "expected"), CASES)
def test_policies_follow_classes(ip: str, expected: AddressClass) -> None:
    strict = AddressPolicy()
    lan = AddressPolicy(allow_private=True)
    testnet = AddressPolicy(allow_private=True, allow_loopback=True)
    assert strict.acceptable((ip, 6881)) == (expected is G)
    assert lan.acceptable((ip, 6881)) == (expected in (G, P))
    assert testnet.acceptable((ip, 6881)) == (expected in (G, P, L))
    if expected is not X:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        packed = socket.inet_pton(family, ip)
        for policy in (strict, lan, testnet):
            assert policy.acceptable_packed(packed, 6881) == policy.acceptable((ip, 6881))


@pytest.mark.parametrize("port", [0, -1, 65536, 1 << 20])
def test_bad_ports_never_acceptable(port: int) -> None:
    policy = AddressPolicy(allow_private=True, allow_loopback=True)
    assert not policy.acceptable(("8.8.8.8", port))
    assert not policy.acceptable_packed(bytes([8, 8, 8, 8]), port)
    assert policy.acceptable(("8.8.8.8", 1))
    assert policy.acceptable(("8.8.8.8", 65535))


def test_packed_of_odd_length_is_refused() -> None:
    assert classify_packed(b"\x08\x08\x08") is X
    assert not AddressPolicy().acceptable_packed(b"\x08" * 5, 6881)


@pytest.mark.parametrize(
    ("host", "policy"),
    [
        ("127.0.0.1", AddressPolicy(allow_private=True, allow_loopback=True)),
        ("127.3.0.1", AddressPolicy(allow_private=True, allow_loopback=True)),
        ("::1", AddressPolicy(allow_private=True, allow_loopback=True)),
        ("localhost", AddressPolicy(allow_private=True, allow_loopback=True)),
        ("192.168.1.10", AddressPolicy(allow_private=True)),
        ("10.1.2.3", AddressPolicy(allow_private=True)),
        ("100.64.1.1", AddressPolicy(allow_private=True)),
        ("fd12::1", AddressPolicy(allow_private=True)),
        ("0.0.0.0", AddressPolicy()),
        ("::", AddressPolicy()),
        ("", AddressPolicy()),
        ("81.2.3.4", AddressPolicy()),
        ("2a01:4f8::1", AddressPolicy()),
        ("dht.example.org", AddressPolicy()),
    ],
)
def test_for_bind(host: str, policy: AddressPolicy) -> None:
    assert AddressPolicy.for_bind(host) == policy


def test_policy_value_semantics() -> None:
    assert AddressPolicy() == AddressPolicy(False, False)
    assert AddressPolicy(True) != AddressPolicy(True, True)
    assert len({AddressPolicy(), AddressPolicy(), AddressPolicy(True)}) == 2
    assert "allow_private=True" in repr(AddressPolicy(True))


def v4(n: int) -> str:
    return str(ipaddress.IPv4Address(n))


@given(st.integers(0, 2**32 - 1))
def test_v4_agrees_with_ipaddress(n: int) -> None:
    # ipaddress calls multicast "global" and 192.0.0.9/.10 global; we refuse all of
    # 224/4 and 192.0.0/24. Elsewhere "global" must mean the same thing.
    a = ipaddress.IPv4Address(n)
    cls = classify(str(a))
    assert cls is not X
    if a not in ipaddress.IPv4Network("192.0.0.0/24"):
        assert (cls is G) == (a.is_global and not a.is_multicast)
    assert (cls is L) == a.is_loopback
    if cls is P:
        assert a.is_private or a in ipaddress.IPv4Network("100.64.0.0/10")
    # The same address, IPv4-mapped, is the same class.
    assert classify(f"::ffff:{a}") is cls


NOT_COMPARED_V6 = [
    ipaddress.IPv6Network(n)
    for n in ("2001::/23", "2002::/16", "3fff::/20")  # we differ from ipaddress on purpose
]


@given(st.integers(0, 2**128 - 1))
def test_v6_agrees_with_ipaddress(n: int) -> None:
    a = ipaddress.IPv6Address(n)
    cls = classify(str(a))
    assert cls is not X
    assert classify_packed(a.packed) is cls
    in_2000_3 = a in ipaddress.IPv6Network("2000::/3")
    if in_2000_3 and not any(a in net for net in NOT_COMPARED_V6):
        assert cls is G
        assert a.is_global
    if cls is G:
        assert in_2000_3 or a.ipv4_mapped is not None or a in ipaddress.IPv6Network("64:ff9b::/96")


@given(st.integers(0, 2**32 - 1))
def test_v6_embeddings_follow_the_ipv4_inside(n: int) -> None:
    cls = classify(v4(n))
    assert classify(str(ipaddress.IPv6Address((0x2002 << 112) | (n << 80)))) is cls
    assert classify(str(ipaddress.IPv6Address((0x64FF9B << 96) | n))) is cls


@given(st.text(max_size=40))
def test_any_text_is_classified_without_raising(text: str) -> None:
    classify(text)
    AddressPolicy().acceptable((text, 6881))


def test_addresses_may_be_given_as_text() -> None:
    from dht.addresses import as_addrs
    from dht.io.node import Node

    assert as_addrs(["127.0.0.1:6881", ("::1", 7), "[::1]:8"]) == [
        ("127.0.0.1", 6881),
        ("::1", 7),
        ("::1", 8),
    ]
    assert Node(bootstrap_routers=["127.0.0.2:6881"]).routers == (("127.0.0.2", 6881),)
    with pytest.raises(ValueError, match="no port"):
        as_addrs(["127.0.0.1"])
