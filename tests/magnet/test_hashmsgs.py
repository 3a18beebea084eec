"""Tests for magnet.hashmsgs: the BEP 52 hash request, hashes and hash reject wire forms."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magnet.hashmsgs import (
    HASH_REJECT,
    HASH_REQUEST,
    HASHES,
    MAX_LENGTH,
    MIN_SENT_LENGTH,
    Hashes,
    HashMessage,
    HashMessageError,
    HashReject,
    HashRequest,
    encode_hash_message,
    encode_hash_reject,
    encode_hash_request,
    encode_hashes,
    parse_hash_message,
    parse_hash_reject,
    parse_hash_request,
    parse_hashes,
)
from magnet.merkle import MAX_TREE_HEIGHT, HashRange, MerkleError, MerkleTree, verify_hashes
from magnet.peerwire import MAX_MESSAGE_BYTES

ROOT = hashlib.sha256(b"pieces root").digest()


def h(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(4, "big")).digest()


def fields(base: int, index: int, length: int, proof: int) -> bytes:
    return ROOT + struct.pack(">IIII", base, index, length, proof)


# --- layout by hand -----------------------------------------------------------------------


def test_message_ids_are_bep_52s() -> None:
    assert (HASH_REQUEST, HASHES, HASH_REJECT) == (21, 22, 23)


def test_hash_request_layout() -> None:
    msg = HashRequest(ROOT, 2, 512, 512, 11)
    wire = encode_hash_request(msg)
    # base layer 2, index 512, length 512, proof layers 11: four big-endian u32.
    body = ROOT + bytes([0, 0, 0, 2, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 11])
    assert wire == (1 + 48).to_bytes(4, "big") + b"\x15" + body
    assert parse_hash_request(body) == msg
    assert parse_hash_message(21, body) == msg


def test_hash_reject_layout_is_the_requests() -> None:
    request = HashRequest(ROOT, 0, 4, 2, 3)
    reject = request.reject()
    assert reject == HashReject(ROOT, 0, 4, 2, 3)
    assert reject.request == request
    wire = encode_hash_reject(reject)
    assert wire[:5] == (49).to_bytes(4, "big") + b"\x17"
    assert wire[5:] == encode_hash_request(request)[5:]
    assert parse_hash_reject(wire[5:]) == reject
    assert parse_hash_message(23, wire[5:]) == reject


def test_hashes_layout_base_range_then_uncles() -> None:
    # length 4, proof layers 3: layers 1 is covered by the range, uncles at layers 2 and 3.
    hashes = (h(0), h(1), h(2), h(3), h(4), h(5))
    msg = Hashes(ROOT, 0, 8, 4, 3, hashes)
    assert msg.hash_range.uncle_count == 2
    wire = encode_hashes(msg)
    body = fields(0, 8, 4, 3) + b"".join(hashes)
    assert wire == (1 + len(body)).to_bytes(4, "big") + b"\x16" + body
    assert parse_hashes(body) == msg
    assert parse_hash_message(22, memoryview(body)) == msg
    assert msg.request == HashRequest(ROOT, 0, 8, 4, 3)


def test_encode_hash_message_picks_the_right_encoder() -> None:
    request = HashRequest(ROOT, 0, 0, 2, 0)
    answer = Hashes(ROOT, 0, 0, 2, 0, (h(0), h(1)))
    assert encode_hash_message(request) == encode_hash_request(request)
    assert encode_hash_message(request.reject()) == encode_hash_reject(request.reject())
    assert encode_hash_message(answer) == encode_hashes(answer)


# --- strict validation --------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 47, 49, 80])
def test_request_and_reject_bodies_are_exactly_48_bytes(size: int) -> None:
    body = (fields(0, 0, 2, 0) + bytes(64))[:size]
    for parse in (parse_hash_request, parse_hash_reject):
        with pytest.raises(HashMessageError, match="not 48"):
            parse(body)


@pytest.mark.parametrize(
    ("base", "index", "length", "proof", "why"),
    [
        (0, 0, 0, 0, "not a power of two"),
        (0, 0, 3, 0, "not a power of two"),
        (0, 0, 6, 0, "not a power of two"),
        (0, 0, 2 * MAX_LENGTH, 0, "over 8192"),
        (0, 0, 1 << 31, 0, "over 8192"),
        (0, 3, 2, 0, "not a multiple"),
        (0, 512, 1024, 0, "not a multiple"),
        (MAX_TREE_HEIGHT, 0, 2, 0, "base layer"),
        (0xFFFFFFFF, 0, 2, 0, "base layer"),
        (0, 0, 2, 0xFFFFFFFF, "proof layers"),
        (40, 0, 2, 20, "climb past"),
        (45, 0xFFFFFFF0, 16, 0, "run past"),
    ],
)
def test_fields_that_break_the_rules_are_refused(
    base: int, index: int, length: int, proof: int, why: str
) -> None:
    body = fields(base, index, length, proof)
    for msg_id in (HASH_REQUEST, HASH_REJECT):
        with pytest.raises(HashMessageError, match=why):
            parse_hash_message(msg_id, body)
    with pytest.raises(HashMessageError, match=why):
        parse_hashes(body + bytes(32 * 4))
    with pytest.raises(HashMessageError, match=why):
        HashRequest(ROOT, base, index, length, proof)


def test_fields_must_fit_their_four_bytes() -> None:
    """A layer of the tallest tree is wider than 2**32 nodes: the wire cannot name those."""
    HashRange(0, 1 << 32, 2, 0)  # fine as arithmetic...
    with pytest.raises(HashMessageError, match="4 bytes"):
        HashRequest(ROOT, 0, 1 << 32, 2, 0)  # ...but no message can carry it
    with pytest.raises(HashMessageError, match="4 bytes"):
        Hashes(ROOT, 0, 1 << 32, 2, 0, (h(0), h(1)))
    top = HashRequest(ROOT, 0, (1 << 32) - 2, 2, 0)
    assert parse_hash_request(encode_hash_request(top)[5:]) == top


def test_the_largest_length_is_accepted_and_fits_a_peer_message() -> None:
    request = HashRequest(ROOT, 0, 0, MAX_LENGTH, MAX_TREE_HEIGHT - 1)
    assert parse_hash_request(encode_hash_request(request)[5:]) == request
    # The biggest `hashes` there is still fits the peer wire's message cap.
    biggest = 4 + 1 + 48 + 32 * request.hash_range.hash_count
    assert biggest <= MAX_MESSAGE_BYTES


def test_length_one_is_parsed_and_answered_as_libtorrent_asks_but_never_requested() -> None:
    body = fields(1, 512, 1, 2)
    request = parse_hash_request(body)
    assert request.length == 1
    assert parse_hash_reject(body).request == request
    answer = parse_hashes(body + h(0) + h(1) + h(2) + h(3))  # 1 hash + 3 uncles
    assert answer.hash_range.uncle_count == 3
    # An answer repeats its request's fields, so both answers go out with length one...
    assert encode_hash_reject(request.reject())[5:] == body
    assert encode_hashes(answer)[5:] == body + h(0) + h(1) + h(2) + h(3)
    # ...but a request of ours keeps to BEP 52.
    assert MIN_SENT_LENGTH == 2
    with pytest.raises(HashMessageError, match="below 2"):
        encode_hash_request(request)
    with pytest.raises(HashMessageError, match="below 2"):
        encode_hash_message(request)


def test_hashes_must_match_length_and_proof_layers() -> None:
    head = fields(0, 0, 4, 3)  # 4 hashes + 2 uncles = 192 bytes
    good = b"".join(h(i) for i in range(6))
    assert len(parse_hashes(head + good).hashes) == 6
    for tail in (b"", good[:-32], good + h(9), good[:-1], good + b"x"):
        with pytest.raises(HashMessageError, match="carries"):
            parse_hashes(head + tail)
    with pytest.raises(HashMessageError, match="not 48"):
        parse_hashes(head[:40])
    with pytest.raises(HashMessageError, match="carries 6"):
        Hashes(ROOT, 0, 0, 4, 3, tuple(h(i) for i in range(5)))
    with pytest.raises(HashMessageError, match="not 32 bytes"):
        Hashes(ROOT, 0, 0, 2, 0, (h(0), b"short"))


def test_pieces_root_is_32_bytes() -> None:
    for bad in (b"", ROOT[:31], ROOT + b"x"):
        with pytest.raises(HashMessageError, match="pieces root"):
            HashRequest(bad, 0, 0, 2, 0)
        with pytest.raises(HashMessageError, match="pieces root"):
            HashReject(bad, 0, 0, 2, 0)
        with pytest.raises(HashMessageError, match="pieces root"):
            Hashes(bad, 0, 0, 2, 0, (h(0), h(1)))


def test_other_message_ids_are_refused() -> None:
    for msg_id in (0, 7, 20, 24, 255):
        with pytest.raises(HashMessageError, match="not a BEP 52"):
            parse_hash_message(msg_id, fields(0, 0, 2, 0))


def test_the_error_is_a_value_error_not_a_merkle_error() -> None:
    with pytest.raises(HashMessageError) as caught:
        parse_hash_request(fields(0, 3, 2, 0))
    assert isinstance(caught.value, ValueError)
    assert not isinstance(caught.value, MerkleError)


# --- with magnet.merkle -------------------------------------------------------------------


def test_a_served_answer_survives_the_wire_and_proves() -> None:
    data = bytes(range(256)) * (64 * 11 + 3)  # 11 blocks and a bit: 12 leaves, padded to 16
    tree = MerkleTree.from_data(data)
    asked = HashRange.to_root(tree.height, 0, 8, 4)
    request = HashRequest(tree.root, asked.base_layer, asked.index, asked.length, 3)
    assert request.hash_range == asked
    received = parse_hash_request(encode_hash_request(request)[5:])
    answer = Hashes(
        received.pieces_root,
        received.base_layer,
        received.index,
        received.length,
        received.proof_layers,
        tuple(tree.hashes(received.hash_range)),
    )
    got = parse_hashes(encode_hashes(answer)[5:])
    assert got.request == request
    proven = verify_hashes(got.hash_range, got.hashes, tree.root, tree.height)
    assert proven == tree.layer(0)[8:12]
    forged = (*got.hashes[:-1], h(0))
    with pytest.raises(MerkleError):
        verify_hashes(got.hash_range, forged, tree.root, tree.height)


# --- Hypothesis: round trips and fuzzing --------------------------------------------------


@st.composite
def valid_fields(draw: st.DrawFn) -> tuple[bytes, int, int, int, int]:
    root = draw(st.binary(min_size=32, max_size=32))
    length = 1 << draw(st.integers(min_value=0, max_value=13))
    base = draw(st.integers(min_value=0, max_value=MAX_TREE_HEIGHT - 14))
    room = MAX_TREE_HEIGHT - base  # layers above the base in the tallest tree
    index = length * draw(st.integers(min_value=0, max_value=min(1 << 32, 1 << room) // length - 1))
    proof = draw(st.integers(min_value=0, max_value=room - 1))
    return root, base, index, length, proof


@st.composite
def valid_messages(draw: st.DrawFn) -> HashMessage:
    root, base, index, length, proof = draw(valid_fields())
    kinds = ["reject", "hashes"] if length < MIN_SENT_LENGTH else ["request", "reject", "hashes"]
    kind = draw(st.sampled_from(kinds))
    if kind == "request":
        return HashRequest(root, base, index, length, proof)
    if kind == "reject":
        return HashReject(root, base, index, length, proof)
    count = HashRange(base, index, length, proof).hash_count
    # Small counts only: the hashes are cheap to draw, not the point.
    seed = draw(st.integers(min_value=0, max_value=1 << 16))
    return Hashes(root, base, index, length, proof, tuple(h(seed + i) for i in range(count)))


@settings(max_examples=300, deadline=None)
@given(valid_messages())
def test_round_trip(msg: HashMessage) -> None:
    wire = encode_hash_message(msg)
    (size,) = struct.unpack(">I", wire[:4])
    assert size == len(wire) - 4
    assert parse_hash_message(wire[4], wire[5:]) == msg


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([HASH_REQUEST, HASHES, HASH_REJECT]), st.binary(max_size=400))
def test_any_bytes_parse_or_raise_the_one_error(msg_id: int, body: bytes) -> None:
    try:
        msg = parse_hash_message(msg_id, body)
    except HashMessageError:
        return
    if not (isinstance(msg, HashRequest) and msg.length < MIN_SENT_LENGTH):
        assert encode_hash_message(msg)[5:] == body


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([HASH_REQUEST, HASHES, HASH_REJECT]),
    st.tuples(
        st.sampled_from([0, 1, 2, 3, 5, 9, 48, 49, 0xFFFFFFFF]),
        st.sampled_from([0, 1, 2, 4, 6, 512, 1024, 0x80000000, 0xFFFFFFFF]),
        st.sampled_from([0, 1, 2, 3, 4, 512, 8192, 16384, 0xFFFFFFFF]),
        st.sampled_from([0, 1, 2, 3, 8, 9, 10, 48, 49, 0xFFFFFFFF]),
    ),
    st.integers(min_value=0, max_value=40),
)
def test_near_valid_fields_parse_or_raise_the_one_error(
    msg_id: int, values: tuple[int, int, int, int], n_hashes: int
) -> None:
    """Fields picked around every limit, so that the valid paths are hit, not just junk."""
    body = fields(*values)
    if msg_id == HASHES:
        body += b"".join(h(i) for i in range(n_hashes))
    try:
        msg = parse_hash_message(msg_id, body)
    except HashMessageError:
        return
    assert (msg.base_layer, msg.index, msg.length, msg.proof_layers) == values
    if not (isinstance(msg, HashRequest) and msg.length < MIN_SENT_LENGTH):
        assert encode_hash_message(msg)[5:] == body
