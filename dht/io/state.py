"""What a DHT node keeps across restarts: its id, what it knows of its external IP, its contacts.

A restarted node that comes back with the same id and its old routing table rejoins in
seconds and keeps the place other nodes' tables give it (BEP 5 expects ids to be stable; BEP
42 ties them to the external IP, hence the votes). ``save_state`` replaces the file
atomically (``dht.io.files.write_atomic``), so a crash or kill leaves
either the old or the new file, never a torn one. ``load_state`` trusts nothing it reads: a
fixed header carries a format version, the body length and a SHA-256 of the body, and every
field is checked after decoding. ``load_state_or_fresh`` is what a daemon calls at start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import bencode2

from dht.ids import ID_LEN
from dht.io.files import NotRegularFileError, check_replaceable, write_atomic
from dht.wire import NodeContact, pack_nodes, unpack_nodes

__all__ = [
    "FORMAT_VERSION",
    "MAX_BAD_KEPT",
    "MAX_CONTACTS",
    "MAX_VOTES",
    "NodeState",
    "StateError",
    "decode_state",
    "encode_state",
    "load_state",
    "load_state_or_fresh",
    "save_state",
]

# Why bencode in a binary frame rather than JSON: ids and compact contacts are raw bytes that
# JSON would need hex or base64 for, the DHT already speaks bencode (compact node info is
# reused as is, 26/38 bytes per contact), and bencode2 rejects anything non-canonical. The
# frame in front of it lets a torn or flipped file be told apart from a valid one *before*
# any parsing: magic, version, exact body length, SHA-256 of the body.
_MAGIC = b"MGNTRDHT"
FORMAT_VERSION = 1
_HEADER_LEN = len(_MAGIC) + 2 + 4 + 32  # magic, u16 version, u32 body length, sha256(body)

MAX_CONTACTS = 8192  # per family; a full routing table holds a few thousand at most
MAX_VOTES = 64  # distinct external-IP candidates remembered
MAX_BAD_KEPT = 3  # corrupt files kept aside for a post-mortem; older ones are removed
_MAX_FILE = _HEADER_LEN + 64 + MAX_CONTACTS * (26 + 38) + MAX_VOTES * 32 + 1024


class StateError(Exception):
    """The state file cannot be used; ``reason`` is one line for a log.

    ``corrupt`` is False when the file is merely absent or unreadable (nothing to move
    aside), True when it exists but its content is torn, damaged or of another version.
    """

    def __init__(self, reason: str, *, corrupt: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.corrupt = corrupt


@dataclass(frozen=True, slots=True)
class NodeState:
    """A node's persistent identity and routing contacts.

    Args:
        node_id: our 20-byte id.
        external_ip: the IP others see us at (BEP 42 ``ip`` votes decided it), if known.
        ip_votes: votes per candidate external IP, as counted when saved.
        nodes: IPv4 routing-table contacts; nodes6: IPv6 ones.
        saved_at: wall-clock time (Unix seconds) of the save, to judge how stale they are.
    """

    node_id: bytes
    external_ip: str | None = None
    ip_votes: dict[str, int] = field(default_factory=dict)
    nodes: tuple[NodeContact, ...] = ()
    nodes6: tuple[NodeContact, ...] = ()
    saved_at: float = 0.0

    def __post_init__(self) -> None:
        # Invariants hold for every NodeState, so a bad value fails where it was made
        # (ValueError: caller misuse), not halfway through writing a file.
        if len(self.node_id) != ID_LEN:
            raise ValueError(f"node_id of {len(self.node_id)} bytes")
        if self.external_ip is not None:
            _pack_ip(self.external_ip)
        if len(self.ip_votes) > MAX_VOTES:
            raise ValueError(f"{len(self.ip_votes)} ip votes, at most {MAX_VOTES}")
        for ip, count in self.ip_votes.items():
            _pack_ip(ip)
            if count < 0:
                raise ValueError(f"negative vote count for {ip}")
        for contacts, v6 in ((self.nodes, False), (self.nodes6, True)):
            if len(contacts) > MAX_CONTACTS:
                raise ValueError(f"{len(contacts)} contacts, at most {MAX_CONTACTS}")
            for c in contacts:
                if len(c.id) != ID_LEN or not 0 <= c.addr[1] <= 0xFFFF:
                    raise ValueError(f"bad contact {c!r}")
                if len(_pack_ip(c.addr[0])) != (16 if v6 else 4):
                    raise ValueError(f"{c.addr[0]} in {'nodes6' if v6 else 'nodes'}")
        if not math.isfinite(self.saved_at):
            raise ValueError("saved_at is not finite")

    @classmethod
    def from_contacts(
        cls,
        node_id: bytes,
        contacts: Iterable[NodeContact],
        *,
        external_ip: str | None = None,
        ip_votes: Mapping[str, int] | None = None,
        saved_at: float = 0.0,
    ) -> NodeState:
        """A state from a routing table's contacts of both families (``RoutingTable.contacts()``).

        Contacts are split by family and cut at ``MAX_CONTACTS`` each, ones with addresses
        that do not parse are skipped, and only the ``MAX_VOTES`` most voted IPs are kept:
        whatever a live table holds can be saved.
        """
        v4: list[NodeContact] = []
        v6: list[NodeContact] = []
        for c in contacts:
            try:
                packed = _pack_ip(c.addr[0])
            except ValueError:
                continue
            out = v4 if len(packed) == 4 else v6
            if len(out) < MAX_CONTACTS:
                out.append(c)
        votes = sorted((ip_votes or {}).items(), key=lambda kv: -kv[1])[:MAX_VOTES]
        return cls(node_id, external_ip, dict(votes), tuple(v4), tuple(v6), saved_at)


def _pack_ip(ip: str) -> bytes:
    try:
        if ":" in ip:
            return socket.inet_pton(socket.AF_INET6, ip)
        return socket.inet_pton(socket.AF_INET, ip)
    except OSError:
        raise ValueError(f"not an IP address: {ip!r}") from None


def _unpack_ip(data: bytes) -> str:
    if len(data) == 4:
        return socket.inet_ntop(socket.AF_INET, data)
    if len(data) == 16:
        return socket.inet_ntop(socket.AF_INET6, data)
    raise StateError(f"an IP of {len(data)} bytes")


# --- encoding ---------------------------------------------------------------------------------


def encode_state(state: NodeState) -> bytes:
    """The bytes ``save_state`` writes: header, then the bencoded body."""
    body: dict[bytes, object] = {
        b"id": state.node_id,
        b"nodes": pack_nodes(state.nodes),
        b"nodes6": pack_nodes(state.nodes6),
        b"saved_at": repr(float(state.saved_at)).encode("ascii"),
        b"votes": {_pack_ip(ip): n for ip, n in state.ip_votes.items()},
    }
    if state.external_ip is not None:
        body[b"ip"] = _pack_ip(state.external_ip)
    data = bencode2.bencode(body)
    return (
        _MAGIC
        + FORMAT_VERSION.to_bytes(2, "big")
        + len(data).to_bytes(4, "big")
        + hashlib.sha256(data).digest()
        + data
    )


def decode_state(blob: bytes) -> NodeState:
    """Parse a state file's bytes; raises only StateError."""
    if len(blob) < _HEADER_LEN:
        raise StateError(f"truncated: {len(blob)} bytes, shorter than the header")
    if blob[:8] != _MAGIC:
        raise StateError("not a magnetar state file (bad magic)")
    version = int.from_bytes(blob[8:10], "big")
    if version != FORMAT_VERSION:
        raise StateError(f"format version {version}, this build reads {FORMAT_VERSION}")
    length = int.from_bytes(blob[10:14], "big")
    body = blob[_HEADER_LEN:]
    if len(body) != length:
        raise StateError(f"truncated or padded: body of {len(body)} bytes, header says {length}")
    if hashlib.sha256(body).digest() != blob[14:_HEADER_LEN]:
        raise StateError("checksum mismatch: the file is damaged")
    try:
        d = bencode2.bdecode(body)
    except Exception as exc:  # bencode2 raises several types; the checksum made this unlikely
        raise StateError(f"body is not valid bencode: {exc}") from None
    try:
        return _state_from_dict(d)
    except StateError:
        raise
    except (ValueError, TypeError, KeyError, OSError, UnicodeError) as exc:
        raise StateError(f"bad field: {exc}") from None


