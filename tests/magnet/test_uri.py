"""Tests for magnet.uri: BEP 9 / BEP 52 / BEP 53 magnet links."""

from __future__ import annotations

import base64
import ipaddress
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magnet import uri
from magnet.uri import (
    MAX_LINK_CHARS,
    MAX_LIST_ITEMS,
    MAX_SELECT_INDEX,
    MagnetError,
    MagnetLink,
    parse,
    parse_info_hash_or_magnet,
)

# De-facto vectors (libtorrent's test torrents), from protocol-notes.
HYBRID = (
    "magnet:?xt=urn:btih:631a31dd0a46257d5078c0dee4e66e26f73e42ac"
    "&xt=urn:btmh:1220d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb"
    "&dn=bittorrent-v1-v2-hybrid-test"
)
V2_ONLY = (
    "magnet:?xt=urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e"
    "&dn=bittorrent-v2-test"
)
IH = "0123456789abcdef0123456789abcdef01234567"
BASE = f"magnet:?xt=urn:btih:{IH}"


# --- vectors -----------------------------------------------------------------------------


def test_hybrid_vector() -> None:
    link = parse(HYBRID)
    assert link.btih == bytes.fromhex("631a31dd0a46257d5078c0dee4e66e26f73e42ac")
    assert link.btmh == bytes.fromhex(
        "d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb"
    )
    assert link.name == "bittorrent-v1-v2-hybrid-test"
    # A hybrid is looked up under its v1 hash; its v2 key is the truncated SHA-256.
    assert link.dht_key == link.btih
    assert link.btmh[:20].hex() == "d8dd32ac93357c368556af3ac1d95c9d76bd0dff"
    assert link.info_hash_hex == "631a31dd0a46257d5078c0dee4e66e26f73e42ac"
    assert str(link) == HYBRID


def test_v2_only_vector_dht_key_is_truncated_sha256() -> None:
    link = parse(V2_ONLY)
    assert link.btih is None
    assert link.dht_key.hex() == "caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa"
    assert link.info_hash_hex == (
        "caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e"
    )
    assert link.name == "bittorrent-v2-test"
    assert str(link) == V2_ONLY


def test_bep9_example_shape() -> None:
    link = parse(f"{BASE}&dn=name&tr=http%3A%2F%2Ftracker%2Fannounce&x.pe=10.0.0.1:6881")
    assert link.trackers == ("http://tracker/announce",)
    assert link.peers == (("10.0.0.1", 6881),)


# --- info-hash forms ---------------------------------------------------------------------


def test_hex_any_case() -> None:
    assert parse(f"magnet:?xt=urn:btih:{IH.upper()}").btih == bytes.fromhex(IH)


@pytest.mark.parametrize("case", [str.upper, str.lower])
def test_base32_btih(case: Any) -> None:
    raw = bytes(range(20))
    b32 = base64.b32encode(raw).decode()
    assert len(b32) == 32
    assert parse(f"magnet:?xt=urn:btih:{case(b32)}").btih == raw


def test_percent_encoded_xt() -> None:
    assert parse(f"magnet:?xt=urn%3Abtih%3A{IH}").btih == bytes.fromhex(IH)


def test_urn_prefix_case_insensitive() -> None:
    assert parse(f"magnet:?xt=URN:BTIH:{IH}").btih == bytes.fromhex(IH)


def test_repeated_identical_xt_is_fine() -> None:
    assert parse(f"{BASE}&xt=urn:btih:{IH.upper()}").btih == bytes.fromhex(IH)


def test_other_urn_kinds_ignored() -> None:
    link = parse(f"magnet:?xt=urn:sha1:ABCDEFGHIJKLMNOP&xt.2=urn:btih:{IH}&xt.3=urn:ed2k:abc")
    assert link.btih == bytes.fromhex(IH)


def test_numbered_keys() -> None:
    link = parse(f"magnet:?xt.1=urn:btih:{IH}&tr.1=udp://a:1&tr.2=udp://b:2&dn.1=x&x.pe.1=h:1")
    assert link.trackers == ("udp://a:1", "udp://b:2")
    assert link.name == "x"
    assert link.peers == (("h", 1),)


