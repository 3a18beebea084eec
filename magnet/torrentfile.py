""".torrent files, byte-exact: find, read and write the info dict without re-encoding it.

Owns a bounded bencode decoder (BEP 3, spans from ``magnet.bencode_spans``),
:func:`info_span` (the raw bytes of the top-level ``info`` value, which the info-hash is
computed over: SHA-1 for v1, SHA-256 for v2, BEP 52), :class:`TorrentMeta` (names, files,
trackers of a .torrent or a bare info dict: BEP 3 single/multi-file, BEP 47 padding files,
BEP 52 ``file tree`` with each file's ``pieces root`` and the outer ``piece layers``, BEP 12
``announce-list``, BEP 19 ``url-list``), :func:`build_torrent` (splices given info bytes, and
BEP 52 piece layers, into a new .torrent verbatim) and :func:`safe_name` (a file name safe
to write).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from dht.version import CLIENT_NAME
from magnet.bencode_spans import BencodeError, SpanScanner
from magnet.uri import MagnetLink

__all__ = [
    "MAX_DEPTH",
    "MAX_NAME_BYTES",
    "MAX_TOKENS",
    "MAX_TORRENT_BYTES",
    "TorrentError",
    "TorrentFile",
    "TorrentMeta",
    "build_torrent",
    "info_span",
    "parse_info",
    "parse_torrent",
    "safe_name",
]

# Bounds for hostile input, after libtorrent's load_torrent_limits (depth 100, 3M tokens).
# 32 MiB leaves room for BEP 9's 30 MiB metadata cap plus the outer dict. Every walk below
# is iterative, so depth is a count, never Python recursion.
MAX_TORRENT_BYTES = 32 * 1024 * 1024
MAX_DEPTH = 100
MAX_TOKENS = 3_000_000
# Integers longer than this are scanned (info_span accepts any size) but not converted:
# Python refuses int() past 4300 digits, and no torrent field needs more than 19.
_MAX_INT_DIGITS = 4000
# safe_name's cap; common file systems allow 255 bytes and the caller appends ".torrent".
MAX_NAME_BYTES = 200

_WHITESPACE = b" \t\r\n"
# Marks a list in the decoder's per-container key stack (dicts hold bytes or None there).
_IN_LIST = b"<list>"


class TorrentError(ValueError):
    """Bytes that are not a usable .torrent or info dict; the message is one line."""


@dataclass(frozen=True, slots=True)
class TorrentFile:
    """One file of a torrent. ``path`` is untrusted text: sanitise before touching disk."""

    path: tuple[str, ...]
    length: int
    pieces_root: bytes | None = None
    """BEP 52: the SHA-256 Merkle root of a v2 file's 16 KiB blocks (None: v1, or empty)."""


@dataclass(frozen=True, slots=True)
class TorrentMeta:
    """What a .torrent (or a bare info dict from BEP 9 metadata exchange) says."""

    info: bytes
    """The raw bencoded info dict, exactly as found."""
    info_hash_v1: bytes | None
    """SHA-1 of ``info``; ``None`` for v2-only torrents (no ``pieces``)."""
    info_hash_v2: bytes | None
    """SHA-256 of ``info`` when ``meta version`` is 2 (BEP 52)."""
    name: str
    piece_length: int
    files: tuple[TorrentFile, ...]
    """Files in torrent order without BEP 47 padding files. Multi-file paths start with
    ``name``; a single-file torrent has one file whose path is just its name."""
    trackers: tuple[str, ...] = ()
    """``announce`` then ``announce-list`` tiers, flattened, without repeats."""
    web_seeds: tuple[str, ...] = ()
    """``url-list`` (BEP 19)."""
    piece_layers: Mapping[bytes, bytes] | None = None
    """BEP 52 ``piece layers`` of a .torrent (pieces root -> concatenated piece hashes), as
    found: 32-byte keys, values whole hashes; whether they prove is `magnet.merkle`'s call.
    None when the .torrent has none (always for a bare info dict)."""

    @property
    def total_size(self) -> int:
        """Bytes of real content: the sum of ``files`` (padding excluded)."""
        return sum(f.length for f in self.files)

    def magnet(self) -> MagnetLink:
        """A magnet link for this torrent: its hashes, name, trackers and web seeds."""
        return MagnetLink(
            btih=self.info_hash_v1,
            btmh=self.info_hash_v2,
            name=self.name,
            trackers=self.trackers,
            web_seeds=self.web_seeds,
        )


