"""wanlab.packets: addresses, flow keys and ICMP port unreachable read from IPv4 headers."""

from __future__ import annotations

from socket import inet_aton

from tests.wanlab.packetdata import icmp_unreachable, ipv4, tcp, udp
from wanlab.packets import inspect


def test_udp_addresses_and_ports_make_the_flow() -> None:
    info = inspect(udp("198.18.0.1", 4000, "198.18.0.2", 6881, b"hello"))
    assert info is not None
    assert (info.src, info.dst) == (inet_aton("198.18.0.1"), inet_aton("198.18.0.2"))
    assert not info.port_unreachable
    other_port = inspect(udp("198.18.0.1", 4001, "198.18.0.2", 6881))
    same_flow = inspect(udp("198.18.0.1", 4000, "198.18.0.2", 6881, b"later"))
    assert other_port is not None and same_flow is not None
    assert info.flow == same_flow.flow
    assert info.flow != other_port.flow


def test_tcp_and_udp_on_the_same_ports_are_different_flows() -> None:
    as_udp = inspect(udp("198.18.0.1", 5000, "198.18.0.2", 5000))
    as_tcp = inspect(tcp("198.18.0.1", 5000, "198.18.0.2", 5000))
    assert as_udp is not None and as_tcp is not None
    assert as_udp.flow != as_tcp.flow


def test_fragments_share_one_flow_without_ports() -> None:
    first = inspect(
        ipv4("198.18.0.1", "198.18.0.2", 17, b"\x0f\xa0\x1a\xe1" + b"x" * 20, flags_fragment=0x2000)
    )
    later = inspect(ipv4("198.18.0.1", "198.18.0.2", 17, b"y" * 24, flags_fragment=0x0003))
    assert first is not None and later is not None
    assert first.flow == later.flow


def test_only_icmp_port_unreachable_is_flagged() -> None:
    port = inspect(icmp_unreachable("198.18.0.2", "198.18.0.1", 3))
    host = inspect(icmp_unreachable("198.18.0.2", "198.18.0.1", 1))
    frag_needed = inspect(icmp_unreachable("198.18.0.2", "198.18.0.1", 4))
    assert port is not None and host is not None and frag_needed is not None
    assert port.port_unreachable
    assert not host.port_unreachable
    assert not frag_needed.port_unreachable  # path MTU discovery must keep working


def test_not_ipv4_or_truncated_is_none() -> None:
    assert inspect(b"") is None
    assert inspect(b"\x60" + bytes(39)) is None  # IPv6
    assert inspect(udp("198.18.0.1", 1, "198.18.0.2", 2)[:19]) is None
    bad_ihl = bytearray(udp("198.18.0.1", 1, "198.18.0.2", 2))
    bad_ihl[0] = 0x4F  # a 60-byte header in a 28-byte packet
    assert inspect(bytes(bad_ihl)) is None
    short_ihl = bytearray(bad_ihl)
    short_ihl[0] = 0x44  # a 16-byte header is below the minimum
    assert inspect(bytes(short_ihl)) is None
