"""Magnet links: parse, validate and format ``magnet:?`` URIs.

Owns the :class:`MagnetLink` value and its text form. Parameters follow BEP 9 (``xt=urn:btih``,
``dn``, ``tr``, ``x.pe``), BEP 52 (``xt=urn:btmh:1220...``, the v2 SHA-256 info-hash as a
multihash), BEP 53 (``so`` file selection) and what libtorrent also reads (``ws`` web seeds,
``xl`` exact length, ``dht=host:port`` nodes, ``.N`` suffixes on keys).
Parsing is strict about what identifies the swarm (info-hashes, peer addresses) and lenient,
like libtorrent, about the rest; every failure is one :class:`MagnetError` with one line.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote, unquote

from dht.addresses import format_hostport

__all__ = [
    "MAX_EXACT_LENGTH",
    "MAX_LINK_CHARS",
    "MAX_LIST_ITEMS",
    "MAX_SELECT_INDEX",
    "MagnetError",
    "MagnetLink",
    "format",
    "parse",
    "parse_info_hash_or_magnet",
]

# A magnet link is pasted by people and sent by web pages; 64 KiB is far beyond any real one
# and keeps the work done on hostile input small. Longer links are an error, not truncated.
MAX_LINK_CHARS = 64 * 1024
# Trackers, web seeds, peers and DHT nodes kept per link. Extra entries are dropped silently
# (first ones win): a resolver needs a handful, and real links with hundreds of trackers exist.
MAX_LIST_ITEMS = 100
# libtorrent's cap on BEP 53 file indices ("can't risk out of memory"); a range expands to
# at most this many + 1 indices.
MAX_SELECT_INDEX = 10_000
# Largest ``xl`` accepted: bencoded lengths are signed 64-bit in practice.
MAX_EXACT_LENGTH = 2**63 - 1
# Longest quoted value in an error message, so one message stays one readable line.
_SHOW_CHARS = 60

_SCHEME = "magnet:?"
_BTIH = "urn:btih:"
_BTMH = "urn:btmh:"
# Multihash prefix for SHA2-256 (code 0x12) with a 32-byte (0x20) digest; BEP 52 magnets.
_SHA256_MULTIHASH = "1220"
_HEX40 = re.compile(r"[0-9a-fA-F]{40}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_BASE32_32 = re.compile(r"[A-Za-z2-7]{32}")
_KEY_SUFFIX = re.compile(r"\.[0-9]+$")
_DIGITS = re.compile(r"[0-9]+")
_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
# Kept unescaped when formatting: RFC 3986 unreserved characters (always kept by ``quote``)
# plus sub-delimiters that are harmless inside a query value. '&', '=', '+', '%', '#', ';',
# '?' and spaces are always escaped, so the text splits back into the same parameters.
_SAFE = ":/@!$()*,"

_T = TypeVar("_T")


class MagnetError(ValueError):
    """A magnet link (or bare info-hash) that cannot be used; the message is one line."""


@dataclass(frozen=True, slots=True)
class MagnetLink:
    """One magnet link, normalised so that ``parse(format(link)) == link``.

    Construction normalises: an empty name becomes ``None``; trackers and web seeds lose
    empty and repeated entries (first kept); peers and DHT nodes lose repeats and their
    hosts are written canonically (lower-case names, compressed IPv6 without brackets);
    ``select_only`` is sorted without repeats, and empty becomes ``None``; each list keeps
    its first ``MAX_LIST_ITEMS`` entries. It raises :class:`MagnetError` on a missing or
    wrongly sized info-hash, a bad address or port, an index outside
    ``0..MAX_SELECT_INDEX``, an ``xl`` outside ``0..MAX_EXACT_LENGTH``, or text that is not
    encodable Unicode (lone surrogates).
    """

    btih: bytes | None = None
    """v1 info-hash: SHA-1 of the info dict, 20 bytes."""
    btmh: bytes | None = None
    """v2 info-hash: SHA-256 of the info dict, 32 bytes (BEP 52)."""
    name: str | None = None
    """``dn``: display name while the metadata is missing. Untrusted: not a file name."""
    trackers: tuple[str, ...] = ()
    """``tr`` tracker URLs, in link order."""
    peers: tuple[tuple[str, int], ...] = ()
    """``x.pe`` peer addresses (BEP 9): host name or IP literal, and port."""
    web_seeds: tuple[str, ...] = ()
    """``ws`` web seed URLs (BEP 19)."""
    exact_length: int | None = None
    """``xl``: total size in bytes, if the link says."""
    select_only: tuple[int, ...] | None = None
    """``so`` (BEP 53): zero-based indices of the files to download; ``None`` = all."""
    dht_nodes: tuple[tuple[str, int], ...] = ()
    """``dht`` (libtorrent): DHT nodes to bootstrap from."""

    def __post_init__(self) -> None:
        if self.btih is None and self.btmh is None:
            raise MagnetError("magnet link needs a btih or btmh info-hash")
        if self.btih is not None and len(self.btih) != 20:
            raise MagnetError(f"btih must be 20 bytes, got {len(self.btih)}")
        if self.btmh is not None and len(self.btmh) != 32:
            raise MagnetError(f"btmh must be 32 bytes (SHA-256), got {len(self.btmh)}")
        if self.exact_length is not None and not 0 <= self.exact_length <= MAX_EXACT_LENGTH:
            raise MagnetError(f"xl {self.exact_length} is outside 0..{MAX_EXACT_LENGTH}")
        # Frozen dataclass: normalised values are stored with object.__setattr__.
        if self.name == "":
            object.__setattr__(self, "name", None)
        elif self.name is not None:
            _check_text(self.name, "dn")
        object.__setattr__(self, "trackers", _unique_urls(self.trackers, "tr"))
        object.__setattr__(self, "web_seeds", _unique_urls(self.web_seeds, "ws"))
        object.__setattr__(self, "peers", _unique_addrs(self.peers, "x.pe"))
        object.__setattr__(self, "dht_nodes", _unique_addrs(self.dht_nodes, "dht"))
        if self.select_only is not None:
            indices = tuple(sorted(set(self.select_only)))
            for i in indices[:1] + indices[-1:]:
                if not 0 <= i <= MAX_SELECT_INDEX:
                    raise MagnetError(f"so index {i} is outside 0..{MAX_SELECT_INDEX}")
            object.__setattr__(self, "select_only", indices or None)

    @property
    def dht_key(self) -> bytes:
        """The 20-byte key to look the swarm up under in the DHT.

        The v1 info-hash when there is one; otherwise the v2 info-hash truncated to its first
        20 bytes, as BEP 52 truncates it for trackers and handshakes and libtorrent for the DHT.
        A hybrid torrent is announced under both; this picks the v1 key.
        """
        if self.btih is not None:
            return self.btih
        assert self.btmh is not None  # __post_init__ guarantees one of the two
        return self.btmh[:20]

    @property
    def info_hash_hex(self) -> str:
        """The info-hash as lower-case hex: 40 digits (v1) or, for v2-only links, 64."""
        if self.btih is not None:
            return self.btih.hex()
        assert self.btmh is not None
        return self.btmh.hex()

    def __str__(self) -> str:
        return format(self)


def parse(text: str) -> MagnetLink:
    """Parse a ``magnet:?`` URI.

    Surrounding whitespace is ignored; the scheme is matched without regard to case. Values
    are percent-decoded as UTF-8 and ``+`` means a space, as libtorrent's ``unescape_string``
    does (so a literal ``+`` must be sent as ``%2B``); a stray ``%`` that starts no escape is
    kept as it is. Keys may carry a numeric suffix (``xt.1``, ``tr.2``) and are matched
    without regard to case; unknown keys and ``xt`` values of other URN kinds (``urn:sha1``,
    ``urn:ed2k``...) are ignored.

    Raises:
        MagnetError: not a magnet link, longer than ``MAX_LINK_CHARS``, a bad ``urn:btih`` or
            ``urn:btmh`` value, two different info-hashes of one kind, no info-hash at all,
            or a bad ``x.pe``, ``dht`` or ``xl`` value.
    """
    text = text.strip()
    if len(text) > MAX_LINK_CHARS:
        raise MagnetError(
            f"magnet link is {len(text)} characters long; the limit is {MAX_LINK_CHARS}"
        )
    if text[: len(_SCHEME)].lower() != _SCHEME:
        raise MagnetError(f"not a magnet link (expected 'magnet:?'): {_show(text)}")

    btih: bytes | None = None
    btmh: bytes | None = None
    name: str | None = None
    trackers: list[str] = []
    web_seeds: list[str] = []
    peers: list[tuple[str, int]] = []
    dht_nodes: list[tuple[str, int]] = []
    exact_length: int | None = None
    selected: set[int] = set()

    for param in text[len(_SCHEME) :].split("&"):
        key, sep, raw = param.partition("=")
        if not sep:
            continue  # a bare word carries nothing we could use
        key = _KEY_SUFFIX.sub("", key).lower()
        value = _unescape(raw)
        if key == "xt":
            kind, digest = _parse_xt(value)
            if kind == "btih":
                if btih is not None and btih != digest:
                    raise MagnetError("link has two different btih info-hashes")
                btih = digest
            elif kind == "btmh":
                if btmh is not None and btmh != digest:
                    raise MagnetError("link has two different btmh info-hashes")
                btmh = digest
        elif key == "dn":
            name = value or name  # libtorrent ignores an empty dn; the last one wins
        elif key == "tr":
            trackers.append(value)
        elif key == "ws":
            web_seeds.append(value)
        elif key == "x.pe":
            peers.append(_parse_addr(value, "x.pe"))
        elif key == "dht":
            dht_nodes.append(_parse_addr(value, "dht"))
        elif key == "xl":
            exact_length = _parse_length(value)
        elif key == "so":
            selected.update(_parse_select_only(value))

    if btih is None and btmh is None:
        raise MagnetError("no xt=urn:btih or urn:btmh in link")
    return MagnetLink(
        btih=btih,
        btmh=btmh,
        name=name,
        trackers=_first_unique(trackers),
        peers=_first_unique(peers),
        web_seeds=_first_unique(web_seeds),
        exact_length=exact_length,
        select_only=tuple(selected) if selected else None,
        dht_nodes=_first_unique(dht_nodes),
    )


def parse_info_hash_or_magnet(text: str) -> MagnetLink:
    """Parse a magnet link, or a bare info-hash as typed on a command line.

    A bare value may be 40 hex digits or 32 base32 characters (v1), or 64 hex digits, with
    or without the ``1220`` multihash prefix (v2).

    Raises:
        MagnetError: it is neither a usable magnet link nor a bare info-hash.
    """
    text = text.strip()
    if text[:7].lower() == "magnet:":
        return parse(text)
    if _HEX40.fullmatch(text) or _BASE32_32.fullmatch(text):
        return MagnetLink(btih=_decode_btih(text))
    if text[:4] == _SHA256_MULTIHASH and _HEX64.fullmatch(text[4:]):
        text = text[4:]
    if _HEX64.fullmatch(text):
        return MagnetLink(btmh=bytes.fromhex(text))
    raise MagnetError(
        f"{_show(text)} is neither a magnet link nor a 40-hex, 32-base32 or 64-hex info-hash"
    )


def format(link: MagnetLink) -> str:
    """The canonical text of ``link``: ``magnet:?xt=...``.

    Order: ``xt`` (btih, then btmh), ``dn``, ``xl``, ``tr``, ``ws``, ``x.pe``, ``dht``, ``so``.
    Hashes are lower-case hex; values are percent-encoded as UTF-8 except for unreserved
    characters and ``:/@!$()*,``. Peer and node addresses are written raw
    (``[v6]:port``) because libtorrent does not unescape them, and they are validated
    addresses with nothing that needs escaping.
    """
    parts: list[str] = []
    if link.btih is not None:
        parts.append(f"xt={_BTIH}{link.btih.hex()}")
    if link.btmh is not None:
        parts.append(f"xt={_BTMH}{_SHA256_MULTIHASH}{link.btmh.hex()}")
    if link.name is not None:
        parts.append(f"dn={_escape(link.name)}")
    if link.exact_length is not None:
        parts.append(f"xl={link.exact_length}")
    parts.extend(f"tr={_escape(url)}" for url in link.trackers)
    parts.extend(f"ws={_escape(url)}" for url in link.web_seeds)
    parts.extend(f"x.pe={format_hostport(addr)}" for addr in link.peers)
    parts.extend(f"dht={format_hostport(addr)}" for addr in link.dht_nodes)
    if link.select_only is not None:
        parts.append(f"so={_format_select_only(link.select_only)}")
    return _SCHEME + "&".join(parts)


# --- info-hashes (BEP 9, BEP 52) ---------------------------------------------------------


def _parse_xt(value: str) -> tuple[str, bytes]:
    """Classify an ``xt`` value: ("btih", 20 bytes), ("btmh", 32 bytes) or ("", b"")."""
    prefix = value[: len(_BTIH)].lower()
    if prefix == _BTIH:
        digest = value[len(_BTIH) :]
        if not (_HEX40.fullmatch(digest) or _BASE32_32.fullmatch(digest)):
            raise MagnetError(f"xt {_show(value)} is not a 40-hex or 32-base32 info-hash")
        return "btih", _decode_btih(digest)
    if prefix == _BTMH:
        multihash = value[len(_BTMH) :]
        if multihash[:4] != _SHA256_MULTIHASH:
            raise MagnetError(
                f"xt {_show(value)} is not a SHA-256 multihash (expected 'urn:btmh:1220')"
            )
        if not _HEX64.fullmatch(multihash[4:]):
            raise MagnetError(f"xt {_show(value)} needs 64 hex digits after 'urn:btmh:1220'")
        return "btmh", bytes.fromhex(multihash[4:])
    return "", b""  # another URN kind (sha1, ed2k, tree:tiger...): not ours to use


def _decode_btih(digest: str) -> bytes:
    if len(digest) == 40:
        return bytes.fromhex(digest)
    # 32 base32 characters encode exactly 160 bits, so no padding is involved (RFC 4648).
    try:
        return base64.b32decode(digest.upper())
    except binascii.Error as exc:  # unreachable after the regex check; kept as a guard
        raise MagnetError(f"btih {_show(digest)} is not valid base32") from exc


# --- addresses (x.pe, dht) ---------------------------------------------------------------


def _parse_addr(value: str, key: str) -> tuple[str, int]:
    """``host:port``, ``ipv4:port`` or ``[ipv6]:port`` (BEP 9) -> (canonical host, port)."""
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise MagnetError(f"{key} {_show(value)} has no closing ']'")
        host, rest = value[1:close], value[close + 1 :]
        if not rest.startswith(":"):
            raise MagnetError(f"{key} {_show(value)} has no port")
        port_text = rest[1:]
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError(host)
        except ValueError:
            raise MagnetError(f"{key} {_show(value)} has no IPv6 address in brackets") from None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep:
            raise MagnetError(f"{key} {_show(value)} has no port")
        if ":" in host:
            raise MagnetError(f"{key} {_show(value)}: an IPv6 address needs [brackets]")
    if not _DIGITS.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise MagnetError(f"{key} {_show(value)} has a bad port (expected 1-65535)")
    return _canonical_host(host, key), int(port_text)


def _canonical_host(host: str, key: str) -> str:
    """An IP literal in its canonical text, or a lower-case DNS name; else MagnetError."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        # A zone ("fe80::1%eth0") only means something on the host that wrote the link.
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
            raise MagnetError(f"{key} host {_show(host)} has an IPv6 zone")
        return str(ip)
    name = host.lower().removesuffix(".")
    labels = name.split(".")
    if (
        not name
        or len(name) > 253
        or not all(_HOST_LABEL.fullmatch(label) for label in labels)
        # A name ending in a number would be read as an IPv4 address by resolvers.
        or labels[-1].isdigit()
    ):
        raise MagnetError(f"{key} host {_show(host)} is not an IP address or host name")
    return name


