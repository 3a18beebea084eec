"""BEP 44 items (arbitrary data in the DHT): targets, signatures and the rules of a put.

An *immutable* item is a bencoded value stored under SHA-1 of its bencoding. A *mutable* item
is stored under SHA-1(k + salt), where ``k`` is an ed25519 public key, and carries a sequence
number and a signature over ``4:salt<len>:<salt>3:seqi<seq>e1:v<bencoded v>`` (the salt part
only when the salt is non-empty). Values are at most 1000 bytes bencoded, salts 64 bytes.
Everything here is pure: no clock, no store, no socket. Items keep ``v`` in its bencoded form
(``BencodedValue``), which is what gets hashed, signed, measured and stored; the decoder the
wire uses is strict (sorted keys, no duplicates), so re-encoding a received value gives back
its exact bytes.

How the node will use these units (the handlers come with the split of ``dht/protocol.py``):

- ``get`` handler: ``store.get(q.target, now)`` -> ``response_fields(item, q.args.get(b"seq"))``
  merged into the answer with a write token bound to the target and the closest nodes.
- ``put`` handler, in libtorrent's order (cheap refusals before the ed25519 check):
  ``req = parse_put(q.args)`` (203/205/207 come back as a ``PutRejected``); check ``req.token``
  against ``req.item.target`` and the sender's IP (203 on failure); ``check_signature(req.item)``
  (206); ``store.put(req.item, ip, now, cas=req.cas)`` (301/302). Any ``PutRejected`` is sent
  as a KRPC error with its ``code`` and ``message``.
- Client side: ``immutable_item(value)`` or ``mutable_item(seed, value, seq=..., salt=...)``
  builds the item; the get traversal checks each answer with ``item_from_response(target,
  r, salt)`` (the requester MUST check target and signature itself) and keeps the highest
  ``seq``; the put traversal then sends ``put_arguments(item, token, cas)`` to the K closest
  nodes that gave a token. A republish (hourly, BEP 44) is the same put with the same item.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NewType

import bencode2

from dht.wire import ERROR_PROTOCOL

__all__ = [
    "BAD_SIGNATURE",
    "CAS_MISMATCH",
    "SALT_TOO_BIG",
    "SEQ_TOO_OLD",
    "V_TOO_BIG",
    "ERROR_BAD_SIGNATURE",
    "ERROR_CAS_MISMATCH",
    "ERROR_SALT_TOO_BIG",
    "ERROR_SEQ_TOO_OLD",
    "ERROR_V_TOO_BIG",
    "KEY_BYTES",
    "MAX_SALT_BYTES",
    "MAX_SEQ",
    "MAX_V_BYTES",
    "SIG_BYTES",
    "BencodedValue",
    "ImmutableItem",
    "Item",
    "MutableItem",
    "PutRejected",
    "PutRequest",
    "check_replace",
    "check_signature",
    "encode_value",
    "immutable_item",
    "immutable_target",
    "item_from_response",
    "mutable_item",
    "mutable_target",
    "parse_put",
    "public_key",
    "put_arguments",
    "response_fields",
    "sign",
    "signed_buffer",
    "verify",
]

MAX_V_BYTES = 1000  # BEP 44: bencoded v larger than this is refused with 205 (1000 itself is ok)
MAX_SALT_BYTES = 64  # BEP 44: 207
MAX_SEQ = 2**63 - 1  # a signed 64-bit integer, as every implementation stores it
KEY_BYTES = 32  # ed25519 public key
SIG_BYTES = 64  # ed25519 signature

ERROR_V_TOO_BIG = 205
ERROR_BAD_SIGNATURE = 206
ERROR_SALT_TOO_BIG = 207
ERROR_CAS_MISMATCH = 301
ERROR_SEQ_TOO_OLD = 302

BencodedValue = NewType("BencodedValue", bytes)
"""A value in its bencoded form, so that ``b"spam"`` the value and ``4:spam`` never mix."""


@dataclass(frozen=True, slots=True)
class PutRejected:
    """Why a put is refused: the KRPC error to answer with (BEP 44 codes, BEP 5's 203)."""

    code: int
    message: str


# The BEP's own wording for each refusal.
V_TOO_BIG = PutRejected(ERROR_V_TOO_BIG, "message (v field) too big")
SALT_TOO_BIG = PutRejected(ERROR_SALT_TOO_BIG, "salt (salt field) too big")
BAD_SIGNATURE = PutRejected(ERROR_BAD_SIGNATURE, "invalid signature")
CAS_MISMATCH = PutRejected(
    ERROR_CAS_MISMATCH, "the CAS hash mismatched, re-read value and try again"
)
SEQ_TOO_OLD = PutRejected(ERROR_SEQ_TOO_OLD, "sequence number less than current")


@dataclass(frozen=True, slots=True)
class ImmutableItem:
    v: BencodedValue
    target: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", immutable_target(self.v))

    def value(self) -> Any:
        return bencode2.bdecode(self.v)


@dataclass(frozen=True, slots=True)
class MutableItem:
    """A signed item. Building one does not check the signature: ``check_signature`` does."""

    k: bytes  # ed25519 public key, 32 bytes
    salt: bytes  # b"" for none; never sent back in a get answer
    seq: int
    v: BencodedValue
    sig: bytes  # 64 bytes over signed_buffer(salt, seq, v)
    target: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", mutable_target(self.k, self.salt))

    def value(self) -> Any:
        return bencode2.bdecode(self.v)


Item = ImmutableItem | MutableItem


@dataclass(frozen=True, slots=True)
class PutRequest:
    """A put's arguments, well formed and within limits; the signature is not yet checked."""

    item: Item
    token: bytes
    cas: int | None


# --- targets and signatures -------------------------------------------------------------------


def encode_value(value: object) -> BencodedValue:
    """The bencoding of ``value`` (bytes, str, int, list, dict). ValueError if it has none."""
    try:
        return BencodedValue(bencode2.bencode(value))
    except TypeError as exc:
        raise ValueError(f"not a bencodable value: {exc}") from None


def immutable_target(v: BencodedValue) -> bytes:
    return hashlib.sha1(v).digest()


def mutable_target(k: bytes, salt: bytes = b"") -> bytes:
    return hashlib.sha1(k + salt).digest()


def signed_buffer(salt: bytes, seq: int, v: BencodedValue) -> bytes:
    """The exact bytes a mutable item's signature covers (BEP 44), built by concatenation.

    A dict encoder would also write ``4:salt0:`` for an empty salt and sort keys its own way;
    the BEP wants the salt part left out when there is no salt.
    """
    head = b"4:salt%d:%s" % (len(salt), salt) if salt else b""
    return b"%s3:seqi%de1:v%s" % (head, seq, v)


def public_key(seed: bytes) -> bytes:
    """The ed25519 public key (``k``) of a 32-byte private key seed (RFC 8032).

    The seed itself comes from the caller (``secrets.token_bytes(32)`` in a driver): a core
    draws no randomness of its own.
    """
    # Imported here: ``import dht.wire`` and friends should not pay for the crypto backend.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def sign(seed: bytes, salt: bytes, seq: int, v: BencodedValue) -> bytes:
    """The 64-byte signature of a mutable item under the key with this 32-byte seed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(seed).sign(signed_buffer(salt, seq, v))


def verify(k: bytes, sig: bytes, salt: bytes, seq: int, v: BencodedValue) -> bool:
    """Is ``sig`` a valid signature by ``k`` of this salt, seq and value? Never raises."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if len(k) != KEY_BYTES or len(sig) != SIG_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(k).verify(sig, signed_buffer(salt, seq, v))
    except (InvalidSignature, ValueError):
        return False
    return True


# --- building items (client side; misuse raises ValueError) -----------------------------------


def immutable_item(value: object) -> ImmutableItem:
    v = encode_value(value)
    if len(v) > MAX_V_BYTES:
        raise ValueError(f"value is {len(v)} bytes bencoded, BEP 44 allows {MAX_V_BYTES}")
    return ImmutableItem(v)


def mutable_item(seed: bytes, value: object, *, seq: int, salt: bytes = b"") -> MutableItem:
    """A mutable item signed with the key of ``seed``, ready to put."""
    v = encode_value(value)
    if len(v) > MAX_V_BYTES:
        raise ValueError(f"value is {len(v)} bytes bencoded, BEP 44 allows {MAX_V_BYTES}")
    if len(salt) > MAX_SALT_BYTES:
        raise ValueError(f"salt is {len(salt)} bytes, BEP 44 allows {MAX_SALT_BYTES}")
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"seq {seq} is outside 0..2**63-1")
    return MutableItem(public_key(seed), salt, seq, v, sign(seed, salt, seq, v))


