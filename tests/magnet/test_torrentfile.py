"""Tests for magnet.torrentfile: byte-exact info dicts, .torrent reading and writing."""

from __future__ import annotations

import hashlib
import time
import warnings
from pathlib import Path
from typing import Any

import bencode2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magnet import torrentfile
from magnet.torrentfile import (
    MAX_DEPTH,
    MAX_NAME_BYTES,
    TorrentError,
    TorrentFile,
    build_torrent,
    info_span,
    parse_info,
    parse_torrent,
    safe_name,
)
from magnet.uri import parse as parse_magnet

PIECES = b"\x01" * 20


def enc(value: Any) -> bytes:
    return bytes(bencode2.bencode(value))


def single_info(name: bytes = b"file.bin", length: int = 5) -> bytes:
    return enc({b"length": length, b"name": name, b"piece length": 16384, b"pieces": PIECES})


def multi_info() -> bytes:
    return enc(
        {
            b"files": [
                {b"length": 3, b"path": [b"a.txt"]},
                {b"attr": b"p", b"length": 16381, b"path": [b".pad", b"16381"]},
                {b"length": 7, b"path": [b"sub", b"b.txt"]},
            ],
            b"name": b"dir",
            b"piece length": 16384,
            b"pieces": PIECES * 2,
        }
    )


def v2_info(tree: dict[bytes, Any], *, hybrid: bool = False) -> bytes:
    info: dict[bytes, Any] = {
        b"file tree": tree,
        b"meta version": 2,
        b"name": b"v2dir",
        b"piece length": 16384,
    }
    if hybrid:
        info[b"length"] = 1
        info[b"pieces"] = PIECES
    return enc(info)


ROOT = b"r" * 32


def leaf(length: int, **extra: Any) -> dict[bytes, Any]:
    return {b"": {b"length": length, b"pieces root": ROOT, **extra}}


V2_TREE = {
    b"a.bin": leaf(40000),
    b"pad": {b"x": {b"": {b"attr": b"p", b"length": 10}}},
    b"sub": {b"b.bin": leaf(70000), b"c": {b"d.bin": leaf(1)}},
}


# --- info_span ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "info",
    [single_info(), multi_info(), v2_info(V2_TREE), v2_info(V2_TREE, hybrid=True)],
    ids=["single", "multi", "v2", "hybrid"],
)
def test_info_span_is_exact(info: bytes) -> None:
    data = enc(
        {
            b"announce": b"udp://t:1",
            b"comment": b"4:infod4:name1:xe 6:pieces",  # a decoy inside a string
            b"info": 0,  # a placeholder: the raw bytes go in below, never re-encoded
            b"piece layers": {b"r" * 32: b"h" * 64},
        }
    )
    data = data.replace(b"4:infoi0e", b"4:info" + info)
    span = info_span(data)
    assert data[span] == info
    assert span.stop < len(data)  # piece layers follows


def test_info_span_on_unsorted_keys_uses_the_raw_bytes() -> None:
    # Valid bencoding except for key order; BEP 52: hash the bytes found, never re-encode.
    info = b"d6:pieces20:" + PIECES + b"4:name1:x6:lengthi5e12:piece lengthi16384ee"
    data = b"d4:info" + info + b"e"
    assert data[info_span(data)] == info
    meta = parse_torrent(data)
    assert meta.info == info
    assert meta.info_hash_v1 == hashlib.sha1(info).digest()
    canonical = enc({b"length": 5, b"name": b"x", b"piece length": 16384, b"pieces": PIECES})
    assert meta.info_hash_v1 != hashlib.sha1(canonical).digest()


def test_info_span_accepts_any_integer_size() -> None:
    huge = b"i-" + b"9" * 100_000 + b"e"
    info = single_info()[:-1] + b"7:x-extra" + huge + b"e"
    data = build_torrent(info)
    assert data[info_span(data)] == info