def test_unknown_keys_and_bare_words_ignored() -> None:
    link = parse(f"{BASE}&kt=a+b&as=http://x&foo&&xs=y&=z")
    assert link == MagnetLink(btih=bytes.fromhex(IH))


def test_surrounding_whitespace_and_scheme_case() -> None:
    assert parse(f"  MAGNET:?xt=urn:btih:{IH}\n").btih == bytes.fromhex(IH)


# --- values ------------------------------------------------------------------------------


def test_plus_is_space_and_percent_2b_is_plus() -> None:
    # libtorrent's unescape_string turns '+' into ' '.
    link = parse(f"{BASE}&dn=a+b%2Bc%20d")
    assert link.name == "a b+c d"
    assert "dn=a%20b%2Bc%20d" in str(link)


def test_utf8_name_and_stray_percent() -> None:
    link = parse(f"{BASE}&dn=%E6%97%A5%E6%9C%AC 100%&tr=udp://t:1")
    assert link.name == "日本 100%"
    assert parse(str(link)) == link


def test_invalid_utf8_escape_becomes_replacement_char() -> None:
    assert parse(f"{BASE}&dn=%FF").name == "\ufffd"


def test_empty_dn_is_no_name() -> None:
    assert parse(f"{BASE}&dn=").name is None
    assert MagnetLink(btih=bytes(20), name="").name is None


def test_trackers_dedup_keep_order_and_drop_empty() -> None:
    link = parse(
        f"{BASE}&tr=udp://b:1&tr=&tr=udp://a:1&tr=udp%3A%2F%2Fb%3A1&ws=http://w&ws=http://w"
    )
    assert link.trackers == ("udp://b:1", "udp://a:1")
    assert link.web_seeds == ("http://w",)


def test_tracker_with_query_string_round_trips() -> None:
    link = MagnetLink(btih=bytes(20), trackers=("http://t/announce?passkey=a&b=c+d",))
    text = str(link)
    assert "passkey%3Da%26b%3Dc%2Bd" in text
    assert parse(text) == link


def test_peers_forms() -> None:
    link = parse(
        f"{BASE}&x.pe=1.2.3.4:1&x.pe=[2001:DB8:0::1]:2&x.pe=Peer.Example.org.:3&x.pe=1.2.3.4:1"
    )
    assert link.peers == (("1.2.3.4", 1), ("2001:db8::1", 2), ("peer.example.org", 3))
    assert "x.pe=[2001:db8::1]:2" in str(link)


def test_dht_nodes() -> None:
    link = parse(f"{BASE}&dht=node.example.org:6881&dht=[::1]:6881")
    assert link.dht_nodes == (("node.example.org", 6881), ("::1", 6881))


def test_exact_length() -> None:
    assert parse(f"{BASE}&xl=10826029").exact_length == 10826029


def test_caps_truncate_lists() -> None:
    trs = "".join(f"&tr=udp://t{i}:1" for i in range(MAX_LIST_ITEMS + 50))
    pes = "".join(f"&x.pe=10.0.{i // 256}.{i % 256}:1" for i in range(MAX_LIST_ITEMS + 50))
    link = parse(BASE + trs + pes)
    assert len(link.trackers) == MAX_LIST_ITEMS
    assert link.trackers[0] == "udp://t0:1"
    assert link.trackers[-1] == f"udp://t{MAX_LIST_ITEMS - 1}:1"
    assert len(link.peers) == MAX_LIST_ITEMS


def test_link_at_length_limit_ok_and_over_is_error() -> None:
    pad = "&kt=" + "a" * (MAX_LINK_CHARS - len(BASE) - 4)
    assert len(BASE + pad) == MAX_LINK_CHARS
    assert parse(BASE + pad).btih == bytes.fromhex(IH)
    with pytest.raises(MagnetError, match="characters long; the limit is 65536"):
        parse(BASE + pad + "a")


# --- BEP 53 so (libtorrent's reading) ----------------------------------------------------


