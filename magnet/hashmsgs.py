"""BEP 52 hash exchange messages: `hash request` (21), `hashes` (22), `hash reject` (23).

Owns their wire form and its validation: after the message id, a 32-byte pieces root and
four 4-byte big-endian integers (base layer, index, length, proof layers); a `hashes`
message then carries the hashes, the base range first and the uncles bottom-up. `encode_*`
return whole framed messages (length prefix and id) ready to write; `parse_*` take the body
after the id, as the peer wire framer cuts it, and raise only `HashMessageError`. Whether a
request fits a given file, and whether the hashes prove, is `magnet.merkle`'s business.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from magnet.merkle import HASH_SIZE, HashRange, MerkleError

__all__ = [
    "HASHES",
    "HASH_REJECT",
    "HASH_REQUEST",
    "MAX_LENGTH",
    "MIN_SENT_LENGTH",
    "HashMessage",
    "HashMessageError",
    "HashReject",
    "HashRequest",
    "Hashes",
    "encode_hash_message",
    "encode_hash_reject",
    "encode_hash_request",
    "encode_hashes",
    "parse_hash_message",
    "parse_hash_reject",
    "parse_hash_request",
    "parse_hashes",
]

HASH_REQUEST: Final = 21
HASHES: Final = 22
HASH_REJECT: Final = 23

#: Most base-layer hashes one message may name: libtorrent's cap (validate_hash_request in
#: hash_picker.cpp), a 128 MiB piece of leaves. BEP 52 says SHOULD NOT exceed 512.
MAX_LENGTH: Final = 8192
#: BEP 52: a length MUST be at least two. Our requests keep to that, but we accept one, and
#: answer it in kind (an answer repeats the fields of its request): libtorrent 2.1.1 asks for
#: the piece hashes past the last multiple of 512 with a length of merkle_num_leafs(pieces
#: left), which is 1 when one piece is left (hash_picker.cpp; seen on loopback, see
#: tests/interop/test_hashmsgs_lt.py).
MIN_SENT_LENGTH: Final = 2

_FIELDS: Final = struct.Struct(">32sIIII")
_U32_MAX: Final = 0xFFFFFFFF
_FRAME: Final = struct.Struct(">IB")
#: Body of a request or reject, and of a `hashes` before its hashes.
_FIELDS_SIZE: Final = _FIELDS.size


class HashMessageError(ValueError):
    """A hash request, hashes or hash reject message that breaks BEP 52's rules."""


def _range(base_layer: int, index: int, length: int, proof_layers: int) -> HashRange:
    if length > MAX_LENGTH:
        raise HashMessageError(f"length {length} is over {MAX_LENGTH}")
    # The tallest tree has layers wider than 2**32 nodes; the wire cannot name those.
    if index > _U32_MAX:
        raise HashMessageError(f"index {index} does not fit the message's 4 bytes")
    try:
        return HashRange(base_layer, index, length, proof_layers)
    except MerkleError as exc:
        raise HashMessageError(str(exc)) from exc


def _check_root(pieces_root: bytes) -> None:
    if len(pieces_root) != HASH_SIZE:
        raise HashMessageError(f"pieces root is {len(pieces_root)} bytes, not {HASH_SIZE}")


@dataclass(frozen=True, slots=True)
class HashRequest:
    """Ask for ``length`` hashes from ``index`` in ``base_layer`` of the file with
    ``pieces_root``, with ``proof_layers`` layers of proof (BEP 52 message 21).

    Raises:
        HashMessageError: a field breaks the rules (see `HashRange`, `MAX_LENGTH`).
    """

    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int

    def __post_init__(self) -> None:
        _check_root(self.pieces_root)
        _range(self.base_layer, self.index, self.length, self.proof_layers)

    @property
    def hash_range(self) -> HashRange:
        """The range asked for, for `magnet.merkle`."""
        return HashRange(self.base_layer, self.index, self.length, self.proof_layers)

    def reject(self) -> HashReject:
        """The hash reject that refuses this request (same payload, BEP 52)."""
        return HashReject(
            self.pieces_root, self.base_layer, self.index, self.length, self.proof_layers
        )


@dataclass(frozen=True, slots=True)
class HashReject:
    """A peer will not answer the request with these fields (BEP 52 message 23).

    Raises:
        HashMessageError: a field breaks the rules (see `HashRange`, `MAX_LENGTH`).
    """

    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int

    def __post_init__(self) -> None:
        _check_root(self.pieces_root)
        _range(self.base_layer, self.index, self.length, self.proof_layers)

    @property
    def request(self) -> HashRequest:
        """The request this refuses (a reject must match one we sent)."""
        return HashRequest(
            self.pieces_root, self.base_layer, self.index, self.length, self.proof_layers
        )