def test_trailing_whitespace_allowed_other_trailing_data_not() -> None:
    data = build_torrent(single_info())
    assert data[info_span(data + b"\r\n")] == single_info()
    with pytest.raises(TorrentError, match="unexpected data after the torrent"):
        info_span(data + b"x")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a bencoded dictionary"),
        (b"l4:infoe", "not a bencoded dictionary"),
        (b"d", "truncated"),
        (b"d4:info", "truncated"),
        (b"d4:infod", "truncated"),
        (b"d4:infode", "truncated"),
        (b"d4:infoi12", "truncated"),
        (b"d4:info5:ab", "runs past the end"),
        (b"d4:info99999999999:", "string of 99999999999 bytes at offset 7 runs past the end"),
        (b"d4:info" + b"9" * 30 + b":x", "bad string length"),
        (b"d4:info03:abce", "bad string length"),
        (b"d4:infoi-0ee", "bad integer"),
        (b"d4:infoi01ee", "bad integer"),
        (b"d4:infoiee", "bad integer"),
        (b"d4:infoi1xe", "bad integer"),
        (b"d4:infoxe", "unexpected byte 0x78"),
        (b"d4:infod1:ae", "unexpected 'e'"),
        (b"d4:infodi1ei2eee", "dictionary key at offset 8 is not a string"),
        (b"di1ei2ee", "dictionary key at offset 1 is not a string"),
        (b"d4:infoi1ee", "'info' is not a dictionary"),
        (b"d4:infode4:infodee", "two 'info' entries"),
        (b"d3:fooi1ee", "no 'info' dictionary"),
        (b"de", "no 'info' dictionary"),
    ],
)
def test_info_span_errors(data: bytes, message: str) -> None:
    with pytest.raises(TorrentError, match=message) as info:
        info_span(data)
    assert "\n" not in str(info.value)


def test_every_truncation_is_an_error() -> None:
    data = build_torrent(multi_info(), trackers=["udp://a:1", "udp://b:2"], creation_date=5)
    for cut in range(len(data)):
        with pytest.raises(TorrentError):
            info_span(data[:cut])
        with pytest.raises(TorrentError):
            parse_torrent(data[:cut])


@pytest.mark.parametrize("opener", [b"l", b"d1:a"])
def test_deep_nesting_is_refused_quickly(opener: bytes) -> None:
    data = b"d4:info" + opener * 1_000_000
    start = time.monotonic()
    with pytest.raises(TorrentError, match=f"nested deeper than {MAX_DEPTH} levels"):
        info_span(data)
    with pytest.raises(TorrentError, match="nested deeper"):
        parse_torrent(data)
    assert time.monotonic() - start < 5


def test_nesting_at_the_limit_is_fine() -> None:
    # The outer dict is level 1 and info level 2; 98 more lists reach MAX_DEPTH exactly.
    deep = b"l" * (MAX_DEPTH - 2) + b"e" * (MAX_DEPTH - 2)
    info = single_info()[:-1] + b"1:z" + deep + b"e"
    data = build_torrent(info)
    assert parse_torrent(data).info == info
    too_deep = single_info()[:-1] + b"1:zl" + deep + b"ee"
    assert data[info_span(data)] == info
    for reader in (info_span, parse_torrent):
        with pytest.raises(TorrentError, match="nested deeper"):
            reader(b"d4:info" + too_deep + b"e")


def test_token_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    data = build_torrent(single_info()[:-1] + b"1:zl" + b"i1e" * 60 + b"ee")
    monkeypatch.setattr(torrentfile, "MAX_TOKENS", 50)
    with pytest.raises(TorrentError, match="more than 50 bencoded items"):
        info_span(data)
    with pytest.raises(TorrentError, match="more than 50 bencoded items"):
        parse_torrent(data)


def test_size_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    data = build_torrent(single_info())
    monkeypatch.setattr(torrentfile, "MAX_TORRENT_BYTES", len(data) - 1)
    with pytest.raises(TorrentError, match="the limit is"):
        info_span(data)
    with pytest.raises(TorrentError, match="the limit is"):
        parse_info(single_info() + b" " * len(data))