@pytest.mark.parametrize(
    ("so", "expected"),
    [
        ("0,2,4,6-8", (0, 2, 4, 6, 7, 8)),  # the BEP's example
        ("3", (3,)),
        ("5-5", (5,)),
        ("8-6,1", (1,)),  # reversed range skipped
        ("-3,4", (4,)),  # open start skipped
        ("3-,4", (4,)),  # open end skipped
        (",,2,,", (2,)),  # empty tokens skipped
        ("1-2-3,7", (7,)),  # doubled dash skipped
        (f"{MAX_SELECT_INDEX},{MAX_SELECT_INDEX + 1}", (MAX_SELECT_INDEX,)),
        (f"0-{MAX_SELECT_INDEX + 1},1", (1,)),  # range past the cap skipped whole
        ("9" * 5000 + ",2", (2,)),  # no int() on a huge token
        ("0,2,x", None),  # any other character: the whole value is ignored
        ("1 2", None),
        ("", None),
        ("-", None),
    ],
)
def test_select_only(so: str, expected: tuple[int, ...] | None) -> None:
    assert parse(f"{BASE}&so={so}").select_only == expected


def test_select_only_repeated_params_union() -> None:
    assert parse(f"{BASE}&so=4,1&so.2=1-2").select_only == (1, 2, 4)


def test_select_only_format_uses_ranges() -> None:
    link = MagnetLink(btih=bytes(20), select_only=(8, 0, 2, 4, 6, 7, 2, 10, 11))
    assert link.select_only == (0, 2, 4, 6, 7, 8, 10, 11)
    assert str(link).endswith("&so=0,2,4,6-8,10,11")