@dataclass(frozen=True, slots=True)
class Hashes:
    """The answer to a request with the same fields (BEP 52 message 22): ``length`` hashes
    of the base layer, then one uncle per proof layer not covered by the range, bottom-up.

    Raises:
        HashMessageError: a field breaks the rules, or the number of hashes does not match
            ``length`` and ``proof_layers``, or a hash is not 32 bytes.
    """

    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_root(self.pieces_root)
        hash_range = _range(self.base_layer, self.index, self.length, self.proof_layers)
        if len(self.hashes) != hash_range.hash_count:
            raise HashMessageError(
                f"{len(self.hashes)} hashes; length {self.length} with {self.proof_layers} "
                f"proof layers carries {hash_range.hash_count}"
            )
        if any(len(h) != HASH_SIZE for h in self.hashes):
            raise HashMessageError(f"a hash is not {HASH_SIZE} bytes")

    @property
    def hash_range(self) -> HashRange:
        """The range answered, for `magnet.merkle.verify_hashes`."""
        return HashRange(self.base_layer, self.index, self.length, self.proof_layers)

    @property
    def request(self) -> HashRequest:
        """The request this answers (hashes must match one we sent)."""
        return HashRequest(
            self.pieces_root, self.base_layer, self.index, self.length, self.proof_layers
        )


HashMessage = HashRequest | Hashes | HashReject


def _frame(msg_id: int, body: bytes) -> bytes:
    return _FRAME.pack(len(body) + 1, msg_id) + body


def _fields(msg: HashMessage) -> bytes:
    return _FIELDS.pack(msg.pieces_root, msg.base_layer, msg.index, msg.length, msg.proof_layers)


def encode_hash_request(msg: HashRequest) -> bytes:
    """The framed `hash request` message.

    Raises:
        HashMessageError: a length below `MIN_SENT_LENGTH` (BEP 52).
    """
    if msg.length < MIN_SENT_LENGTH:
        raise HashMessageError(f"BEP 52: a length of {msg.length} is below {MIN_SENT_LENGTH}")
    return _frame(HASH_REQUEST, _fields(msg))


def encode_hash_reject(msg: HashReject) -> bytes:
    """The framed `hash reject` message (its fields are the refused request's)."""
    return _frame(HASH_REJECT, _fields(msg))


def encode_hashes(msg: Hashes) -> bytes:
    """The framed `hashes` message (its fields are the answered request's)."""
    return _frame(HASHES, _fields(msg) + b"".join(msg.hashes))


def encode_hash_message(msg: HashMessage) -> bytes:
    """The framed message, whichever of the three it is.

    Raises:
        HashMessageError: a request with a length below `MIN_SENT_LENGTH`.
    """
    if isinstance(msg, Hashes):
        return encode_hashes(msg)
    if isinstance(msg, HashRequest):
        return encode_hash_request(msg)
    return encode_hash_reject(msg)


def _unpack(body: bytes | memoryview, what: str, exact: bool) -> tuple[bytes, int, int, int, int]:
    if len(body) < _FIELDS_SIZE or (exact and len(body) != _FIELDS_SIZE):
        raise HashMessageError(f"{what} body is {len(body)} bytes, not {_FIELDS_SIZE}")
    root, base_layer, index, length, proof_layers = _FIELDS.unpack_from(body)
    return root, base_layer, index, length, proof_layers


def parse_hash_request(body: bytes | memoryview) -> HashRequest:
    """A `hash request` from its body (the bytes after the message id).

    Raises:
        HashMessageError: the body is not 48 bytes or a field breaks the rules.
    """
    return HashRequest(*_unpack(body, "hash request", exact=True))


def parse_hash_reject(body: bytes | memoryview) -> HashReject:
    """A `hash reject` from its body (the bytes after the message id).

    Raises:
        HashMessageError: the body is not 48 bytes or a field breaks the rules.
    """
    return HashReject(*_unpack(body, "hash reject", exact=True))


def parse_hashes(body: bytes | memoryview) -> Hashes:
    """A `hashes` message from its body (the bytes after the message id).

    Raises:
        HashMessageError: a short body, a field that breaks the rules, or hashes that do
            not match the length and proof layers.
    """
    root, base_layer, index, length, proof_layers = _unpack(body, "hashes", exact=False)
    # Check the fields before cutting hashes, so a bogus body costs no objects.
    hash_range = _range(base_layer, index, length, proof_layers)
    hashes_size = len(body) - _FIELDS_SIZE
    if hashes_size != hash_range.hash_count * HASH_SIZE:
        raise HashMessageError(
            f"hashes body holds {hashes_size} bytes of hashes; length {length} with "
            f"{proof_layers} proof layers carries {hash_range.hash_count * HASH_SIZE}"
        )
    view = memoryview(body)
    hashes = tuple(
        bytes(view[i : i + HASH_SIZE]) for i in range(_FIELDS_SIZE, len(body), HASH_SIZE)
    )
    return Hashes(root, base_layer, index, length, proof_layers, hashes)


def parse_hash_message(msg_id: int, body: bytes | memoryview) -> HashMessage:
    """Parse message ``msg_id`` (21, 22 or 23) from its body.

    Raises:
        HashMessageError: another id, or the body breaks the rules of its message.
    """
    if msg_id == HASH_REQUEST:
        return parse_hash_request(body)
    if msg_id == HASHES:
        return parse_hashes(body)
    if msg_id == HASH_REJECT:
        return parse_hash_reject(body)
    raise HashMessageError(f"message id {msg_id} is not a BEP 52 hash message")
