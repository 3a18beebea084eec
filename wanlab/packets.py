"""The few IPv4 header fields the WAN lab schedules on (RFC 791, ICMP RFC 792, UDP/TCP ports).

``inspect(packet)`` reads a raw IP packet as the TUN device hands it over (no packet-info
prefix) and returns its address pair, a flow key and whether it is an ICMP "port
unreachable". The flow key is protocol, addresses and ports for unfragmented UDP and TCP, and
protocol plus addresses otherwise (a non-first fragment carries no ports). Anything that is
not a well-formed IPv4 header gives ``None``. Sans-IO: bytes in, a value out.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["PROTO_ICMP", "PROTO_TCP", "PROTO_UDP", "PacketInfo", "inspect"]

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
_ICMP_DEST_UNREACHABLE = 3
_ICMP_CODE_PORT_UNREACHABLE = 3
_IPV4_MIN_HEADER = 20
# Byte 6 of the header holds the flags and the offset's top bits (RFC 791 3.1): MF (0x20)
# and 0x1F; byte 7 the rest of the offset. DF (0x40) does not make a fragment.
_FRAGMENT_HIGH_BITS = 0x3F


class PacketInfo(NamedTuple):
    """What the scheduler needs of one packet (a tuple: this runs for every packet).

    ``pair`` is the packed source and destination (8 bytes), ``flow`` the pair plus protocol
    and, when present, the two ports.
    """

    pair: bytes
    flow: bytes
    port_unreachable: bool

    @property
    def src(self) -> bytes:
        return self.pair[:4]

    @property
    def dst(self) -> bytes:
        return self.pair[4:]


def inspect(packet: bytes) -> PacketInfo | None:
    """Parse the IPv4 header of ``packet``; ``None`` for anything else (IPv6, truncated)."""
    if len(packet) < _IPV4_MIN_HEADER or packet[0] >> 4 != 4:
        return None
    header_len = (packet[0] & 0x0F) * 4
    if header_len < _IPV4_MIN_HEADER or len(packet) < header_len:
        return None
    proto = packet[9]
    pair = packet[12:20]
    if proto in (PROTO_UDP, PROTO_TCP):
        # Flags byte: MF is 0x20, the offset's high bits 0x1F; a fragment has no ports or
        # only the first one has them, so fragments are one flow per protocol and pair.
        unfragmented = not (packet[6] & _FRAGMENT_HIGH_BITS or packet[7])
        if unfragmented and len(packet) >= header_len + 4:
            return PacketInfo(
                pair, pair + packet[9:10] + packet[header_len : header_len + 4], False
            )
        return PacketInfo(pair, pair + packet[9:10], False)
    unreachable = (
        proto == PROTO_ICMP
        and len(packet) >= header_len + 2
        and packet[header_len] == _ICMP_DEST_UNREACHABLE
        and packet[header_len + 1] == _ICMP_CODE_PORT_UNREACHABLE
    )
    return PacketInfo(pair, pair + packet[9:10], unreachable)