# --- the scanner (BEP 3 bencoding) -------------------------------------------------------


class _Scanner(SpanScanner):
    """Walks a .torrent under one token budget: spans from ``SpanScanner``, plus ``decode``.

    Lenient on dict key order (old torrents with unsorted keys exist, libtorrent loads
    them, and the info-hash is taken over the raw bytes anyway) but strict on the rest of
    the grammar, and no duplicate keys in what it decodes. Raises ``BencodeError``, which
    the readers below turn into ``TorrentError``.
    """

    __slots__ = ()

    def __init__(self, data: bytes) -> None:
        # The limits are read at each call, so tests can lower them.
        super().__init__(data, max_depth=MAX_DEPTH, max_tokens=MAX_TOKENS, sorted_keys=False)

    def decode(self, pos: int, outer_depth: int = 0) -> tuple[object, int]:
        """(value, offset past it): ints, bytes, lists and dicts with bytes keys."""
        data, end, string, integer = self.data, self.end, self.string, self.integer
        containers: list[list[object] | dict[bytes, object]] = []
        keys: list[bytes | None] = []  # per container: a dict's key awaiting its value
        value: object
        while True:
            if pos >= end:
                raise self.truncated()
            c = data[pos]
            if keys and keys[-1] is None:  # a dict awaiting a key, or its end
                if c == 0x65:
                    value = containers.pop()
                    keys.pop()
                    pos += 1
                elif 0x30 <= c <= 0x39:
                    start, pos = string(pos)
                    key = data[start:pos]
                    if key in containers[-1]:
                        raise TorrentError(f"duplicate dictionary key {key[:40]!r} at {start}")
                    keys[-1] = key
                    continue
                else:
                    raise TorrentError(f"dictionary key at offset {pos} is not a string")
            elif 0x30 <= c <= 0x39:
                start, pos = string(pos)
                value = data[start:pos]
            elif c == 0x69:
                stop = integer(pos)
                if stop - pos - 2 > _MAX_INT_DIGITS:
                    raise TorrentError(
                        f"integer of {stop - pos - 2} digits at offset {pos} is too long"
                    )
                value = int(data[pos + 1 : stop - 1])
                pos = stop
            elif c == 0x6C or c == 0x64:  # noqa: PLR1714
                self.count(pos)
                if len(containers) + outer_depth >= self.max_depth:
                    raise self.too_deep(pos)
                if c == 0x64:
                    containers.append({})
                    keys.append(None)
                else:
                    containers.append([])
                    keys.append(_IN_LIST)
                pos += 1
                continue
            elif c == 0x65 and keys and keys[-1] is _IN_LIST:
                value = containers.pop()
                keys.pop()
                pos += 1
            elif c == 0x65:
                raise TorrentError(f"unexpected 'e' at offset {pos}")
            else:
                raise TorrentError(f"unexpected byte 0x{c:02x} at offset {pos}")
            if not containers:
                return value, pos
            pending = keys[-1]
            if pending is _IN_LIST:
                containers[-1].append(value)  # type: ignore[union-attr]  # it is a list
            else:
                containers[-1][pending] = value  # type: ignore[index,call-overload]
                keys[-1] = None

    def top_level(self, decode: frozenset[bytes]) -> tuple[slice, dict[bytes, object]]:
        """Walk the outer dict of a .torrent: the ``info`` span and the values in ``decode``.

        Other values are validated but not built, so a big ``piece layers`` costs no objects.
        """
        data = self.data
        if not data.startswith(b"d"):
            raise TorrentError("torrent is not a bencoded dictionary")
        span: slice | None = None
        found: dict[bytes, object] = {}
        seen: set[bytes] = set()
        pos = 1
        while True:
            if pos >= self.end:
                raise self.truncated()
            c = data[pos]
            if c == 0x65:
                break
            if not 0x30 <= c <= 0x39:
                raise TorrentError(f"dictionary key at offset {pos} is not a string")
            key_start, key_stop = self.string(pos)
            key = data[key_start:key_stop]
            if key in seen:
                raise TorrentError(f"torrent has two {_text(key[:40])!r} entries")
            seen.add(key)
            if key in decode:
                found[key], pos = self.decode(key_stop, outer_depth=1)
            else:
                pos = self.skip(key_stop, outer_depth=1)
            if key == b"info":
                if data[key_stop] != 0x64:
                    raise TorrentError("the torrent's 'info' is not a dictionary")
                span = slice(key_stop, pos)
        _check_end(data, pos + 1, "torrent")
        if span is None:
            raise TorrentError("torrent has no 'info' dictionary")
        return span, found


