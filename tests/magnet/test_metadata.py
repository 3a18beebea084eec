"""Tests for magnet.metadata: piece arithmetic, assembly, verification and serving (BEP 9)."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magnet.metadata import (
    METADATA_PIECE,
    MetadataAssembler,
    MetadataError,
    MetadataSource,
    piece_count,
    piece_length,
)

MAX = 1 << 24


def info_dict(size: int, seed: int = 1) -> bytes:
    """Opaque bytes standing in for an info dict (only the hashes matter here)."""
    return random.Random(seed).randbytes(size)


def assembler_for(info: bytes, *, v1: bool = True, v2: bool = False) -> MetadataAssembler:
    return MetadataAssembler(
        hashlib.sha1(info).digest() if v1 else None,
        hashlib.sha256(info).digest() if v2 else None,
        len(info),
        MAX,
    )


def fill(asm: MetadataAssembler, info: bytes, source: object = None) -> None:
    src = MetadataSource(info)
    for i in asm.missing():
        piece = src.piece(i)
        assert piece is not None
        asm.add(i, piece, source=source)


@pytest.mark.parametrize(
    ("size", "count", "last"),
    [(1, 1, 1), (16383, 1, 16383), (16384, 1, 16384), (16385, 2, 1), (50 * 1024, 4, 2048)],
)
def test_piece_arithmetic(size: int, count: int, last: int) -> None:
    assert piece_count(size) == count
    assert all(piece_length(size, i) == METADATA_PIECE for i in range(count - 1))
    assert piece_length(size, count - 1) == last
    assert piece_length(size, count) is None
    assert piece_length(size, -1) is None


def test_rejects_bad_sizes_and_hashes() -> None:
    h = bytes(20)
    with pytest.raises(MetadataError):
        MetadataAssembler(h, None, 0, MAX)
    with pytest.raises(MetadataError):
        MetadataAssembler(h, None, -5, MAX)
    with pytest.raises(MetadataError):
        MetadataAssembler(h, None, MAX + 1, MAX)
    with pytest.raises(ValueError, match="need a v1 or a v2"):
        MetadataAssembler(None, None, 10, MAX)
    with pytest.raises(ValueError, match="20 bytes"):
        MetadataAssembler(bytes(32), None, 10, MAX)
    with pytest.raises(ValueError, match="32 bytes"):
        MetadataAssembler(None, bytes(20), 10, MAX)
    assert MetadataAssembler(h, None, MAX, MAX).pieces_total == MAX // METADATA_PIECE


def test_add_checks_index_and_exact_length() -> None:
    info = info_dict(40_000)
    asm = assembler_for(info)
    assert asm.pieces_total == 3
    with pytest.raises(MetadataError, match="out of range"):
        asm.add(3, b"x")
    with pytest.raises(MetadataError, match="out of range"):
        asm.add(-1, b"x")
    with pytest.raises(MetadataError, match="expected 16384"):
        asm.add(0, info[:100])
    with pytest.raises(MetadataError, match=f"expected {40_000 - 2 * METADATA_PIECE}"):
        asm.add(2, info[2 * METADATA_PIECE :] + b"!")
    assert asm.missing() == [0, 1, 2]


@pytest.mark.parametrize(("v1", "v2"), [(True, False), (False, True), (True, True)])
def test_assemble_out_of_order_and_verify(v1: bool, v2: bool) -> None:
    info = info_dict(50 * 1024)
    asm = assembler_for(info, v1=v1, v2=v2)
    src = MetadataSource(info)
    for i in (3, 0, 2):
        piece = src.piece(i)
        assert piece is not None
        asm.add(i, piece)
    assert not asm.complete
    assert asm.missing() == [1] == asm.wanted()
    with pytest.raises(MetadataError, match="1 of 4 pieces missing"):
        asm.verify()
    piece = src.piece(1)
    assert piece is not None
    asm.add(1, piece)
    assert asm.complete
    assert asm.verify() == info


def test_both_hashes_must_match() -> None:
    info = info_dict(100)
    asm = MetadataAssembler(hashlib.sha1(info).digest(), bytes(32), len(info), MAX)
    fill(asm, info)
    assert asm.verify() is None


def test_single_liar_is_named_and_everything_refetched() -> None:
    info = info_dict(20_000)
    asm = assembler_for(info)
    asm.add(0, info[:METADATA_PIECE], source="liar")
    asm.add(1, b"\0" * (20_000 - METADATA_PIECE), source="liar")
    assert asm.verify() is None
    assert asm.last_failure == frozenset({"liar"})
    assert asm.missing() == [0, 1]
    assert not asm.single_source  # one source: the verdict is clear, keep fetching in parallel
    fill(asm, info, source="honest")
    assert asm.verify() == info


def test_multi_source_failure_switches_to_single_source_rounds() -> None:
    info = info_dict(3 * METADATA_PIECE)
    asm = assembler_for(info)
    asm.add(0, info[:METADATA_PIECE], source="a")
    asm.add(1, b"\xff" * METADATA_PIECE, source="b")  # someone lies; we cannot tell who
    asm.add(2, info[2 * METADATA_PIECE :], source="c")
    assert asm.verify() is None
    assert asm.last_failure == frozenset({"a", "b", "c"})
    assert asm.single_source
    # Nobody has claimed the round: everyone may deliver.
    assert asm.wanted("a") == asm.wanted("b") == [0, 1, 2]
    asm.add(1, info[METADATA_PIECE : 2 * METADATA_PIECE], source="b")
    assert asm.wanted("a") == []
    assert asm.wanted("b") == [0, 2]
    with pytest.raises(MetadataError, match="from 'b' only"):
        asm.add(0, info[:METADATA_PIECE], source="a")
    # The claimant leaves: its pieces go and the round is open again.
    assert asm.discard("b") == 1
    assert asm.wanted("a") == [0, 1, 2]
    fill(asm, info, source="a")
    assert asm.verify() == info


def test_discard_drops_only_that_sources_pieces() -> None:
    info = info_dict(3 * METADATA_PIECE)
    asm = assembler_for(info)
    src = MetadataSource(info)
    for i, who in enumerate(["x", "y", "x"]):
        piece = src.piece(i)
        assert piece is not None
        asm.add(i, piece, source=who)
    assert asm.complete
    assert asm.discard("x") == 2
    assert asm.missing() == [0, 2]
    assert asm.discard("nobody") == 0


def test_duplicate_piece_counts_once() -> None:
    info = info_dict(2 * METADATA_PIECE)
    asm = assembler_for(info)
    asm.add(0, info[:METADATA_PIECE], source="a")
    asm.add(0, info[:METADATA_PIECE], source="b")
    assert asm.missing() == [1]
    assert asm.discard("a") == 0  # b's copy replaced a's
    fill(asm, info)
    assert asm.verify() == info


def test_source_serves_pieces_and_refuses_out_of_range() -> None:
    info = info_dict(50 * 1024)
    src = MetadataSource(info)
    assert src.size == len(info)
    assert src.pieces_total == 4
    assert src.piece(0) == info[:METADATA_PIECE]
    assert src.piece(3) == info[3 * METADATA_PIECE :]
    assert src.piece(4) is None
    assert src.piece(-1) is None
    with pytest.raises(MetadataError):
        MetadataSource(b"")


@given(size=st.integers(1, 5 * METADATA_PIECE), seed=st.integers(0, 2**32))
def test_source_and_assembler_round_trip(size: int, seed: int) -> None:
    info = info_dict(size, seed)
    asm = assembler_for(info, v2=True)
    order = list(range(asm.pieces_total))
    random.Random(seed).shuffle(order)
    src = MetadataSource(info)
    for i in order:
        piece = src.piece(i)
        assert piece is not None
        asm.add(i, piece, source=i % 2)
    assert asm.verify() == info