# --- errors: one line each ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http://example.com/", "not a magnet link (expected 'magnet:?')"),
        ("magnet:xt=urn:btih:" + IH, "not a magnet link (expected 'magnet:?')"),
        ("magnet:?dn=x&tr=udp://t:1", "no xt=urn:btih or urn:btmh in link"),
        ("magnet:?xt=urn:sha1:ABC", "no xt=urn:btih or urn:btmh in link"),
        ("magnet:?xt=urn:btih:abc", "xt 'urn:btih:abc' is not a 40-hex or 32-base32 info-hash"),
        ("magnet:?xt=urn:btih:" + "g" * 40, "is not a 40-hex or 32-base32 info-hash"),
        ("magnet:?xt=urn:btih:" + "1" * 32, "is not a 40-hex or 32-base32 info-hash"),
        ("magnet:?xt=urn:btih:" + IH + "0", "is not a 40-hex or 32-base32 info-hash"),
        ("magnet:?xt=urn:btmh:1114" + "a" * 64, "is not a SHA-256 multihash"),
        ("magnet:?xt=urn:btmh:1220" + "a" * 40, "needs 64 hex digits after 'urn:btmh:1220'"),
        ("magnet:?xt=urn:btmh:" + "a" * 64, "is not a SHA-256 multihash"),
        (f"{BASE}&xt=urn:btih:{'f' * 40}", "link has two different btih info-hashes"),
        (
            f"magnet:?xt=urn:btmh:1220{'a' * 64}&xt=urn:btmh:1220{'b' * 64}",
            "link has two different btmh info-hashes",
        ),
        (f"{BASE}&x.pe=1.2.3.4", "x.pe '1.2.3.4' has no port"),
        (f"{BASE}&x.pe=1.2.3.4:", "x.pe '1.2.3.4:' has a bad port (expected 1-65535)"),
        (f"{BASE}&x.pe=1.2.3.4:0", "has a bad port"),
        (f"{BASE}&x.pe=1.2.3.4:65536", "has a bad port"),
        (f"{BASE}&x.pe=1.2.3.4:-1", "has a bad port"),
        (f"{BASE}&x.pe=::1:5", "an IPv6 address needs [brackets]"),
        (f"{BASE}&x.pe=[::1]", "x.pe '[::1]' has no port"),
        (f"{BASE}&x.pe=[::1:5", "has no closing ']'"),
        (f"{BASE}&x.pe=[1.2.3.4]:5", "has no IPv6 address in brackets"),
        (f"{BASE}&x.pe=[fe80::1%25eth0]:5", "has an IPv6 zone"),
        (f"{BASE}&x.pe=bad host:5", "x.pe host 'bad host' is not an IP address or host name"),
        (f"{BASE}&x.pe=1.2.3:5", "is not an IP address or host name"),
        (f"{BASE}&x.pe=01.2.3.4:5", "is not an IP address or host name"),
        (f"{BASE}&x.pe=:5", "is not an IP address or host name"),
        (f"{BASE}&dht=router", "dht 'router' has no port"),
        (f"{BASE}&xl=-1", "xl '-1' is not a byte count"),
        (f"{BASE}&xl=1e6", "xl '1e6' is not a byte count"),
        (f"{BASE}&xl=" + "9" * 30, "is not a byte count"),
    ],
)
def test_errors_are_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(MagnetError) as info:
        parse(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_error_quotes_are_shortened_and_escaped() -> None:
    with pytest.raises(MagnetError) as info:
        parse("magnet:?xt=urn:btih:" + "\n" * 500 + "x")
    text = str(info.value)
    assert "\n" not in text
    assert len(text) < 200


# --- bare info-hashes (CLI) --------------------------------------------------------------


def test_bare_hex_and_base32() -> None:
    assert parse_info_hash_or_magnet(f" {IH.upper()} ").btih == bytes.fromhex(IH)
    b32 = base64.b32encode(bytes.fromhex(IH)).decode().lower()
    assert parse_info_hash_or_magnet(b32).btih == bytes.fromhex(IH)


def test_bare_v2_with_or_without_multihash_prefix() -> None:
    v2 = "ab" * 32
    assert parse_info_hash_or_magnet(v2).btmh == bytes.fromhex(v2)
    assert parse_info_hash_or_magnet("1220" + v2).btmh == bytes.fromhex(v2)


def test_bare_falls_through_to_parse() -> None:
    assert parse_info_hash_or_magnet(HYBRID) == parse(HYBRID)
    with pytest.raises(MagnetError, match="no xt=urn:btih"):
        parse_info_hash_or_magnet("magnet:?dn=x")


@pytest.mark.parametrize("text", ["", "abc", IH[:-1], IH + "0", "z" * 40, "1220" + "a" * 63])
def test_bare_rejects(text: str) -> None:
    with pytest.raises(MagnetError, match="neither a magnet link nor"):
        parse_info_hash_or_magnet(text)


# --- the dataclass -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs a btih or btmh"),
        ({"btih": bytes(19)}, "btih must be 20 bytes"),
        ({"btmh": bytes(20)}, "btmh must be 32 bytes"),
        ({"btih": bytes(20), "peers": (("1.2.3.4", 0),)}, "port 0 is outside"),
        ({"btih": bytes(20), "peers": (("a b", 1),)}, "not an IP address or host name"),
        ({"btih": bytes(20), "select_only": (-1,)}, "so index -1 is outside"),
        ({"btih": bytes(20), "select_only": (MAX_SELECT_INDEX + 1,)}, "so index"),
        ({"btih": bytes(20), "exact_length": -1}, "xl -1 is outside"),
        ({"btih": bytes(20), "name": "\ud800"}, "is not valid Unicode text"),
        ({"btih": bytes(20), "trackers": ("\udcff",)}, "tr '\\udcff' is not valid Unicode"),
    ],
)
def test_construction_checks(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(MagnetError, match=message.replace("\\", "\\\\")):
        MagnetLink(**kwargs)


def test_construction_normalises() -> None:
    link = MagnetLink(
        btih=bytes(20),
        peers=(("::FFFF:1.2.3.4", 1), ("HOST", 2), ("host", 2)),
        trackers=("a", "", "a", "b"),
        select_only=(),
    )
    assert link.peers == (("::ffff:102:304", 1), ("host", 2))
    assert link.trackers == ("a", "b")
    assert link.select_only is None


def test_format_minimal_and_order() -> None:
    link = MagnetLink(
        btih=bytes.fromhex(IH),
        btmh=bytes(32),
        name="n",
        trackers=("udp://t:1",),
        web_seeds=("http://w/",),
        peers=(("1.2.3.4", 5),),
        dht_nodes=(("::1", 6),),
        exact_length=7,
        select_only=(1,),
    )
    assert uri.format(link) == (
        f"magnet:?xt=urn:btih:{IH}&xt=urn:btmh:1220{'00' * 32}&dn=n&xl=7&tr=udp://t:1"
        "&ws=http://w/&x.pe=1.2.3.4:5&dht=[::1]:6&so=1"
    )


# --- round trips (hypothesis) ------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9_]([a-z0-9_-]{0,10}[a-z0-9_])?", fullmatch=True)
_hostname = (
    st.lists(_label, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda h: not h.rsplit(".", 1)[-1].isdigit())
)
_host = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    _hostname,
)
_addr = st.tuples(_host, st.integers(1, 65535))
_text = st.text(max_size=40)


