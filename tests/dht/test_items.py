import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import bencode2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dht.items import (
    MAX_SEQ,
    ImmutableItem,
    MutableItem,
    PutRejected,
    PutRequest,
    check_replace,
    check_signature,
    encode_value,
    immutable_item,
    immutable_target,
    item_from_response,
    mutable_item,
    mutable_target,
    parse_put,
    public_key,
    put_arguments,
    response_fields,
    sign,
    signed_buffer,
    verify,
)

# BEP 44's test vectors (shared/protocol-notes.md). The secret key is the 64-byte *expanded*
# form (clamped scalar || prefix) that libtorrent stores, not an RFC 8032 seed.
PK = bytes.fromhex("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548")
SK = bytes.fromhex(
    "e06d3183d14159228433ed599221b80bd0a5ce8352e4bdf0262f76786ef1c74d"
    "b7e7a9fea2c0eb269d61e3b38e450a22e754941ac78479d6c54e1faf6037881d"
)
SIG_NO_SALT = bytes.fromhex(
    "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff"
    "1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01"
)
SIG_SALT = bytes.fromhex(
    "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d"
    "df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08"
)
HELLO = encode_value(b"Hello World!")
SEED = bytes(range(32))


# --- RFC 8032 signing from an expanded key, to reproduce the vectors' signatures --------------
# ``cryptography`` only signs from a seed; the vectors give the expanded key. Ed25519 is
# deterministic, so signing our signed_buffer with it must give the vectors' bytes exactly.

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P