@contextlib.contextmanager
def _torrent_errors() -> Iterator[None]:
    """Bad bencoding is a bad torrent, with the scanner's one-line message."""
    try:
        yield
    except BencodeError as exc:
        raise TorrentError(str(exc)) from None


def _check_size(data: bytes, what: str) -> None:
    if len(data) > MAX_TORRENT_BYTES:
        raise TorrentError(f"{what} is {len(data)} bytes; the limit is {MAX_TORRENT_BYTES}")
    if not data.startswith(b"d"):
        raise TorrentError(f"{what} is not a bencoded dictionary")


def _check_end(data: bytes, end: int, what: str) -> None:
    # libtorrent ignores whatever follows; we allow only whitespace (a stray newline from a
    # web server or editor) and call anything else garbage.
    if data[end:].strip(_WHITESPACE):
        raise TorrentError(f"unexpected data after the {what} at offset {end}")


def info_span(data: bytes) -> slice:
    """Where the raw top-level ``info`` value of a .torrent sits in ``data``.

    ``data[info_span(data)]`` are the exact bytes the info-hash is computed over; nothing is
    decoded or re-encoded. The whole file is validated on the way (bounded by
    ``MAX_TORRENT_BYTES``, ``MAX_DEPTH`` and ``MAX_TOKENS``).

    Raises:
        TorrentError: not a bencoded dictionary, malformed or truncated bencoding, no
            ``info`` or a repeated top-level key, ``info`` not a dictionary, or trailing
            garbage.
    """
    _check_size(data, "torrent")
    with _torrent_errors():
        return _Scanner(data).top_level(frozenset())[0]


# --- reading -----------------------------------------------------------------------------

# Outer .torrent keys parse_torrent builds values for; the rest are only validated.
_OUTER_KEYS = frozenset([b"info", b"announce", b"announce-list", b"url-list", b"piece layers"])


def parse_torrent(data: bytes) -> TorrentMeta:
    """Read a .torrent file: its info dict (raw and parsed), trackers and web seeds.

    Raises:
        TorrentError: anything :func:`info_span` rejects, duplicate keys, or an info dict
            that does not describe files (see :func:`parse_info`).
    """
    _check_size(data, "torrent")
    with _torrent_errors():
        span, outer = _Scanner(data).top_level(_OUTER_KEYS)
    trackers: list[str] = []
    announce = outer.get(b"announce")
    if isinstance(announce, bytes):
        trackers.append(_text(announce))
    tiers = outer.get(b"announce-list")
    # BEP 12 tiers, flattened in order. Outside the info dict nothing is hashed, so entries
    # of the wrong type are skipped rather than fatal.
    if isinstance(tiers, list):
        for tier in tiers:
            if isinstance(tier, list):
                trackers.extend(_text(url) for url in tier if isinstance(url, bytes))
    url_list = outer.get(b"url-list")
    seeds = [url_list] if isinstance(url_list, bytes) else url_list
    web_seeds: list[str] = []
    if isinstance(seeds, list):
        web_seeds.extend(_text(url) for url in seeds if isinstance(url, bytes))
    info = outer[b"info"]
    assert isinstance(info, dict)  # top_level checked
    meta = _meta(data[span], info, trackers=_unique(trackers), web_seeds=_unique(web_seeds))
    if b"piece layers" not in outer:
        return meta
    layers = _piece_layers(outer[b"piece layers"])
    return dataclasses.replace(meta, piece_layers=layers)


