"""KRPC, the DHT's message format (BEP 5), with BEP 32/42/43/51 keys: decode and encode.

A KRPC message is one bencoded dict in one UDP datagram: a query (``y=q``), a response
(``y=r``) or an error (``y=e``), matched by the opaque transaction id ``t``. ``decode`` turns a
datagram into a ``Query``, ``Response`` or ``KrpcError`` and raises only ``KrpcDecodeError``:
with ``t`` set when the sender deserves a 203 answer, ``t=None`` when the packet is garbage and
must be dropped silently (answering garbage would make us an amplifier).

Compact encodings (big-endian): a peer is 6 bytes (IPv4 + port) or 18 (IPv6 + port); a node
is its 20-byte id followed by the peer form (26 / 38 bytes). Lengths that are not a multiple
of these are protocol errors, as are ids that are not 20 bytes.

The front door: the bencode decoder fails slowly on unterminated nesting (microseconds per
level, so 1400 bytes of ``l`` cost milliseconds), so before it runs, a datagram that could
nest deeper than ``MAX_DEPTH`` is scanned (``_shape_ok``) and dropped as garbage unless it is
balanced and shallow. KRPC itself needs depth 3 (message, arguments, a list); the slack is
for BEP 44 values. The common path pays two ``bytes.count`` calls.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

import bencode2

from dht.ids import ID_LEN

_bdecode = bencode2.bdecode

# The deepest nesting a datagram may have: KRPC needs 3, BEP 44 ``v`` values a little more.
MAX_DEPTH = 12
# At most this many ``l``/``d`` bytes and the nesting is bounded without a scan: even
# unterminated, that little nesting costs the decoder no more than any other garbage.
_UNSCANNED = 8

__all__ = [
    "ERROR_GENERIC",
    "ERROR_METHOD_UNKNOWN",
    "ERROR_PROTOCOL",
    "ERROR_SERVER",
    "MAX_DEPTH",
    "Addr",
    "KrpcDecodeError",
    "KrpcError",
    "Message",
    "NodeContact",
    "Query",
    "Response",
    "decode",
    "encode_error",
    "encode_query",
    "encode_response",
    "pack_addr",
    "pack_nodes",
    "unpack_addr",
    "unpack_nodes",
    "unpack_values",
]

Addr = tuple[str, int]

ERROR_GENERIC = 201
ERROR_SERVER = 202
ERROR_PROTOCOL = 203
ERROR_METHOD_UNKNOWN = 204

# Queries whose arguments we know and check; anything else only needs ``a.id``.
_TARGET_KEY = {
    b"find_node": b"target",
    b"get_peers": b"info_hash",
    b"announce_peer": b"info_hash",
    b"sample_infohashes": b"target",
    b"get": b"target",
}


class KrpcDecodeError(Exception):
    """A datagram that is not a usable KRPC message.

    ``t`` is the transaction id when the sender can be told (answer with ``code``), or None
    when the datagram must be dropped without a word.
    """

    def __init__(
        self,
        reason: str,
        t: bytes | None = None,
        code: int = ERROR_PROTOCOL,
        *,
        is_query: bool = True,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.t = t
        self.code = code
        # Only a query is ever answered: a broken response or error is never replied to,
        # but its ``t`` still lets the caller fail the query it answers.
        self.is_query = is_query


@dataclass(frozen=True, slots=True)
class NodeContact:
    """A node as compact node info carries it: id and UDP address."""

    id: bytes
    addr: Addr


# Not frozen: a frozen dataclass costs ~1.2 us more to build, and one is built for every
# query a busy node answers. Treat it as read-only all the same.
@dataclass(slots=True)
class Query:
    t: bytes
    method: bytes
    id: bytes
    args: dict[bytes, Any]
    # ``target`` or ``info_hash`` when the method has one (checked to be 20 bytes).
    target: bytes | None = None
    read_only: bool = False  # BEP 43 top-level ``ro``
    version: bytes | None = None


@dataclass(frozen=True, slots=True)
class Response:
    t: bytes
    id: bytes
    values: dict[bytes, Any]  # the raw ``r`` dict, for keys this module does not model
    nodes: tuple[NodeContact, ...] = ()
    nodes6: tuple[NodeContact, ...] = ()
    peers: tuple[Addr, ...] = ()
    token: bytes | None = None
    ip: Addr | None = None  # BEP 42: how the responder saw us
    version: bytes | None = None


@dataclass(frozen=True, slots=True)
class KrpcError:
    t: bytes
    code: int
    message: str
    version: bytes | None = None
    ip: Addr | None = field(default=None)


Message = Query | Response | KrpcError


# --- compact encodings -----------------------------------------------------------------------


def pack_addr(addr: Addr) -> bytes:
    """6 bytes for IPv4, 18 for IPv6. Raises OSError/ValueError on a bad address."""
    host, port = addr
    if ":" in host:
        return socket.inet_pton(socket.AF_INET6, host) + port.to_bytes(2, "big")
    return socket.inet_aton(host) + port.to_bytes(2, "big")


def unpack_addr(data: bytes) -> Addr:
    if len(data) == 6:
        return socket.inet_ntoa(data[:4]), int.from_bytes(data[4:], "big")
    if len(data) == 18:
        return socket.inet_ntop(socket.AF_INET6, data[:16]), int.from_bytes(data[16:], "big")
    raise ValueError(f"compact address of {len(data)} bytes")


def pack_nodes(nodes: list[NodeContact] | tuple[NodeContact, ...]) -> bytes:
    return b"".join(n.id + pack_addr(n.addr) for n in nodes)


def unpack_nodes(data: bytes, v6: bool = False) -> tuple[NodeContact, ...]:
    size = 38 if v6 else 26
    if len(data) % size:
        raise ValueError(
            f"{'nodes6' if v6 else 'nodes'} of {len(data)} bytes, not a multiple of {size}"
        )
    out = []
    if v6:
        for i in range(0, len(data), 38):
            host = socket.inet_ntop(socket.AF_INET6, data[i + 20 : i + 36])
            out.append(
                NodeContact(data[i : i + 20], (host, int.from_bytes(data[i + 36 : i + 38], "big")))
            )
    else:
        ntoa = socket.inet_ntoa
        for i in range(0, len(data), 26):
            host = ntoa(data[i + 20 : i + 24])
            out.append(NodeContact(data[i : i + 20], (host, (data[i + 24] << 8) | data[i + 25])))
    return tuple(out)


def unpack_values(values: Any) -> tuple[Addr, ...]:
    """``values`` of a get_peers answer: a list of 6-byte (IPv4) or 18-byte (IPv6) peers."""
    if not isinstance(values, list):
        raise ValueError("values is not a list")
    out = []
    for v in values:
        if not isinstance(v, bytes) or len(v) not in (6, 18):
            raise ValueError("a peer in values is not 6 or 18 bytes")
        out.append(unpack_addr(v))
    return tuple(out)


# --- decode ----------------------------------------------------------------------------------


def _shape_ok(data: bytes) -> bool:
    """Whether ``data`` is balanced bencode that nests at most ``MAX_DEPTH`` deep.

    One flat loop over the tokens, strings skipped by their length prefix, so it costs a
    step per token rather than per byte. Anything that is not bencode is refused here too:
    the decoder would refuse it as well, only slower.
    """
    depth = 0
    i = 0
    n = len(data)
    find = data.find
    while i < n:
        c = data[i]
        if c < 0x3A:  # <length>:<bytes>, the common token
            j = find(b":", i, i + 8)
            if j <= i or c < 0x30:
                return False
            try:
                i = j + 1 + int(data[i:j])
            except ValueError:
                return False
        elif c == 0x65:  # e
            depth -= 1
            if depth <= 0:
                return depth == 0 and i + 1 == n  # one value and nothing after it
            i += 1
        elif c in (0x64, 0x6C):  # d, l
            depth += 1
            if depth > MAX_DEPTH:
                return False
            i += 1
        elif c == 0x69:  # i...e
            j = find(b"e", i + 1)
            if j < 0:
                return False
            i = j + 1
        else:
            return False
        if depth == 0:
            return i == n  # a lone string or integer
    return False  # unterminated


def decode(data: bytes) -> Message:
    """Decode one datagram. Raises only ``KrpcDecodeError``.

    This runs for every datagram a node gets, so types are tested with ``type(x) is``:
    bencode2 builds plain ``dict``, ``list``, ``bytes`` and ``int``, never subclasses.
    """
    if data.count(b"l") + data.count(b"d") > _UNSCANNED and not _shape_ok(data):
        raise KrpcDecodeError("not bencoded: too deep or unbalanced")
    try:
        msg = _bdecode(data)
    except Exception as exc:  # bencode2 raises BencodeDecodeError, and TypeError on odd input
        raise KrpcDecodeError(f"not bencoded: {exc}") from None
    if type(msg) is not dict:
        raise KrpcDecodeError("not a dict")
    t = msg.get(b"t")
    if type(t) is not bytes:
        raise KrpcDecodeError("no transaction id")
    y = msg.get(b"y")
    if y == b"q":
        return _decode_query(msg, t)
    if y is None:
        raise KrpcDecodeError("no message type", None)
    version = msg.get(b"v")
    if type(version) is not bytes:
        version = None
    if y == b"r":
        return _decode_response(msg, t, version)
    if y == b"e":
        return _decode_error(msg, t, version)
    raise KrpcDecodeError("unknown message type", t, is_query=False)


def _decode_query(msg: dict[bytes, Any], t: bytes) -> Query:
    method = msg.get(b"q")
    args = msg.get(b"a")
    if type(method) is not bytes:
        raise KrpcDecodeError("query without method", t)
    if type(args) is not dict:
        raise KrpcDecodeError("query without arguments", t)
    node_id = args.get(b"id")
    if type(node_id) is not bytes or len(node_id) != ID_LEN:
        raise KrpcDecodeError("invalid id", t)
    target = None
    key = _TARGET_KEY.get(method)
    if key is not None:
        target = args.get(key)
        if type(target) is not bytes or len(target) != ID_LEN:
            raise KrpcDecodeError(f"invalid {key.decode()}", t)
        if method == b"announce_peer":
            _check_announce(args, t)
    if b"want" in args and type(args[b"want"]) is not list:
        raise KrpcDecodeError("invalid want", t)
    version = msg.get(b"v")
    return Query(
        t,
        method,
        node_id,
        args,
        target,
        msg.get(b"ro") == 1,
        version if type(version) is bytes else None,
    )


def _check_announce(args: dict[bytes, Any], t: bytes) -> None:
    token = args.get(b"token")
    if not isinstance(token, bytes):
        raise KrpcDecodeError("missing token", t)
    implied = args.get(b"implied_port", 0)
    if not isinstance(implied, int):
        raise KrpcDecodeError("invalid implied_port", t)
    port = args.get(b"port")
    if not implied and (not isinstance(port, int) or not 0 < port < 65536):
        raise KrpcDecodeError("invalid port", t)


def _decode_ip(msg: dict[bytes, Any]) -> Addr | None:
    ip = msg.get(b"ip")
    if isinstance(ip, bytes) and len(ip) in (6, 18):
        return unpack_addr(ip)
    return None  # a malformed BEP 42 hint is ignored, not fatal


def _decode_response(msg: dict[bytes, Any], t: bytes, version: bytes | None) -> Response:
    r = msg.get(b"r")
    if not isinstance(r, dict):
        raise KrpcDecodeError("response without r", t, is_query=False)
    node_id = r.get(b"id")
    if not isinstance(node_id, bytes) or len(node_id) != ID_LEN:
        raise KrpcDecodeError("invalid id", t, is_query=False)
    try:
        raw = r.get(b"nodes")
        nodes = unpack_nodes(raw) if isinstance(raw, bytes) else ()
        raw = r.get(b"nodes6")
        nodes6 = unpack_nodes(raw, v6=True) if isinstance(raw, bytes) else ()
        raw = r.get(b"values")
        peers = unpack_values(raw) if raw is not None else ()
    except (ValueError, OSError) as exc:
        raise KrpcDecodeError(str(exc), t, is_query=False) from None
    token = r.get(b"token")
    if not isinstance(token, bytes):
        token = None
    return Response(t, node_id, r, nodes, nodes6, peers, token, _decode_ip(msg), version)


def _decode_error(msg: dict[bytes, Any], t: bytes, version: bytes | None) -> KrpcError:
    e = msg.get(b"e")
    code = ERROR_GENERIC
    text = ""
    if isinstance(e, list):
        if e and isinstance(e[0], int):
            code = e[0]
        if len(e) > 1 and isinstance(e[1], bytes):
            text = e[1].decode("utf-8", "replace")
    return KrpcError(t, code, text, version, _decode_ip(msg))


# --- encode ----------------------------------------------------------------------------------


def encode_query(
    t: bytes,
    method: bytes,
    args: dict[bytes, Any],
    *,
    version: bytes | None = None,
    read_only: bool = False,
) -> bytes:
    msg: dict[bytes, Any] = {b"a": args, b"q": method, b"t": t, b"y": b"q"}
    if version:
        msg[b"v"] = version
    if read_only:
        msg[b"ro"] = 1
    return bencode2.bencode(msg)


def encode_response(
    t: bytes, values: dict[bytes, Any], *, ip: bytes | None = None, version: bytes | None = None
) -> bytes:
    """``ip`` is the requester's compact address (BEP 42), already packed."""
    msg: dict[bytes, Any] = {b"r": values, b"t": t, b"y": b"r"}
    if ip is not None:
        msg[b"ip"] = ip
    if version:
        msg[b"v"] = version
    return bencode2.bencode(msg)


def encode_error(
    t: bytes, code: int, message: str, *, ip: bytes | None = None, version: bytes | None = None
) -> bytes:
    msg: dict[bytes, Any] = {b"e": [code, message.encode()], b"t": t, b"y": b"e"}
    if ip is not None:
        msg[b"ip"] = ip
    if version:
        msg[b"v"] = version
    return bencode2.bencode(msg)