def _bytes(d: dict[bytes, object], key: bytes) -> bytes:
    value = d.get(key)
    if not isinstance(value, bytes):
        raise StateError(f"field {key.decode()} missing or not a string")
    return value


def _state_from_dict(d: object) -> NodeState:
    if not isinstance(d, dict):
        raise StateError("body is not a dict")
    votes = d.get(b"votes")
    if not isinstance(votes, dict):
        raise StateError("field votes missing or not a dict")
    ip_votes: dict[str, int] = {}
    for k, v in votes.items():
        if not isinstance(v, int):
            raise StateError("a vote count is not an int")
        ip_votes[_unpack_ip(k)] = v
    ip = d.get(b"ip")
    if ip is not None and not isinstance(ip, bytes):
        raise StateError("field ip is not a string")
    return NodeState(
        node_id=_bytes(d, b"id"),
        external_ip=None if ip is None else _unpack_ip(ip),
        ip_votes=ip_votes,
        nodes=unpack_nodes(_bytes(d, b"nodes")),
        nodes6=unpack_nodes(_bytes(d, b"nodes6"), v6=True),
        saved_at=float(_bytes(d, b"saved_at").decode("ascii")),
    )


# --- files ------------------------------------------------------------------------------------


def save_state(path: str | os.PathLike[str], state: NodeState) -> None:
    """Write ``state`` to ``path`` atomically; raises OSError if the disk refuses."""
    write_atomic(path, encode_state(state))