def _piece_layers(value: object) -> dict[bytes, bytes]:
    """BEP 52 ``piece layers``: 32-byte roots to whole 32-byte hashes, or a TorrentError."""
    if not isinstance(value, dict):
        raise TorrentError("'piece layers' is not a dictionary")
    for root, layer in value.items():
        if len(root) != 32 or not isinstance(layer, bytes) or not layer or len(layer) % 32:
            raise TorrentError("'piece layers' holds an entry that is not 32-byte hashes")
    return value


def parse_info(info: bytes) -> TorrentMeta:
    """Read a bare info dict, e.g. one assembled from BEP 9 metadata pieces.

    Raises:
        TorrentError: malformed bencoding or an info dict that does not describe files:
            no ``name``, no usable ``piece length`` or ``pieces``, neither ``length``,
            ``files`` nor ``file tree``, bad lengths or paths, or a ``meta version`` newer
            than 2.
    """
    _check_size(info, "info dict")
    with _torrent_errors():
        value, end = _Scanner(info).decode(0)
    _check_end(info, end, "info dict")
    assert isinstance(value, dict)  # _check_size saw the 'd'
    return _meta(info, value, trackers=(), web_seeds=())


def _meta(
    info: bytes,
    d: dict[bytes, object],
    *,
    trackers: tuple[str, ...],
    web_seeds: tuple[str, ...],
) -> TorrentMeta:
    # BEP 52: check the version before anything else, to say "too new" rather than "bad".
    version = d.get(b"meta version", 1)
    if not isinstance(version, int):
        raise TorrentError("'meta version' is not an integer")
    if version > 2:
        raise TorrentError(f"meta version {version} is newer than this reader (2)")
    v2 = version == 2
    # A v2-only torrent has no v1 piece hashes, so SHA-1 of its info names no v1 swarm.
    v1 = not v2 or b"pieces" in d
    piece_length = d.get(b"piece length")
    if not isinstance(piece_length, int) or piece_length <= 0:
        raise TorrentError("info has no positive integer 'piece length'")
    if v1:
        pieces = d.get(b"pieces")
        if not isinstance(pieces, bytes) or len(pieces) % 20:
            raise TorrentError("info 'pieces' is not a string of 20-byte SHA-1 hashes")
    info_hash_v1 = hashlib.sha1(info).digest() if v1 else None
    info_hash_v2 = hashlib.sha256(info).digest() if v2 else None

    raw_name = d.get(b"name.utf-8", d.get(b"name"))
    name = _text(raw_name) if isinstance(raw_name, bytes) else ""
    if not name:
        # libtorrent refuses these too ("missing name in torrent file").
        raise TorrentError("info has no 'name'")

    if v2 and b"file tree" in d:
        files = _v2_files(d[b"file tree"], name)
    elif b"length" in d:
        files = [TorrentFile((name,), _length(d[b"length"], name))]
    elif b"files" in d:
        files = _v1_files(d[b"files"], name)
    else:
        raise TorrentError("info has neither 'length', 'files' nor 'file tree'")
    return TorrentMeta(
        info=info,
        info_hash_v1=info_hash_v1,
        info_hash_v2=info_hash_v2,
        name=name,
        piece_length=piece_length,
        files=tuple(files),
        trackers=trackers,
        web_seeds=web_seeds,
    )


