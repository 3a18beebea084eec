import bencode2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dht.wire import (
    KrpcDecodeError,
    KrpcError,
    NodeContact,
    Query,
    Response,
    decode,
    encode_error,
    encode_query,
    encode_response,
    pack_addr,
    pack_nodes,
    unpack_nodes,
)

ID = b"abcdefghij0123456789"


def test_bep5_ping_vector() -> None:
    data = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
    assert encode_query(b"aa", b"ping", {b"id": ID}) == data
    q = decode(data)
    assert isinstance(q, Query)
    assert (q.t, q.method, q.id) == (b"aa", b"ping", ID)


def test_bep5_announce_vector() -> None:
    data = (
        b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz123456"
        b"4:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe"
    )
    args = {
        b"id": ID,
        b"implied_port": 1,
        b"info_hash": b"mnopqrstuvwxyz123456",
        b"port": 6881,
        b"token": b"aoeusnth",
    }
    assert encode_query(b"aa", b"announce_peer", args) == data
    q = decode(data)
    assert isinstance(q, Query)
    assert q.target == b"mnopqrstuvwxyz123456"


def test_bep5_error_vector() -> None:
    data = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee"
    assert encode_error(b"aa", 201, "A Generic Error Ocurred") == data
    e = decode(data)
    assert isinstance(e, KrpcError)
    assert (e.code, e.message) == (201, "A Generic Error Ocurred")


def test_response_with_nodes_values_token_and_ip() -> None:
    nodes = (NodeContact(b"n" * 20, ("1.2.3.4", 6881)), NodeContact(b"m" * 20, ("5.6.7.8", 1)))
    r = {
        b"id": ID,
        b"nodes": pack_nodes(nodes),
        b"token": b"tok",
        b"values": [pack_addr(("9.9.9.9", 51413))],
    }
    msg = decode(encode_response(b"xy", r, ip=pack_addr(("10.0.0.1", 4000)), version=b"LT\x02\x11"))
    assert isinstance(msg, Response)
    assert msg.nodes == nodes
    assert msg.peers == (("9.9.9.9", 51413),)
    assert msg.token == b"tok"
    assert msg.ip == ("10.0.0.1", 4000)
    assert msg.version == b"LT\x02\x11"


def _raises(data: bytes) -> KrpcDecodeError:
    with pytest.raises(KrpcDecodeError) as info:
        decode(data)
    return info.value


def test_garbage_is_dropped_silently() -> None:
    for data in (b"", b"x", b"i1e", b"le", b"d1:y1:qe", b"d1:t2:aae", b"\xff" * 30):
        assert _raises(data).t is None


@pytest.mark.parametrize(
    "args",
    [
        {b"id": b"short"},
        {b"id": ID, b"target": b"x" * 19},
        {b"id": 5, b"target": b"x" * 20},
    ],
)
def test_bad_find_node_args_are_203_with_t(args: dict[bytes, object]) -> None:
    err = _raises(encode_query(b"tt", b"find_node", args))
    assert (err.t, err.code, err.is_query) == (b"tt", 203, True)


def test_announce_without_token_or_with_bad_port_is_203() -> None:
    base = {b"id": ID, b"info_hash": b"h" * 20, b"port": 6881, b"token": b"t"}
    for change in ({b"token": None}, {b"port": 0}, {b"port": 70000}, {b"port": b"80"}):
        args = {k: v for k, v in {**base, **change}.items() if v is not None}
        assert _raises(encode_query(b"tt", b"announce_peer", args)).code == 203
    # implied_port makes port optional
    args = {b"id": ID, b"info_hash": b"h" * 20, b"implied_port": 1, b"token": b"t"}
    assert isinstance(decode(encode_query(b"tt", b"announce_peer", args)), Query)


def test_wrong_compact_lengths_are_protocol_errors_not_answered() -> None:
    for r in (
        {b"id": ID, b"nodes": b"x" * 27},
        {b"id": ID, b"nodes6": b"x" * 37},
        {b"id": ID, b"values": [b"x" * 5]},
        {b"id": ID, b"values": b"notalist"},
        {b"id": b"x" * 21},
    ):
        err = _raises(encode_response(b"rr", r))
        assert err.t == b"rr" and err.code == 203 and not err.is_query


def test_unknown_method_and_unknown_keys_are_tolerated() -> None:
    q = decode(
        bencode2.bencode(
            {b"a": {b"id": ID, b"zz": 1}, b"q": b"vote", b"t": b"1", b"y": b"q", b"x": 2}
        )
    )
    assert isinstance(q, Query) and q.method == b"vote"


def test_read_only_flag() -> None:
    q = decode(encode_query(b"t", b"ping", {b"id": ID}, read_only=True))
    assert isinstance(q, Query) and q.read_only


def test_ipv6_compact_nodes_round_trip() -> None:
    nodes = (NodeContact(b"q" * 20, ("2001:db8::1", 6881)),)
    data = b"".join(n.id + pack_addr(n.addr) for n in nodes)
    assert len(data) == 38
    assert unpack_nodes(data, v6=True) == nodes


@given(st.binary(max_size=300))
def test_decode_raises_only_krpc_decode_error(data: bytes) -> None:
    try:
        decode(data)
    except KrpcDecodeError:
        pass


_values = st.recursive(
    st.integers(-(2**63), 2**63) | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    st.sampled_from([b"q", b"r", b"e", b"z"]),
    st.dictionaries(
        st.sampled_from(
            [
                b"id",
                b"target",
                b"info_hash",
                b"nodes",
                b"values",
                b"token",
                b"port",
                b"implied_port",
                b"want",
            ]
        ),
        _values,
    ),
    st.sampled_from(
        [b"ping", b"find_node", b"get_peers", b"announce_peer", b"sample_infohashes", b"x"]
    ),
)
@pytest.mark.slow
def test_decode_of_structured_junk_raises_only_krpc_decode_error(
    y: bytes, body: dict[bytes, object], method: bytes
) -> None:
    msg = {b"t": b"ab", b"y": y, b"q": method, b"a": body, b"r": body, b"e": [201, b"x"]}
    try:
        decode(bencode2.bencode(msg))
    except KrpcDecodeError:
        pass