_bvalue = st.recursive(
    st.integers() | st.binary(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.binary(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.slow
@given(_bvalue, _bvalue, st.dictionaries(st.binary(max_size=8), _bvalue, max_size=4))
def test_info_span_finds_any_info_value(before: Any, after: Any, info: dict[bytes, Any]) -> None:
    raw_info = enc(info)
    data = b"d3:aaa" + enc(before) + b"4:info" + raw_info + b"4:zzzz" + enc(after) + b"e"
    assert data[info_span(data)] == raw_info


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_garbage_only_raises_torrent_error(data: bytes) -> None:
    for candidate in (data, b"d4:info" + data, b"d4:infod" + data):
        for reader in (info_span, parse_torrent, parse_info):
            try:
                reader(candidate)
            except TorrentError as exc:
                assert "\n" not in str(exc)


@pytest.mark.slow
@given(_bvalue)
def test_mutated_valid_torrents_only_raise_torrent_error(extra: Any) -> None:
    data = build_torrent(multi_info()[:-1] + b"1:z" + enc(extra) + b"e", trackers=["udp://x:1"])
    for i in range(0, len(data), 7):
        for byte in (b"e", b"i", b"9", b"d", b"\x00"):
            try:
                parse_torrent(data[:i] + byte + data[i + 1 :])
            except TorrentError:
                pass


# --- parsing -----------------------------------------------------------------------------


def test_single_file() -> None:
    meta = parse_info(single_info(name="naïve.bin".encode(), length=12345))
    assert meta.name == "naïve.bin"
    assert meta.files == (TorrentFile(("naïve.bin",), 12345),)
    assert meta.total_size == 12345
    assert meta.piece_length == 16384
    assert meta.info_hash_v1 == hashlib.sha1(meta.info).digest()
    assert meta.info_hash_v2 is None
    assert meta.trackers == ()


def test_multi_file_skips_padding() -> None:
    meta = parse_info(multi_info())
    assert meta.files == (
        TorrentFile(("dir", "a.txt"), 3),
        TorrentFile(("dir", "sub", "b.txt"), 7),
    )
    assert meta.total_size == 10


def test_utf8_variants_preferred() -> None:
    info = enc(
        {
            b"files": [{b"length": 1, b"path": [b"\xff"], b"path.utf-8": ["é".encode()]}],
            b"name": b"\xfe",
            b"name.utf-8": b"nom",
            b"piece length": 16384,
            b"pieces": PIECES,
        }
    )
    meta = parse_info(info)
    assert meta.name == "nom"
    assert meta.files == (TorrentFile(("nom", "é"), 1),)


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert parse_info(single_info(name=b"a\xffb")).name == "a\ufffdb"


def test_v2_file_tree() -> None:
    info = v2_info(V2_TREE)
    meta = parse_info(info)
    assert meta.info_hash_v1 is None  # v2-only: no pieces, no v1 swarm
    assert meta.info_hash_v2 == hashlib.sha256(info).digest()
    assert meta.files == (
        TorrentFile(("v2dir", "a.bin"), 40000, ROOT),
        TorrentFile(("v2dir", "sub", "b.bin"), 70000, ROOT),
        TorrentFile(("v2dir", "sub", "c", "d.bin"), 1, ROOT),
    )
    link = meta.magnet()
    assert link.btih is None
    assert link.dht_key == hashlib.sha256(info).digest()[:20]


def test_v2_single_file() -> None:
    meta = parse_info(v2_info({b"only.bin": leaf(99)}))
    assert meta.files == (TorrentFile(("only.bin",), 99, ROOT),)


def test_hybrid_has_both_hashes_and_uses_the_tree() -> None:
    info = v2_info(V2_TREE, hybrid=True)
    meta = parse_info(info)
    assert meta.info_hash_v1 == hashlib.sha1(info).digest()
    assert meta.info_hash_v2 == hashlib.sha256(info).digest()
    assert len(meta.files) == 3
    text = str(meta.magnet())
    assert text.startswith(f"magnet:?xt=urn:btih:{meta.info_hash_v1.hex()}&xt=urn:btmh:1220")


def test_trackers_and_web_seeds_from_outer_dict() -> None:
    data = enc(
        {
            b"announce": b"udp://a:1",
            b"announce-list": [[b"udp://a:1", b"udp://b:1"], [b"", 5, b"udp://c:1"], b"junk"],
            b"info": bencode2.bdecode(single_info()),
            b"url-list": b"http://w/",
        }
    )
    meta = parse_torrent(data)
    assert meta.trackers == ("udp://a:1", "udp://b:1", "udp://c:1")
    assert meta.web_seeds == ("http://w/",)
    link = parse_magnet(str(meta.magnet()))
    assert link.trackers == meta.trackers
    assert link.web_seeds == meta.web_seeds
    assert link.name == "file.bin"


@pytest.mark.parametrize("name", [None, b""])
def test_nameless_torrent_is_refused_like_libtorrent_does(name: bytes | None) -> None:
    info: dict[bytes, Any] = {b"length": 1, b"piece length": 16384, b"pieces": PIECES}
    if name is not None:
        info[b"name"] = name
    with pytest.raises(TorrentError, match="info has no 'name'"):
        parse_info(enc(info))


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({b"meta version": 3, b"x": b"anything"}, "meta version 3 is newer than this reader"),
        ({b"meta version": b"2"}, "'meta version' is not an integer"),
        ({b"length": 1, b"name": b"x", b"pieces": PIECES}, "no positive integer 'piece length'"),
        ({b"length": 1, b"piece length": 0, b"pieces": PIECES}, "piece length"),
        ({b"length": 1, b"piece length": 1, b"pieces": b"x" * 19}, "20-byte SHA-1 hashes"),
        ({b"length": 1, b"piece length": 1}, "20-byte SHA-1 hashes"),
        ({b"piece length": 1, b"pieces": b""}, "neither 'length', 'files' nor 'file tree'"),
        ({b"length": -1, b"piece length": 1, b"pieces": b""}, "non-negative integer 'length'"),
        ({b"length": b"1", b"piece length": 1, b"pieces": b""}, "non-negative integer 'length'"),
        ({b"files": b"x", b"piece length": 1, b"pieces": b""}, "'files' is not a list"),
        ({b"files": [1], b"piece length": 1, b"pieces": b""}, "entry 0 is not a dictionary"),
        (
            {b"files": [{b"length": 1, b"path": []}], b"piece length": 1, b"pieces": b""},
            "entry 0 has no list of path strings",
        ),
        (
            {b"files": [{b"length": 1, b"path": [b"a", 2]}], b"piece length": 1, b"pieces": b""},
            "entry 0 has no list of path strings",
        ),
        (
            {b"files": [{b"path": [b"a"]}], b"piece length": 1, b"pieces": b""},
            "'files entry 0' has no non-negative integer 'length'",
        ),
        (
            {b"file tree": {}, b"meta version": 2, b"piece length": 16384},
            "'file tree' is not a non-empty dictionary",
        ),
        (
            {b"file tree": {b"a": 1}, b"meta version": 2, b"piece length": 16384},
            "file tree entry 'a' is malformed",
        ),
        (
            {
                b"file tree": {b"a": {b"": {b"length": 1}, b"b": {}}},
                b"meta version": 2,
                b"piece length": 16384,
            },
            "file tree entry 'a' is malformed",
        ),
        (
            {b"file tree": {b"a": {b"": {}}}, b"meta version": 2, b"piece length": 16384},
            "'a' has no non-negative integer 'length'",
        ),
    ],
)
def test_parse_info_errors(info: dict[bytes, Any], message: str) -> None:
    with pytest.raises(TorrentError, match=message):
        parse_info(enc({b"name": b"n", **info}))


def test_duplicate_keys_are_refused_by_the_reader() -> None:
    info = b"d6:lengthi1e6:lengthi2e12:piece lengthi1e6:pieces0:e"
    data = b"d4:info" + info + b"e"
    assert data[info_span(data)] == info  # locating needs no meaning
    with pytest.raises(TorrentError, match="duplicate dictionary key b'length'"):
        parse_torrent(data)


def test_integer_too_long_to_read() -> None:
    info = single_info()[:-1] + b"1:zi" + b"9" * 5000 + b"ee"
    with pytest.raises(TorrentError, match="integer of 5000 digits"):
        parse_info(info)


def test_parse_info_refuses_trailing_data() -> None:
    with pytest.raises(TorrentError, match="unexpected data after the info dict"):
        parse_info(single_info() + b"x")


# --- build_torrent -----------------------------------------------------------------------


def test_build_torrent_outer_keys_sorted_and_info_verbatim() -> None:
    info = multi_info()
    data = build_torrent(
        info,
        trackers=["udp://b:1", "udp://a:1", "udp://b:1", ""],
        web_seeds=["http://w/"],
        creation_date=1_700_000_000,
    )
    decoded = bencode2.bdecode(data)  # strict: raises on unsorted or duplicate keys
    assert list(decoded) == [
        b"announce",
        b"announce-list",
        b"created by",
        b"creation date",
        b"info",
        b"url-list",
    ]
    assert decoded[b"announce"] == b"udp://b:1"
    assert decoded[b"announce-list"] == [[b"udp://b:1"], [b"udp://a:1"]]
    assert decoded[b"created by"] == b"magnetar 0.1.0"
    assert decoded[b"creation date"] == 1_700_000_000
    assert data[info_span(data)] == info
    meta = parse_torrent(data)
    assert meta.info == info
    assert meta.info_hash_v1 == hashlib.sha1(info).digest()
    assert meta.trackers == ("udp://b:1", "udp://a:1")
    assert meta.web_seeds == ("http://w/",)


def test_build_torrent_minimal_and_one_tracker() -> None:
    info = single_info()
    assert build_torrent(info, created_by="") == b"d4:info" + info + b"e"
    one = bencode2.bdecode(build_torrent(info, trackers=["udp://t:1"], created_by=""))
    assert set(one) == {b"announce", b"info"}


@pytest.mark.parametrize(
    "info",
    [
        v2_info(V2_TREE),
        v2_info(V2_TREE, hybrid=True),
        b"d6:pieces20:" + PIECES + b"4:name1:x6:lengthi5e12:piece lengthi16384ee",  # unsorted
        single_info()[:-1] + b"5:zhugei" + b"1" * 200 + b"ee",  # far past 64 bits
    ],
    ids=["v2", "hybrid", "unsorted", "huge-int"],
)
def test_build_torrent_round_trips_noncanonical_info(info: bytes) -> None:
    data = build_torrent(info, trackers=["udp://t:1"], creation_date=0)
    meta = parse_torrent(data)
    assert meta.info == info
    assert meta.info_hash_v2 in (None, hashlib.sha256(info).digest())
    assert (meta.info_hash_v1 or meta.info_hash_v2) in (
        hashlib.sha1(info).digest(),
        hashlib.sha256(info).digest(),
    )


@pytest.mark.parametrize(
    ("info", "kwargs", "message"),
    [
        (b"le", {}, "not a bencoded dictionary"),
        (b"de" + b"de", {}, "more than one bencoded value"),
        (b"d1:a", {}, "truncated"),
        (b"de", {"creation_date": -1}, "not a Unix time"),
        (b"de", {"creation_date": True}, "not a Unix time"),
        (b"de", {"trackers": ["\ud800"]}, "not valid Unicode"),
    ],
)
def test_build_torrent_errors(info: bytes, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TorrentError, match=message):
        build_torrent(info, **kwargs)


# --- safe_name ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ubuntu-24.04.iso", "ubuntu-24.04.iso"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("/etc/passwd", "_etc_passwd"),
        ("a/b", "a_b"),
        ("C:\\x", "C__x"),
        ("..\\..\\windows", "_.._windows"),
        ("", "FALLBACK"),
        (".", "FALLBACK"),
        ("..", "FALLBACK"),
        ("....", "FALLBACK"),
        (" . . ", "FALLBACK"),
        (".hidden", "hidden"),
        ("trailing. ", "trailing"),
        ("nul\x00byte", "nulbyte"),
        ("line\nbreak\ttab\x7f", "linebreaktab"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("LPT1", "_LPT1"),
        ("CONSOLE", "CONSOLE"),
        ('a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("日本語のファイル", "日本語のファイル"),
        ("e\u0301", "\u00e9"),  # NFC
        ("bad\ud800surrogate", "badsurrogate"),
    ],
)
def test_safe_name(name: str, expected: str) -> None:
    assert safe_name(name, "FALLBACK") == expected


def test_safe_name_caps_length_on_a_character_boundary() -> None:
    for ch in ("a", "é", "日", "😀"):
        out = safe_name(ch * 500, "f")
        assert len(out.encode("utf-8")) <= MAX_NAME_BYTES
        assert len(out.encode("utf-8")) > MAX_NAME_BYTES - 4
        assert set(out) == {ch}


def test_safe_name_fallbacks() -> None:
    assert safe_name("..", "../x") == "_x"
    assert safe_name("", "") == "torrent"
    assert safe_name("/", "\x00") == "_"


@given(st.text(max_size=300), st.text(max_size=50))
def test_safe_name_properties(name: str, fallback: str) -> None:
    out = safe_name(name, fallback)
    assert out
    assert len(out.encode("utf-8")) <= MAX_NAME_BYTES
    assert "/" not in out and "\\" not in out and "\x00" not in out
    assert out not in (".", "..")
    assert not out.startswith(".")
    assert all(ord(c) >= 0x20 and c != "\x7f" for c in out)


# --- libtorrent agrees -------------------------------------------------------------------


def _make_torrent(lt: Any, root: Path, flags: int) -> bytes:
    (root / "t" / "sub").mkdir(parents=True)
    (root / "t" / "a.bin").write_bytes(bytes(range(256)) * 160)  # 40960 bytes
    (root / "t" / "sub" / "b.bin").write_bytes(b"\x07" * 70000)
    fs = lt.file_storage()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        lt.add_files(fs, str(root / "t"))
        ct = lt.create_torrent(fs, 16384, flags=flags)
    ct.add_tracker("udp://tracker.example:6969/announce", 0)
    ct.add_tracker("http://backup.example/announce", 1)
    lt.set_piece_hashes(ct, str(root))
    return bytes(lt.bencode(ct.generate()))


def test_libtorrent_v1_info_section_and_reload(tmp_path: Path) -> None:
    lt = pytest.importorskip("libtorrent")
    data = _make_torrent(lt, tmp_path, lt.create_torrent.v1_only)
    ti = lt.torrent_info(data)
    span = info_span(data)
    assert data[span] == bytes(ti.info_section())
    meta = parse_torrent(data)
    assert meta.info_hash_v1 == bytes.fromhex(str(ti.info_hashes().v1))
    assert meta.info_hash_v2 is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert meta.trackers == tuple(t.url for t in ti.trackers())

    rebuilt = build_torrent(meta.info, trackers=meta.trackers, creation_date=1_700_000_000)
    ti2 = lt.torrent_info(rebuilt)
    assert str(ti2.info_hashes().v1) == str(ti.info_hashes().v1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert [t.url for t in ti2.trackers()] == list(meta.trackers)
    assert ti2.creation_date() == 1_700_000_000
    assert ti2.creator() == "magnetar 0.1.0"


@pytest.mark.parametrize("kind", ["v2_only", "hybrid"])
def test_libtorrent_v2_and_hybrid(tmp_path: Path, kind: str) -> None:
    lt = pytest.importorskip("libtorrent")
    flags = lt.create_torrent.v2_only if kind == "v2_only" else 0
    data = _make_torrent(lt, tmp_path, flags)
    ti = lt.torrent_info(data)
    meta = parse_torrent(data)
    assert meta.info == bytes(ti.info_section())
    assert meta.info_hash_v2 == bytes.fromhex(str(ti.info_hashes().v2))
    if kind == "hybrid":
        assert meta.info_hash_v1 == bytes.fromhex(str(ti.info_hashes().v1))
    else:
        assert meta.info_hash_v1 is None
        assert not ti.info_hashes().has_v1()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fs = ti.files()
    expected = [
        (tuple(fs.file_path(i).replace("\\", "/").split("/")), fs.file_size(i))
        for i in range(fs.num_files())
        if not fs.file_flags(i) & fs.flag_pad_file
    ]
    assert [(f.path, f.length) for f in meta.files] == expected
    assert meta.total_size == 40960 + 70000
    # Our magnet matches libtorrent's, field by field.
    assert parse_magnet(lt.make_magnet_uri(ti)) == meta.magnet()
    # A v2 .torrent rebuilt around the same info loads under the same hashes. (Without the
    # outer "piece layers" libtorrent only needs it to seed, not to load the metadata.)
    ti2 = lt.torrent_info(build_torrent(meta.info))
    assert str(ti2.info_hashes().v2) == str(ti.info_hashes().v2)