def _point_add(p: tuple[int, ...], q: tuple[int, ...]) -> tuple[int, ...]:
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _base_mul(scalar: int) -> bytes:
    gy = 4 * pow(5, _P - 2, _P) % _P
    x2 = (gy * gy - 1) * pow(_D * gy * gy + 1, _P - 2, _P) % _P
    gx = pow(x2, (_P + 3) // 8, _P)
    if (gx * gx - x2) % _P:
        gx = gx * pow(2, (_P - 1) // 4, _P) % _P
    if gx & 1:
        gx = _P - gx
    acc: tuple[int, ...] = (0, 1, 1, 0)
    base: tuple[int, ...] = (gx, gy, 1, gx * gy % _P)
    while scalar:
        if scalar & 1:
            acc = _point_add(acc, base)
        base = _point_add(base, base)
        scalar >>= 1
    x, y, z, _ = acc
    zinv = pow(z, _P - 2, _P)
    x, y = x * zinv % _P, y * zinv % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _sign_expanded(sk: bytes, message: bytes) -> bytes:
    a = int.from_bytes(sk[:32], "little")
    pk = _base_mul(a)
    r = int.from_bytes(hashlib.sha512(sk[32:] + message).digest(), "little") % _L
    big_r = _base_mul(r)
    h = int.from_bytes(hashlib.sha512(big_r + pk + message).digest(), "little") % _L
    return big_r + ((r + h * a) % _L).to_bytes(32, "little")


def _expand(seed: bytes) -> bytes:
    digest = bytearray(hashlib.sha512(seed).digest())
    digest[0] &= 248
    digest[31] = (digest[31] & 127) | 64
    return bytes(digest)


# --- the vectors -------------------------------------------------------------------------------


def test_vector_targets() -> None:
    assert mutable_target(PK).hex() == "4a533d47ec9c7d95b1ad75f576cffc641853b750"
    assert mutable_target(PK, b"foobar").hex() == "411eba73b6f087ca51a3795d9c8c938d365e32c1"
    # SHA-1 of the bencoded value, not of the string (that would be 2ef7bde6...).
    assert immutable_target(HELLO).hex() == "e5f96f6f38320f0f33959cb4d3d656452117aadb"
    assert immutable_item(b"Hello World!").target == immutable_target(HELLO)


def test_vector_signed_buffers() -> None:
    assert signed_buffer(b"", 1, HELLO) == b"3:seqi1e1:v12:Hello World!"
    assert signed_buffer(b"foobar", 1, HELLO) == b"4:salt6:foobar3:seqi1e1:v12:Hello World!"
    assert signed_buffer(b"", 7, encode_value(5)) == b"3:seqi7e1:vi5e"


def test_vector_signatures_verify_and_are_reproduced() -> None:
    assert verify(PK, SIG_NO_SALT, b"", 1, HELLO)
    assert verify(PK, SIG_SALT, b"foobar", 1, HELLO)
    assert not verify(PK, SIG_NO_SALT, b"foobar", 1, HELLO)
    assert not verify(PK, SIG_SALT, b"", 1, HELLO)
    assert _base_mul(int.from_bytes(SK[:32], "little")) == PK
    assert _sign_expanded(SK, signed_buffer(b"", 1, HELLO)) == SIG_NO_SALT
    assert _sign_expanded(SK, signed_buffer(b"foobar", 1, HELLO)) == SIG_SALT


def test_seed_signing_agrees_with_the_expanded_key_arithmetic() -> None:
    expanded = _expand(SEED)
    assert public_key(SEED) == _base_mul(int.from_bytes(expanded[:32], "little"))
    buffer = signed_buffer(b"salt", 3, HELLO)
    assert sign(SEED, b"salt", 3, HELLO) == _sign_expanded(expanded, buffer)


def test_vector_items_from_get_answers() -> None:
    r: dict[bytes, Any] = {b"k": PK, b"seq": 1, b"sig": SIG_SALT, b"v": b"Hello World!"}
    item = item_from_response(mutable_target(PK, b"foobar"), r, b"foobar")
    assert isinstance(item, MutableItem) and item.seq == 1 and item.value() == b"Hello World!"
    assert item_from_response(mutable_target(PK, b"foobar"), r) is None  # salt not supplied
    assert item_from_response(mutable_target(PK), r) is None  # signed with salt
    target = immutable_target(HELLO)
    assert item_from_response(target, {b"v": b"Hello World!"}) == ImmutableItem(HELLO)
    assert item_from_response(target, {b"v": b"Hello World?"}) is None
    assert item_from_response(target, {b"nodes": b""}) is None


# --- sign and verify, for any item within bounds ------------------------------------------------

values = st.recursive(
    st.binary(max_size=40) | st.integers(-(2**70), 2**70),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
salts = st.binary(max_size=64)
seqs = st.integers(0, MAX_SEQ)


@settings(max_examples=60, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), salt=salts, seq=seqs, value=values)
def test_verify_accepts_what_sign_made(seed: bytes, salt: bytes, seq: int, value: object) -> None:
    item = mutable_item(seed, value, seq=seq, salt=salt)
    assert verify(item.k, item.sig, salt, seq, item.v)
    assert check_signature(item) is None
    assert item.target == mutable_target(public_key(seed), salt)


@settings(max_examples=60, deadline=None)
@given(
    salt=salts,
    seq=seqs,
    value=values,
    bit=st.integers(0, 64 * 8 - 1),
    other_salt=salts,
    other_seq=seqs,
    other_value=values,
)
def test_any_change_breaks_the_signature(
    salt: bytes,
    seq: int,
    value: object,
    bit: int,
    other_salt: bytes,
    other_seq: int,
    other_value: object,
) -> None:
    v = encode_value(value)
    sig = sign(SEED, salt, seq, v)
    k = public_key(SEED)
    forged = bytearray(sig)
    forged[bit // 8] ^= 1 << (bit % 8)
    assert not verify(k, bytes(forged), salt, seq, v)
    if other_salt != salt:
        assert not verify(k, sig, other_salt, seq, v)
    if other_seq != seq:
        assert not verify(k, sig, salt, other_seq, v)
    other_v = encode_value(other_value)
    if other_v != v:
        assert not verify(k, sig, salt, seq, other_v)
    assert not verify(public_key(bytes(32)), sig, salt, seq, v)


def test_verify_never_raises_on_malformed_keys_and_signatures() -> None:
    assert not verify(PK[:31], SIG_NO_SALT, b"", 1, HELLO)
    assert not verify(PK, SIG_NO_SALT[:63], b"", 1, HELLO)
    assert not verify(b"\xff" * 32, SIG_NO_SALT, b"", 1, HELLO)  # not a curve point


# --- building items --------------------------------------------------------------------------


def test_builders_refuse_what_a_node_would_refuse() -> None:
    assert len(immutable_item(b"x" * 996).v) == 1000  # 996:... is exactly 1000 bytes
    with pytest.raises(ValueError, match="1001 bytes"):
        immutable_item(b"x" * 997)
    with pytest.raises(ValueError, match="salt"):
        mutable_item(SEED, b"v", seq=1, salt=b"s" * 65)
    with pytest.raises(ValueError, match="seq"):
        mutable_item(SEED, b"v", seq=-1)
    with pytest.raises(ValueError, match="seq"):
        mutable_item(SEED, b"v", seq=MAX_SEQ + 1)
    with pytest.raises(ValueError, match="bencodable"):
        encode_value(1.5)


# --- a put's arguments -------------------------------------------------------------------------


def _mutable_args(**changes: Any) -> dict[bytes, Any]:
    item = mutable_item(SEED, b"hello", seq=5, salt=b"s")
    args = put_arguments(item, b"tok", cas=4)
    for key, value in changes.items():
        if value is None:
            args.pop(key.encode(), None)
        else:
            args[key.encode()] = value
    return args


def test_put_arguments_survive_the_wire_and_parse_back() -> None:
    item = mutable_item(SEED, [b"a", 1, {b"k": b"v"}], seq=9, salt=b"salty")
    args = bencode2.bdecode(bencode2.bencode(put_arguments(item, b"tok", cas=8)))
    assert parse_put(args) == PutRequest(item, b"tok", 8)
    plain = immutable_item({b"n": 1})
    args = bencode2.bdecode(bencode2.bencode(put_arguments(plain, b"t2", cas=3)))
    assert args == {b"token": b"t2", b"v": {b"n": 1}}  # no cas for an immutable item
    assert parse_put(args) == PutRequest(plain, b"t2", None)
    unsalted = mutable_item(SEED, b"x", seq=0)
    assert b"salt" not in put_arguments(unsalted, b"t")


def test_put_limits_give_the_bep_codes() -> None:
    assert isinstance(parse_put({b"token": b"t", b"v": b"x" * 996}), PutRequest)
    assert parse_put({b"token": b"t", b"v": b"x" * 997}) == PutRejected(
        205, "message (v field) too big"
    )
    assert isinstance(parse_put(_mutable_args(salt=b"s" * 64)), PutRequest)
    rejected = parse_put(_mutable_args(salt=b"s" * 65))
    assert isinstance(rejected, PutRejected) and rejected.code == 207
    # libtorrent's order: size before salt.
    rejected = parse_put(_mutable_args(salt=b"s" * 65, v=b"x" * 997))
    assert isinstance(rejected, PutRejected) and rejected.code == 205


@pytest.mark.parametrize(
    "changes",
    [
        {"token": None},
        {"v": None},
        {"k": b"short"},
        {"sig": b"\x00" * 63},
        {"seq": None},
        {"seq": b"5"},
        {"seq": -1},
        {"seq": MAX_SEQ + 1},
        {"salt": 7},
        {"cas": b"4"},
    ],
)
def test_malformed_puts_are_protocol_errors(changes: dict[str, Any]) -> None:
    rejected = parse_put(_mutable_args(**changes))
    assert isinstance(rejected, PutRejected) and rejected.code == 203


def test_signature_check_is_separate_and_gives_206() -> None:
    good = parse_put(_mutable_args())
    assert isinstance(good, PutRequest) and check_signature(good.item) is None
    forged = parse_put(_mutable_args(v=b"hellO"))  # well formed, signed over another value
    assert isinstance(forged, PutRequest)
    assert check_signature(forged.item) == PutRejected(206, "invalid signature")
    assert check_signature(immutable_item(b"x")) is None


# --- replacing a stored item -------------------------------------------------------------------


def test_seq_and_cas_rules() -> None:
    v5 = mutable_item(SEED, b"five", seq=5)
    v6 = mutable_item(SEED, b"six", seq=6)
    other5 = mutable_item(SEED, b"other five", seq=5)
    assert check_replace(None, v5, cas=3) is None  # cas ignored when nothing is stored
    assert check_replace(v5, v6, None) is None
    assert check_replace(v5, v6, 5) is None
    assert check_replace(v5, v5, None) is None  # same seq, same value: a refresh
    assert check_replace(v6, v5, None) == PutRejected(302, "sequence number less than current")
    rejected = check_replace(v5, other5, None)
    assert isinstance(rejected, PutRejected) and rejected.code == 302
    rejected = check_replace(v5, v6, 4)
    assert isinstance(rejected, PutRejected) and rejected.code == 301
    rejected = check_replace(v6, v5, 4)  # cas is checked before seq, as libtorrent does
    assert isinstance(rejected, PutRejected) and rejected.code == 301
    plain = immutable_item(b"x")
    assert check_replace(plain, plain, 7) is None


# --- answering a get ---------------------------------------------------------------------------


def test_get_answer_fields() -> None:
    assert response_fields(None) == {}
    assert response_fields(immutable_item([1, b"a"])) == {b"v": [1, b"a"]}
    item = mutable_item(SEED, b"val", seq=5, salt=b"s")
    full = {b"seq": 5, b"k": item.k, b"sig": item.sig, b"v": b"val"}
    assert response_fields(item) == full
    assert response_fields(item, 4) == full
    assert response_fields(item, 5) == {b"seq": 5}  # nothing newer than what the querier has
    assert response_fields(item, 9) == {b"seq": 5}
    assert response_fields(item, b"4") == full  # a malformed seq asks for everything
    assert b"salt" not in response_fields(item)
    # What a querier does with the answer: the same item back, checked.
    assert item_from_response(item.target, full, b"s") == item


def test_importing_items_does_not_load_the_crypto_backend() -> None:
    root = Path(__file__).resolve().parents[2]
    code = "import sys, dht.items; print('cryptography' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "False", out.stderr