# --- the storing side -------------------------------------------------------------------------


def parse_put(args: Mapping[bytes, Any]) -> PutRequest | PutRejected:
    """Check a put query's ``a`` dict: shape (203), value size (205), salt size (207).

    The ed25519 check is left to ``check_signature``, to be run after the token check: a
    signature check costs about 0.1-0.3 ms, a token one SHA-1.
    """
    token = args.get(b"token")
    if not isinstance(token, bytes):
        return PutRejected(ERROR_PROTOCOL, "missing token")
    if b"v" not in args:
        return PutRejected(ERROR_PROTOCOL, "missing v")
    try:
        v = encode_value(args[b"v"])
    except ValueError:
        return PutRejected(ERROR_PROTOCOL, "invalid v")
    if b"k" not in args and b"sig" not in args:
        return V_TOO_BIG if len(v) > MAX_V_BYTES else PutRequest(ImmutableItem(v), token, None)
    k, sig, seq = args.get(b"k"), args.get(b"sig"), args.get(b"seq")
    salt, cas = args.get(b"salt", b""), args.get(b"cas")
    if not (isinstance(k, bytes) and len(k) == KEY_BYTES):
        return PutRejected(ERROR_PROTOCOL, "invalid k")
    if not (isinstance(sig, bytes) and len(sig) == SIG_BYTES):
        return PutRejected(ERROR_PROTOCOL, "invalid sig")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return PutRejected(ERROR_PROTOCOL, "missing seq")
    if not isinstance(salt, bytes):
        return PutRejected(ERROR_PROTOCOL, "invalid salt")
    if cas is not None and (not isinstance(cas, int) or isinstance(cas, bool)):
        return PutRejected(ERROR_PROTOCOL, "invalid cas")
    if len(v) > MAX_V_BYTES:
        return V_TOO_BIG
    if len(salt) > MAX_SALT_BYTES:
        return SALT_TOO_BIG
    if not 0 <= seq <= MAX_SEQ:
        return PutRejected(ERROR_PROTOCOL, "invalid seq")
    return PutRequest(MutableItem(k, salt, seq, v, sig), token, cas)