@st.composite
def magnet_links(draw: st.DrawFn) -> MagnetLink:
    btih = draw(st.none() | st.binary(min_size=20, max_size=20))
    btmh = draw(st.binary(min_size=32, max_size=32) if btih is None else st.none())
    if btih is not None and draw(st.booleans()):
        btmh = draw(st.binary(min_size=32, max_size=32))
    return MagnetLink(
        btih=btih,
        btmh=btmh,
        name=draw(st.none() | _text),
        trackers=tuple(draw(st.lists(_text, max_size=5))),
        peers=tuple(draw(st.lists(_addr, max_size=5))),
        web_seeds=tuple(draw(st.lists(_text, max_size=3))),
        exact_length=draw(st.none() | st.integers(0, 2**63 - 1)),
        select_only=draw(
            st.none() | st.lists(st.integers(0, MAX_SELECT_INDEX), max_size=20).map(tuple)
        ),
        dht_nodes=tuple(draw(st.lists(_addr, max_size=3))),
    )


@pytest.mark.slow
@given(magnet_links())
def test_parse_format_round_trip(link: MagnetLink) -> None:
    text = uri.format(link)
    assert parse(text) == link
    assert str(link) == text
    assert uri.format(parse(text)) == text


@given(st.text(max_size=300))
def test_parse_never_raises_anything_but_magnet_error(text: str) -> None:
    for candidate in (text, BASE + "&" + text, "magnet:?" + text):
        try:
            parse_info_hash_or_magnet(candidate)
        except MagnetError as exc:
            assert "\n" not in str(exc)


# --- libtorrent agrees -------------------------------------------------------------------


def _lt() -> Any:
    lt = pytest.importorskip("libtorrent")
    return lt


def test_libtorrent_reads_our_links() -> None:
    lt = _lt()
    link = MagnetLink(
        btih=bytes.fromhex(IH),
        btmh=bytes(range(32)),
        name="a b+c/日本",
        trackers=("udp://t:1/announce", "http://x/a?b=c&d=e+f"),
        web_seeds=("http://w/s p",),
        peers=(("1.2.3.4", 5), ("2001:db8::1", 6)),
        dht_nodes=(("router.example", 6881),),
        select_only=(0, 2, 3, 4),
    )
    atp = lt.parse_magnet_uri(str(link))
    assert bytes.fromhex(str(atp.info_hashes.v1)) == link.btih
    assert bytes.fromhex(str(atp.info_hashes.v2)) == link.btmh
    assert atp.name == link.name
    assert list(atp.trackers) == list(link.trackers)
    assert list(atp.url_seeds) == list(link.web_seeds)
    assert [(str(ipaddress.ip_address(h)), p) for h, p in atp.peers] == list(link.peers)
    assert list(atp.dht_nodes) == list(link.dht_nodes)
    selected = [i for i, prio in enumerate(atp.file_priorities) if prio != 0]
    assert selected == list(link.select_only or ())


def test_we_read_libtorrent_links(tmp_path: Path) -> None:
    lt = _lt()
    (tmp_path / "a b+c&d=é.txt").write_bytes(b"x" * 1000)
    fs = lt.file_storage()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        lt.add_files(fs, str(tmp_path / "a b+c&d=é.txt"))
        ct = lt.create_torrent(fs, 16384)  # hybrid: v1 and v2 hashes
    ct.add_tracker("udp://t:1/announce?k=a&b", 0)
    ct.add_tracker("http://v/é~'", 1)
    ct.add_url_seed("http://w/a+b")
    lt.set_piece_hashes(ct, str(tmp_path))
    ti = lt.torrent_info(lt.bencode(ct.generate()))
    link = parse(lt.make_magnet_uri(ti))
    assert link.btih == bytes.fromhex(str(ti.info_hashes().v1))
    assert link.btmh == bytes.fromhex(str(ti.info_hashes().v2))
    assert link.name == "a b+c&d=é.txt"
    assert link.trackers == ("udp://t:1/announce?k=a&b", "http://v/é~'")
    assert link.web_seeds == ("http://w/a+b",)