def _unique_addrs(addrs: Iterable[tuple[str, int]], key: str) -> tuple[tuple[str, int], ...]:
    canonical: list[tuple[str, int]] = []
    for host, port in addrs:
        if not 0 < port < 65536:
            raise MagnetError(f"{key} port {port} is outside 1-65535")
        canonical.append((_canonical_host(host, key), port))
    return _first_unique(canonical)


# --- other values ------------------------------------------------------------------------


def _parse_length(value: str) -> int:
    # Bounded to 19 digits so a hostile link cannot ask for a huge int conversion.
    if not _DIGITS.fullmatch(value) or len(value) > 19 or int(value) > MAX_EXACT_LENGTH:
        raise MagnetError(f"xl {_show(value)} is not a byte count")
    return int(value)


def _parse_select_only(value: str) -> list[int]:
    """BEP 53 ``so=0,2,4,6-8`` -> indices, with libtorrent's leniency.

    Like libtorrent: a value with any character other than digits, '-' and ',' is ignored
    whole; within it, empty tokens, open ranges (``-3``, ``3-``), reversed ranges and
    indices above ``MAX_SELECT_INDEX`` are skipped one by one.
    """
    if not value or any(c not in "0123456789-," for c in value):
        return []
    indices: list[int] = []
    for token in value.split(","):
        first, dash, last = token.partition("-")
        if not _DIGITS.fullmatch(first) or (dash and not _DIGITS.fullmatch(last)):
            continue  # empty, open or doubled ("1-2-3") token
        # Digit-count check first: a 10000-digit token must not reach int().
        if len(first) > 5 or (dash and len(last) > 5):
            continue
        lo = int(first)
        hi = int(last) if dash else lo
        if lo <= hi <= MAX_SELECT_INDEX:
            indices.extend(range(lo, hi + 1))
    return indices