def _v1_files(entries: object, name: str) -> list[TorrentFile]:
    """BEP 3 multi-file ``files``: [{length, path: [elements]}], skipping BEP 47 padding."""
    if not isinstance(entries, list):
        raise TorrentError("info 'files' is not a list")
    files: list[TorrentFile] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise TorrentError(f"info 'files' entry {i} is not a dictionary")
        raw_path = entry.get(b"path.utf-8", entry.get(b"path"))
        elements = raw_path if isinstance(raw_path, list) else []
        path = [_text(p) for p in elements if isinstance(p, bytes)]
        if not path or len(path) != len(elements):
            raise TorrentError(f"info 'files' entry {i} has no list of path strings")
        length = _length(entry.get(b"length"), f"files entry {i}")
        if not _is_padding(entry):
            files.append(TorrentFile((name, *path), length))
    return files


def _v2_files(tree: object, name: str) -> list[TorrentFile]:
    """BEP 52 ``file tree``: nested dicts of path elements; ``""`` marks a file's entry."""
    if not isinstance(tree, dict) or not tree:
        raise TorrentError("info 'file tree' is not a non-empty dictionary")
    found: list[tuple[tuple[str, ...], int, bytes | None]] = []
    # Depth-first in the encoded key order, which is the order files map onto pieces. The
    # decoder already bounded the depth; the explicit stack keeps Python recursion out.
    stack: list[tuple[tuple[str, ...], Iterator[tuple[bytes, object]]]] = [((), iter(tree.items()))]
    while stack:
        prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        key, child = entry
        path = (*prefix, _text(key))
        if not key or not isinstance(child, dict):
            raise TorrentError(f"file tree entry {'/'.join(path)!r} is malformed")
        leaf = child.get(b"")
        if leaf is None:
            stack.append((path, iter(child.items())))
        elif not isinstance(leaf, dict) or len(child) != 1:
            raise TorrentError(f"file tree entry {'/'.join(path)!r} is malformed")
        elif not _is_padding(leaf):
            root = leaf.get(b"pieces root")
            found.append(
                (
                    path,
                    _length(leaf.get(b"length"), "/".join(path)),
                    root if isinstance(root, bytes) and len(root) == 32 else None,
                )
            )
    # A lone file at the root is a single-file torrent; otherwise paths hang under the name.
    if len(tree) == 1 and len(found) == 1 and len(found[0][0]) == 1:
        return [TorrentFile(*found[0])]
    return [TorrentFile((name, *path), length, root) for path, length, root in found]


def _length(value: object, where: str) -> int:
    if not isinstance(value, int) or value < 0:
        raise TorrentError(f"{where!r} has no non-negative integer 'length'")
    return value


def _is_padding(entry: dict[bytes, object]) -> bool:
    attr = entry.get(b"attr")
    return isinstance(attr, bytes) and b"p" in attr


def _text(raw: bytes) -> str:
    # Torrent text is UTF-8 by convention only (BEP 3/52); never fail on it.
    return raw.decode("utf-8", errors="replace")


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))


# --- writing -----------------------------------------------------------------------------


