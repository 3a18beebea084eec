"""What the DHT core tells its driver: slotted, frozen event records.

Events are facts in the past tense. ``request_id`` is the handle a command returned
(``DhtProtocol.find_node`` and friends), so a driver can route each event to whoever asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from dht.wire import Addr, NodeContact, Response

__all__ = [
    "BootstrapStalled",
    "DhtEvent",
    "ExternalAddressChanged",
    "InfoHashSeen",
    "LookupDone",
    "PeersFound",
    "QueryAnswered",
    "QueryFailed",
]


@dataclass(frozen=True, slots=True)
class PeersFound:
    """A get_peers lookup (or announce) met peers it had not reported before."""

    request_id: int
    peers: tuple[Addr, ...]


@dataclass(frozen=True, slots=True)
class LookupDone:
    """A lookup finished. ``nodes`` are the closest nodes that answered, closest first."""

    request_id: int
    kind: str  # "find_node", "get_peers", "announce"
    target: bytes
    nodes: tuple[NodeContact, ...]
    queried: int
    replied: int
    peers: int  # distinct peers found
    announced: int = 0  # announce: how many nodes accepted our announce_peer
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class QueryAnswered:
    """A single query (ping, or one sent with ``DhtProtocol.query``) was answered."""

    request_id: int
    addr: Addr
    response: Response
    rtt: float


@dataclass(frozen=True, slots=True)
class QueryFailed:
    request_id: int
    addr: Addr
    reason: str  # "timeout", "error 203: ...", "busy" (no room for another query)


@dataclass(frozen=True, slots=True)
class InfoHashSeen:
    """Passive observation: someone asked us about, or announced, an info-hash."""

    info_hash: bytes
    method: str  # "get_peers" or "announce_peer"
    addr: Addr  # where the query came from
    peer: Addr | None  # for announce_peer: the announced peer


@dataclass(frozen=True, slots=True)
class BootstrapStalled:
    """No bootstrap node answered; the core will try again after ``retry_in`` seconds."""

    attempt: int
    retry_in: float
    routers: int


@dataclass(frozen=True, slots=True)
class ExternalAddressChanged:
    """Other nodes agree that they see us at ``ip`` (BEP 42 vote)."""

    ip: str


DhtEvent = (
    PeersFound
    | LookupDone
    | QueryAnswered
    | QueryFailed
    | InfoHashSeen
    | BootstrapStalled
    | ExternalAddressChanged
)
