"""Where a bencoded value ends, found without building it (BEP 3): ``value_end``.

``bencode2`` decodes; this finds byte spans, for the two places where the raw bytes matter
more than the value: the ``info`` dict of a .torrent (the info-hash is taken over its exact
bytes, BEP 3/52) and a BEP 9 ut_metadata message (a bencoded dict followed by raw piece
bytes, so the dict's end is where the piece starts). ``SpanScanner`` walks tokens in a flat
loop with an explicit stack: nesting depth and the number of tokens are checked counts,
never Python recursion, so hostile input costs at most linear time and always ends in a
``BencodeError`` (one line, with the offset) or a span.

The grammar is BEP 3's, strictly: integers and string lengths without leading zeros (no
``-0``), dict keys strings, and by default keys sorted as raw bytes without repeats (what
``bencode2`` requires), so a span accepted here decodes there. .torrent files are read with
``sorted_keys=False``: old torrents with unsorted keys exist, and libtorrent loads them.
"""

from __future__ import annotations

import re

__all__ = ["DEFAULT_MAX_DEPTH", "DEFAULT_MAX_TOKENS", "BencodeError", "SpanScanner", "value_end"]

# After libtorrent's load_torrent_limits (depth 100, 3M tokens).
DEFAULT_MAX_DEPTH = 100
DEFAULT_MAX_TOKENS = 3_000_000

_INT = re.compile(rb"i(0|-?[1-9][0-9]*)e")  # BEP 3: no leading zeros, no "-0"
_STR_LEN = re.compile(rb"(0|[1-9][0-9]{0,11}):")  # 12 digits: far past any length we accept


class BencodeError(ValueError):
    """Bytes that are not (strict) bencoding; the message is one line with an offset."""


class SpanScanner:
    """Walks bencoded tokens in ``data`` under one token budget (see the module docstring).

    Subclasses (the .torrent reader's decoder) reuse ``string``, ``integer`` and ``count``
    for their own walks, so that every walk over the same bytes shares the budget.
    """

    __slots__ = ("data", "end", "max_depth", "max_tokens", "sorted_keys", "tokens")

    def __init__(
        self,
        data: bytes,
        *,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        sorted_keys: bool = True,
    ) -> None:
        self.data = data
        self.end = len(data)
        self.max_depth = max_depth
        self.max_tokens = max_tokens
        self.sorted_keys = sorted_keys
        self.tokens = 0

    def truncated(self) -> BencodeError:
        return BencodeError(f"bencoding is truncated (ends at offset {self.end})")

    def over_budget(self, pos: int) -> BencodeError:
        return BencodeError(f"more than {self.max_tokens} bencoded items (at offset {pos})")

    def count(self, pos: int) -> None:
        """Charge one token (a value or a container opened at ``pos``) to the budget."""
        self.tokens += 1
        if self.tokens > self.max_tokens:
            raise self.over_budget(pos)

    def too_deep(self, pos: int) -> BencodeError:
        return BencodeError(f"nested deeper than {self.max_depth} levels at offset {pos}")

    def string(self, pos: int) -> tuple[int, int]:
        """(start, stop) of the string value at ``pos``."""
        self.tokens += 1  # count(), inlined: this is the hottest call of a big torrent
        if self.tokens > self.max_tokens:
            raise self.over_budget(pos)
        m = _STR_LEN.match(self.data, pos)
        if m is None:
            if pos >= self.end or self.data.find(b":", pos) < 0:
                raise self.truncated()
            raise BencodeError(f"bad string length at offset {pos}")
        start = m.end()
        stop = start + int(m.group(1))
        if stop > self.end:
            raise BencodeError(
                f"string of {stop - start} bytes at offset {pos} runs past the end of the data"
            )
        return start, stop

    def integer(self, pos: int) -> int:
        """Offset just past the integer at ``pos`` (validated, not converted)."""
        self.tokens += 1
        if self.tokens > self.max_tokens:
            raise self.over_budget(pos)
        m = _INT.match(self.data, pos)
        if m is None:
            # Find the terminator only to tell "truncated" from "malformed".
            if self.data.find(b"e", pos) < 0:
                raise self.truncated()
            raise BencodeError(f"bad integer at offset {pos}")
        return m.end()

    def skip(self, pos: int, outer_depth: int = 0) -> int:
        """Offset just past the value at ``pos``, validating everything inside it.

        ``outer_depth`` counts containers already open around ``pos`` toward ``max_depth``.
        This loop is the cost of reading a big torrent, so it stays inlined.
        """
        data, end, string, integer = self.data, self.end, self.string, self.integer
        sorted_keys, depth_left = self.sorted_keys, self.max_depth - outer_depth
        # One entry per open container: True while a dict awaits a key (or its end),
        # False for a list or for a dict awaiting the value of the key just read.
        stack: list[bool] = []
        is_dict: list[bool] = []
        last_key: list[bytes | None] = []  # per container: a dict's previous key
        while True:
            if pos >= end:
                raise self.truncated()
            c = data[pos]
            if stack and stack[-1]:
                if c == 0x65:  # 'e' ends the dict
                    stack.pop()
                    is_dict.pop()
                    last_key.pop()
                    pos += 1
                elif 0x30 <= c <= 0x39:
                    start, stop = string(pos)
                    if sorted_keys:
                        key, previous = data[start:stop], last_key[-1]
                        if previous is not None and key <= previous:
                            raise BencodeError(
                                f"dictionary key at offset {pos} is "
                                + ("repeated" if key == previous else "out of order")
                            )
                        last_key[-1] = key
                    pos = stop
                    stack[-1] = False
                    continue
                else:
                    raise BencodeError(f"dictionary key at offset {pos} is not a string")
            elif 0x30 <= c <= 0x39:
                pos = string(pos)[1]
            elif c == 0x69:  # 'i'
                pos = integer(pos)
            elif c == 0x6C or c == 0x64:  # 'l', 'd'  # noqa: PLR1714 - faster than `in`
                self.count(pos)
                if len(stack) >= depth_left:
                    raise self.too_deep(pos)
                stack.append(c == 0x64)
                is_dict.append(c == 0x64)
                last_key.append(None)
                pos += 1
                continue
            elif c == 0x65 and stack and not is_dict[-1]:  # 'e' ends the list
                stack.pop()
                is_dict.pop()
                last_key.pop()
                pos += 1
            elif c == 0x65:  # at top level, or a dict key left without its value
                raise BencodeError(f"unexpected 'e' at offset {pos}")
            else:
                raise BencodeError(f"unexpected byte 0x{c:02x} at offset {pos}")
            # A value just ended: the enclosing dict (if any) now awaits its next key.
            if not stack:
                return pos
            if is_dict[-1]:
                stack[-1] = True


def value_end(
    data: bytes,
    start: int = 0,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    sorted_keys: bool = True,
) -> int:
    """Offset just past the bencoded value starting at ``data[start]``.

    ``data[start:value_end(data, start)]`` are that value's exact bytes; whatever follows is
    not looked at. Raises ``BencodeError`` on anything but a whole, valid value.
    """
    return SpanScanner(data, max_depth=max_depth, sorted_keys=sorted_keys).skip(start)