def check_signature(item: Item) -> PutRejected | None:
    """206 unless the item is immutable or its signature is good."""
    if isinstance(item, ImmutableItem) or verify(item.k, item.sig, item.salt, item.seq, item.v):
        return None
    return BAD_SIGNATURE


def check_replace(current: Item | None, new: Item, cas: int | None) -> PutRejected | None:
    """May ``new`` take the place of ``current`` (same target)? None if so.

    ``cas`` counts only when something is stored (BEP 44). A lower seq is refused with 302, as
    is an equal seq with another value (the BEP: reject seq <= stored, unless the value is the
    same, which refreshes). libtorrent accepts the latter silently and keeps the old value; we
    keep it too, but say so.
    """
    if not isinstance(current, MutableItem) or not isinstance(new, MutableItem):
        return None
    if cas is not None and cas != current.seq:
        return CAS_MISMATCH
    if new.seq < current.seq or (new.seq == current.seq and new.v != current.v):
        return SEQ_TOO_OLD
    return None


def response_fields(item: Item | None, seq: object = None) -> dict[bytes, Any]:
    """The BEP 44 keys of a get answer for ``item`` (to merge with id, token and nodes).

    A get with ``seq`` asks only for something newer: when the stored seq is not above it, the
    answer keeps ``seq`` (as libtorrent does) and drops ``k``, ``sig`` and ``v``.
    """
    if item is None:
        return {}
    if isinstance(item, ImmutableItem):
        return {b"v": item.value()}
    fields: dict[bytes, Any] = {b"seq": item.seq}
    if not isinstance(seq, int) or isinstance(seq, bool) or item.seq > seq:
        fields[b"k"] = item.k
        fields[b"sig"] = item.sig
        fields[b"v"] = item.value()
    return fields


# --- the requesting side ----------------------------------------------------------------------


def item_from_response(target: bytes, r: Mapping[bytes, Any], salt: bytes = b"") -> Item | None:
    """The item in a get answer, if it is one and truly belongs to ``target``; else None.

    An immutable value must hash to the target; a mutable one must carry k, seq and sig with
    SHA-1(k + salt) == target and a good signature. Anything else is ignored, not trusted.
    """
    if b"v" not in r:
        return None
    try:
        v = encode_value(r[b"v"])
    except ValueError:
        return None
    if len(v) > MAX_V_BYTES:
        return None
    k, sig, seq = r.get(b"k"), r.get(b"sig"), r.get(b"seq")
    if k is None and sig is None:
        return ImmutableItem(v) if immutable_target(v) == target else None
    if not (isinstance(k, bytes) and isinstance(sig, bytes)):
        return None
    if not isinstance(seq, int) or isinstance(seq, bool):
        return None
    if not 0 <= seq <= MAX_SEQ or mutable_target(k, salt) != target:
        return None
    item = MutableItem(k, salt, seq, v, sig)
    return item if check_signature(item) is None else None


def put_arguments(item: Item, token: bytes, cas: int | None = None) -> dict[bytes, Any]:
    """The ``a`` dict of a put query for ``item`` (``id`` is the sender's to add)."""
    args: dict[bytes, Any] = {b"token": token, b"v": item.value()}
    if isinstance(item, MutableItem):
        args[b"k"] = item.k
        args[b"seq"] = item.seq
        args[b"sig"] = item.sig
        if item.salt:
            args[b"salt"] = item.salt
        if cas is not None:
            args[b"cas"] = cas
    return args
