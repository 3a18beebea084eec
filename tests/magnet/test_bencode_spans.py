"""bencode_spans: the span of what bencode2 encodes is exact; anything else is a BencodeError."""

from __future__ import annotations

import time
from typing import Any

import bencode2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magnet.bencode_spans import BencodeError, SpanScanner, value_end

values = st.recursive(
    st.integers() | st.binary(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.binary(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)


@given(values, st.binary(max_size=8), st.binary(max_size=30))
def test_span_is_exactly_the_encoded_value(value: Any, before: bytes, after: bytes) -> None:
    raw = bencode2.bencode(value)
    data = before + raw + after
    assert value_end(data, len(before)) == len(before) + len(raw)


@given(values)
def test_unsorted_dicts_pass_only_when_allowed(value: Any) -> None:
    raw = bencode2.bencode({b"b": value, b"a": 1})
    swapped = b"d1:b" + bencode2.bencode(value) + b"1:ai1ee"
    assert value_end(raw) == len(raw)
    assert value_end(swapped, sorted_keys=False) == len(swapped)
    with pytest.raises(BencodeError, match="out of order"):
        value_end(swapped)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_garbage_gives_a_span_bencode2_accepts_or_a_bencode_error(data: bytes) -> None:
    try:
        end = value_end(data)
    except BencodeError as exc:
        assert "\n" not in str(exc) and "offset" in str(exc)
        return
    # Strict here means strict there: whatever span we accept decodes and re-encodes as is.
    assert bencode2.bencode(bencode2.bdecode(data[:end])) == data[:end]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (b"i03e", "bad integer"),
        (b"i-0e", "bad integer"),
        (b"iee", "bad integer"),
        (b"03:abc", "bad string length"),
        (b"5:ab", "runs past the end"),
        (b"d1:bi1e1:ai2ee", "dictionary key at offset 7 is out of order"),
        (b"d1:ai1e1:ai2ee", "dictionary key at offset 7 is repeated"),
        (b"di1ei2ee", "dictionary key at offset 1 is not a string"),
        (b"d1:ae", "unexpected 'e'"),
        (b"e", "unexpected 'e'"),
        (b"x", "unexpected byte 0x78"),
        (b"l", "truncated"),
        (b"li1e", "truncated"),
    ],
)
def test_errors(data: bytes, message: str) -> None:
    with pytest.raises(BencodeError, match=message):
        value_end(data)


def test_depth_is_bounded_without_recursion() -> None:
    assert value_end(b"l" * 32 + b"e" * 32, max_depth=32) == 64
    with pytest.raises(BencodeError, match="nested deeper than 32 levels at offset 32"):
        value_end(b"l" * 33 + b"e" * 33, max_depth=32)
    start = time.monotonic()
    with pytest.raises(BencodeError, match="nested deeper"):
        value_end(b"l" * 1_000_000)
    assert time.monotonic() - start < 5  # refused at the limit, not after a million levels


def test_token_budget_is_shared_by_walks_over_the_same_bytes() -> None:
    data = b"l" + b"i1e" * 10 + b"e"
    scanner = SpanScanner(data, max_tokens=11)
    assert scanner.skip(0) == len(data)
    with pytest.raises(BencodeError, match="more than 11 bencoded items"):
        scanner.skip(0)