def _format_select_only(indices: Sequence[int]) -> str:
    """Sorted unique indices -> the shortest BEP 53 text: runs of 3 or more become ranges."""
    runs: list[str] = []
    start = prev = indices[0]
    for i in [*indices[1:], -2]:  # -2 never continues a run: it flushes the last one
        if i == prev + 1:
            prev = i
            continue
        if prev - start >= 2:
            runs.append(f"{start}-{prev}")
        else:
            runs.extend(str(n) for n in range(start, prev + 1))
        start = prev = i
    return ",".join(runs)


def _unique_urls(urls: Iterable[str], key: str) -> tuple[str, ...]:
    result = _first_unique(url for url in urls if url)
    for url in result:
        _check_text(url, key)
    return result


def _check_text(value: str, key: str) -> None:
    """Reject text that has no UTF-8 form (lone surrogates), so ``format`` cannot fail."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MagnetError(f"{key} {_show(value)} is not valid Unicode text") from None


def _first_unique(items: Iterable[_T]) -> tuple[_T, ...]:
    """Items in order without repeats, at most ``MAX_LIST_ITEMS`` (later ones dropped)."""
    seen: dict[_T, None] = {}
    for item in items:
        if len(seen) >= MAX_LIST_ITEMS:
            break
        seen.setdefault(item, None)
    return tuple(seen)


# --- escaping ----------------------------------------------------------------------------


def _unescape(raw: str) -> str:
    # '+' first: a %2B escape must survive as a literal plus. Invalid UTF-8 becomes U+FFFD.
    return unquote(raw.replace("+", " "), errors="replace")


def _escape(value: str) -> str:
    return quote(value, safe=_SAFE)


def _show(value: str) -> str:
    """A value quoted for an error message: shortened, control characters escaped."""
    if len(value) > _SHOW_CHARS:
        value = value[: _SHOW_CHARS - 3] + "..."
    return repr(value)