def load_state(path: str | os.PathLike[str]) -> NodeState:
    """Read and verify a state file; raises only StateError (a path that is not a regular
    file is one that is not ``corrupt``: it is left alone)."""
    path = os.fspath(path)
    try:
        # Before open: a FIFO would block the open, a device would be read (or, as
        # "corrupt", moved aside and replaced by a file). Neither is ours to touch.
        check_replaceable(path)
        with open(path, "rb") as f:
            blob = f.read(_MAX_FILE + 1)
    except NotRegularFileError as exc:
        raise StateError(f"{path} is {exc.kind}", corrupt=False) from None
    except FileNotFoundError:
        raise StateError(f"no state file at {path}", corrupt=False) from None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror or exc}", corrupt=False) from None
    if len(blob) > _MAX_FILE:
        raise StateError(f"larger than {_MAX_FILE} bytes, not a state file")
    return decode_state(blob)


def load_state_or_fresh(path: str | os.PathLike[str]) -> tuple[NodeState | None, str | None]:
    """The state at ``path``, or None to start fresh, with a reason line when not clean.

    Returns ``(state, None)`` for a good file, ``(None, None)`` when there is none yet, and
    ``(None, reason)`` otherwise; a corrupt file is first moved aside to ``path.bad-<n>``
    (the newest ``MAX_BAD_KEPT`` are kept) so the next save does not destroy the evidence.
    Never raises.
    """
    path = os.fspath(path)
    try:
        return load_state(path), None
    except StateError as exc:
        if not exc.corrupt:
            return None, None if not os.path.lexists(path) else exc.reason
        reason = f"{path}: {exc.reason}"
    except Exception as exc:  # a bug must not keep the node from starting: start fresh
        reason = f"{path}: unexpected {type(exc).__name__}: {exc}"
    try:
        aside = _move_aside(path)
        reason += f"; moved to {aside}"
    except Exception as exc:  # a read-only directory, say: still start, and say why
        reason += f"; could not move it aside: {getattr(exc, 'strerror', None) or exc}"
    return None, " ".join(reason.split())  # one line, whatever an exception said


def _move_aside(path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    prefix = os.path.basename(path) + ".bad-"
    taken: list[int] = []
    with os.scandir(directory) as it:
        for entry in it:
            suffix = entry.name[len(prefix) :]
            if entry.name.startswith(prefix) and suffix.isascii() and suffix.isdigit():
                taken.append(int(suffix))
    n = max(taken, default=0) + 1
    aside = f"{path}.bad-{n}"
    os.replace(path, aside)
    taken.sort()
    for old in taken[: max(0, len(taken) + 1 - MAX_BAD_KEPT)]:
        with contextlib.suppress(OSError):
            os.unlink(f"{path}.bad-{old}")
    return aside
