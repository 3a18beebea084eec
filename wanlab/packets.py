"""The few IPv4 header fields the WAN lab schedules on (RFC 791, ICMP RFC 792, UDP/TCP ports).

``inspect(packet)`` reads a raw IP packet as the TUN device hands it over (no packet-info
prefix) and returns its source, destination, a flow key and whether it is an ICMP "port
unreachable". The flow key is protocol, addresses and ports for unfragmented UDP and TCP, and
protocol plus addresses otherwise (a non-first fragment carries no ports). Anything that is
not a well-formed IPv4 header gives ``None``. Sans-IO: bytes in, a value out.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROTO_ICMP", "PROTO_TCP", "PROTO_UDP", "PacketInfo", "inspect"]

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
_ICMP_DEST_UNREACHABLE = 3
_ICMP_CODE_PORT_UNREACHABLE = 3
_IPV4_MIN_HEADER = 20
# Flags and fragment offset (RFC 791 3.1): MF is bit 13, the offset the low 13 bits.
_MORE_FRAGMENTS = 0x2000
_OFFSET_MASK = 0x1FFF


@dataclass(frozen=True, slots=True)
class PacketInfo:
    """What the scheduler needs of one packet: packed 4-byte addresses and the flow it is in."""

    src: bytes
    dst: bytes
    flow: bytes
    port_unreachable: bool


def inspect(packet: bytes) -> PacketInfo | None:
    """Parse the IPv4 header of ``packet``; ``None`` for anything else (IPv6, truncated)."""
    if len(packet) < _IPV4_MIN_HEADER or packet[0] >> 4 != 4:
        return None
    header_len = (packet[0] & 0x0F) * 4
    if header_len < _IPV4_MIN_HEADER or len(packet) < header_len:
        return None
    proto = packet[9]
    fragment = int.from_bytes(packet[6:8], "big") & (_MORE_FRAGMENTS | _OFFSET_MASK)
    flow = packet[9:10] + packet[12:20]
    if fragment == 0 and proto in {PROTO_UDP, PROTO_TCP} and len(packet) >= header_len + 4:
        flow += packet[header_len : header_len + 4]
    unreachable = (
        proto == PROTO_ICMP
        and len(packet) >= header_len + 2
        and packet[header_len] == _ICMP_DEST_UNREACHABLE
        and packet[header_len + 1] == _ICMP_CODE_PORT_UNREACHABLE
    )
    return PacketInfo(packet[12:16], packet[16:20], flow, unreachable)