def build_torrent(
    info: bytes,
    *,
    trackers: Sequence[str] = (),
    web_seeds: Sequence[str] = (),
    created_by: str = CLIENT_NAME,
    creation_date: int | None = None,
    piece_layers: Mapping[bytes, bytes] | None = None,
) -> bytes:
    """A complete .torrent around ``info``, whose bytes are spliced in verbatim.

    The outer dict is built by concatenation in sorted key order: ``announce`` (the first
    tracker), ``announce-list`` (one tier per tracker, only when there are several, as
    libtorrent's create_torrent writes it), ``created by``, ``creation date`` (Unix time),
    ``info``, ``piece layers`` (BEP 52, keys sorted as bencoding wants; omitted when None
    or empty), ``url-list``. Trackers and web seeds are deduplicated; empty ones dropped.

    Raises:
        TorrentError: ``info`` is not exactly one valid bencoded dict, a negative
            ``creation_date``, text that cannot be UTF-8 encoded, or piece layers that are
            not 32-byte roots to whole 32-byte hashes.
    """
    _check_size(info, "info dict")
    with _torrent_errors():
        end = _Scanner(info).skip(0)
    if end != len(info):
        raise TorrentError("info bytes hold more than one bencoded value")
    if creation_date is not None and (isinstance(creation_date, bool) or creation_date < 0):
        raise TorrentError(f"creation date {creation_date!r} is not a Unix time")
    urls = _unique(trackers)
    parts = [b"d"]
    if urls:
        parts += [b"8:announce", _bstr(urls[0])]
    if len(urls) > 1:
        parts.append(b"13:announce-listl")
        parts += [b"l" + _bstr(url) + b"e" for url in urls]
        parts.append(b"e")
    if created_by:
        parts += [b"10:created by", _bstr(created_by)]
    if creation_date is not None:
        parts.append(b"13:creation datei%de" % creation_date)
    parts += [b"4:info", info]
    if piece_layers:
        _piece_layers(dict(piece_layers))
        parts.append(b"12:piece layersd")
        for root in sorted(piece_layers):
            layer = piece_layers[root]
            parts += [b"32:", root, b"%d:" % len(layer), layer]
        parts.append(b"e")
    seeds = _unique(web_seeds)
    if seeds:
        parts.append(b"8:url-listl")
        parts += [_bstr(url) for url in seeds]
        parts.append(b"e")
    parts.append(b"e")
    return b"".join(parts)


def _bstr(text: str) -> bytes:
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        raise TorrentError(f"{text[:60]!r} is not valid Unicode text") from None
    return b"%d:%s" % (len(raw), raw)


# --- file names --------------------------------------------------------------------------

# Characters Windows forbids in names, plus both path separators.
_FORBIDDEN = frozenset('<>:"/\\|?*')
# Windows device names, reserved with any extension ("CON.torrent" is still the console).
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)
_SURROGATES = re.compile("[\ud800-\udfff]")
# Bidirectional overrides and isolates: they make "txt.exe" display as "exe.txt".
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def safe_name(name: str, fallback: str) -> str:
    """``name`` made safe to use as one file name in the current directory.

    NFC-normalised; path separators and characters Windows forbids become ``_``; control
    characters (NUL included), lone surrogates and bidi overrides are dropped; leading
    dots and spaces (hidden files, ``.``/``..``) and trailing dots and spaces (which
    Windows strips) are removed; Windows device names get a ``_`` prefix; the result is cut
    to ``MAX_NAME_BYTES`` of UTF-8 on a character boundary. An empty result falls back to
    ``fallback`` (sanitised the same way), then to ``"torrent"``. The caller appends the
    extension, e.g. ``.torrent``.
    """
    for candidate in (name, fallback):
        cleaned = _clean_name(candidate)
        if cleaned:
            return cleaned
    return "torrent"


def _clean_name(name: str) -> str:
    # Lone surrogates (from surrogateescape'd bytes) have no UTF-8 form: drop them first.
    name = unicodedata.normalize("NFC", _SURROGATES.sub("", name))
    chars: list[str] = []
    for ch in name:
        if ch in _FORBIDDEN:
            chars.append("_")
        elif ch in _BIDI or unicodedata.category(ch) == "Cc":
            continue
        else:
            chars.append(ch)
    cleaned = "".join(chars).lstrip(". ").rstrip(". ")
    raw = cleaned.encode("utf-8")
    if len(raw) > MAX_NAME_BYTES:
        cleaned = raw[:MAX_NAME_BYTES].decode("utf-8", errors="ignore").rstrip(". ")
    if cleaned.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        cleaned = "_" + cleaned
        if len(cleaned.encode("utf-8")) > MAX_NAME_BYTES:
            cleaned = cleaned.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore")
    return cleaned
