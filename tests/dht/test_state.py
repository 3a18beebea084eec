import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dht.io.state import (
    FORMAT_VERSION,
    MAX_BAD_KEPT,
    NodeState,
    StateError,
    decode_state,
    encode_state,
    load_state,
    load_state_or_fresh,
    save_state,
)
from dht.wire import NodeContact

ROOT = Path(__file__).resolve().parents[2]


def sample_state(n: int = 20, seed: int = 1) -> NodeState:
    rng = random.Random(seed)
    nodes = tuple(
        NodeContact(rng.randbytes(20), (f"1.2.{i // 200}.{i % 200 + 1}", 1024 + i))
        for i in range(n)
    )
    nodes6 = tuple(
        NodeContact(rng.randbytes(20), (f"2001:470::{i + 1:x}", 6881)) for i in range(n // 2)
    )
    return NodeState(
        node_id=rng.randbytes(20),
        external_ip="203.0.114.7",
        ip_votes={"203.0.114.7": 5, "198.51.99.1": 1, "2a01:4f8::1": 2},
        nodes=nodes,
        nodes6=nodes6,
        saved_at=1_712_345_678.25,
    )


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.dat"
    state = sample_state()
    save_state(path, state)
    assert load_state(path) == state
    assert load_state_or_fresh(path) == (state, None)
    # Nothing but the state file is left in the directory.
    assert os.listdir(tmp_path) == ["state.dat"]


def test_round_trip_minimal(tmp_path: Path) -> None:
    state = NodeState(node_id=bytes(20))
    save_state(tmp_path / "s", state)
    assert load_state(tmp_path / "s") == state


def test_overwrite_replaces(tmp_path: Path) -> None:
    path = tmp_path / "state.dat"
    save_state(path, sample_state(30, seed=1))
    second = sample_state(3, seed=2)
    save_state(path, second)
    assert load_state(path) == second


ips_v4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
contact4 = st.builds(
    NodeContact, st.binary(min_size=20, max_size=20), st.tuples(ips_v4, st.integers(0, 65535))
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    node_id=st.binary(min_size=20, max_size=20),
    nodes=st.lists(contact4, max_size=30).map(tuple),
    ip=st.none() | ips_v4,
    votes=st.dictionaries(ips_v4, st.integers(0, 2**40), max_size=8),
    saved_at=st.floats(allow_nan=False, allow_infinity=False),
)
def test_round_trip_any(
    node_id: bytes,
    nodes: tuple[NodeContact, ...],
    ip: str | None,
    votes: dict[str, int],
    saved_at: float,
) -> None:
    state = NodeState(node_id, ip, votes, nodes, (), saved_at)
    assert decode_state(encode_state(state)) == state


def test_from_contacts_splits_families_and_bounds() -> None:
    from dht.io.state import MAX_CONTACTS, MAX_VOTES

    contacts = [NodeContact(bytes([i % 256]) * 20, ("5.6.7.8", 1)) for i in range(10)]
    contacts += [NodeContact(bytes(20), ("2a01::1", 2)), NodeContact(bytes(20), ("bad", 3))]
    contacts += [NodeContact(bytes(20), ("1.1.1.1", 4))] * MAX_CONTACTS
    votes = {f"1.1.{i // 256}.{i % 256}": i for i in range(MAX_VOTES + 10)}
    state = NodeState.from_contacts(bytes(20), contacts, ip_votes=votes, saved_at=5.0)
    assert len(state.nodes) == MAX_CONTACTS
    assert state.nodes[:10] == tuple(contacts[:10])
    assert state.nodes6 == (NodeContact(bytes(20), ("2a01::1", 2)),)
    assert len(state.ip_votes) == MAX_VOTES
    assert min(state.ip_votes.values()) == 10  # the least voted were dropped
    assert decode_state(encode_state(state)) == state


def test_bad_states_are_refused_when_made() -> None:
    with pytest.raises(ValueError):
        NodeState(node_id=b"short")
    with pytest.raises(ValueError):
        NodeState(node_id=bytes(20), external_ip="not an ip")
    with pytest.raises(ValueError):
        NodeState(node_id=bytes(20), nodes=(NodeContact(bytes(20), ("::1", 1)),))
    with pytest.raises(ValueError):
        NodeState(node_id=bytes(20), nodes6=(NodeContact(bytes(20), ("1.2.3.4", 1)),))
    with pytest.raises(ValueError):
        NodeState(node_id=bytes(20), saved_at=float("nan"))
    with pytest.raises(ValueError):
        NodeState(node_id=bytes(20), ip_votes={"1.2.3.4": -1})


def test_every_truncation_is_a_state_error() -> None:
    blob = encode_state(sample_state(12))
    for cut in range(len(blob)):
        with pytest.raises(StateError):
            decode_state(blob[:cut])
    with pytest.raises(StateError):
        decode_state(blob + b"\0")


def test_every_single_byte_flip_is_a_state_error() -> None:
    blob = encode_state(sample_state(6))
    for i in range(len(blob)):
        for mask in (0x01, 0x80, 0xFF):
            damaged = bytearray(blob)
            damaged[i] ^= mask
            with pytest.raises(StateError):
                decode_state(bytes(damaged))


@settings(max_examples=300)
@given(data=st.data())
def test_random_damage_only_raises_state_error(data: st.DataObject) -> None:
    blob = bytearray(encode_state(sample_state(8)))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        decode_state(bytes(blob[:cut]))
    except StateError as exc:
        assert "\n" not in exc.reason


@given(st.binary(max_size=200))
def test_garbage_only_raises_state_error(garbage: bytes) -> None:
    with pytest.raises(StateError):
        decode_state(garbage)


def test_wrong_version_and_magic() -> None:
    blob = bytearray(encode_state(sample_state(2)))
    blob[8:10] = (FORMAT_VERSION + 1).to_bytes(2, "big")
    with pytest.raises(StateError, match="version"):
        decode_state(bytes(blob))
    with pytest.raises(StateError, match="magic"):
        decode_state(b'{"node_id": "json?"}' + bytes(60))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StateError) as info:
        load_state(tmp_path / "nope")
    assert not info.value.corrupt
    assert load_state_or_fresh(tmp_path / "nope") == (None, None)


def test_unreadable_path_is_reported_not_moved(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    state, reason = load_state_or_fresh(tmp_path / "dir")
    assert state is None and reason is not None
    assert (tmp_path / "dir").is_dir()


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"MGNTRDHT" + bytes(4 << 20))
    with pytest.raises(StateError, match="larger"):
        load_state(path)


def test_corrupt_file_moved_aside_bounded(tmp_path: Path) -> None:
    path = tmp_path / "state.dat"
    good = encode_state(sample_state(4))
    reasons = []
    for i in range(MAX_BAD_KEPT + 3):
        path.write_bytes(good[: 10 + i])
        state, reason = load_state_or_fresh(path)
        assert state is None and reason is not None
        assert "\n" not in reason
        reasons.append(reason)
        assert not path.exists()
    assert "moved to" in reasons[0]
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert len(kept) == MAX_BAD_KEPT
    # The newest are kept, and their contents are what was moved.
    n = MAX_BAD_KEPT + 3
    assert kept == sorted(f"state.dat.bad-{i}" for i in range(n - MAX_BAD_KEPT + 1, n + 1))
    assert (tmp_path / f"state.dat.bad-{n}").read_bytes() == good[: 10 + n - 1]
    # A fresh save after that works and loads.
    save_state(path, sample_state(1))
    assert load_state_or_fresh(path)[0] == sample_state(1)


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_load_or_fresh_never_raises(data: st.DataObject) -> None:
    import tempfile

    blob = bytearray(encode_state(sample_state(5)))
    for _ in range(data.draw(st.integers(0, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
    blob = blob[: data.draw(st.integers(0, len(blob)))]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s"
        path.write_bytes(bytes(blob))
        state, reason = load_state_or_fresh(path)
        assert (state is None) != (reason is None)


def test_odd_names_beside_the_file_do_not_break_moving_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.dat"
    (tmp_path / "state.dat.bad-\u00b2").write_bytes(b"")  # a digit to isdigit(), not to int()
    (tmp_path / "state.dat.bad-x").write_bytes(b"")
    path.write_bytes(b"junk")
    state, reason = load_state_or_fresh(path)
    assert state is None and reason is not None and "moved to" in reason
    assert (tmp_path / "state.dat.bad-1").read_bytes() == b"junk"


def test_stale_temp_files_are_swept(tmp_path: Path) -> None:
    path = tmp_path / "state.dat"
    stale = tmp_path / ".state.dat.abc123.tmp"
    fresh = tmp_path / ".state.dat.def456.tmp"
    other = tmp_path / ".other.dat.abc.tmp"
    for p in (stale, fresh, other):
        p.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    save_state(path, sample_state(1))
    assert not stale.exists()
    assert fresh.exists()  # possibly another writer's save in progress
    assert other.exists()


_WRITER = textwrap.dedent(
    """
    import random, sys
    from dht.io.state import NodeState, save_state
    from dht.wire import NodeContact

    path = sys.argv[1]
    rng = random.Random(int(sys.argv[2]))
    i = 0
    while True:
        i += 1
        n = rng.randrange(0, 400)  # sizes vary, so a torn write would show
        nodes = tuple(
            NodeContact(rng.randbytes(20), (f"5.6.{k // 200}.{k % 200 + 1}", 6881))
            for k in range(n)
        )
        save_state(path, NodeState(rng.randbytes(20), nodes=nodes, saved_at=float(i)))
        if i == 1:
            print("ready", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_kill_9_while_saving_never_leaves_a_bad_file(tmp_path: Path) -> None:
    """SIGKILL a process saving in a loop at random moments: the file always loads.

    This proves the rename protocol against process death, not against power loss (which
    the fsyncs are for and a test cannot simulate).
    """
    path = tmp_path / "state.dat"
    save_state(path, NodeState(bytes(20)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(7)
    progressed = 0
    deadline = time.monotonic() + 30
    for run in range(12):
        if time.monotonic() > deadline:
            break
        child = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(run)],
            stdout=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        state = load_state(path)
        progressed += state.saved_at > 1
    assert progressed > 0  # the kills did land in the middle of a stream of saves
    # Temp files of killed saves are few (at most one per kill) and younger than the sweep age.
    assert len(list(tmp_path.glob(".state.dat.*.tmp"))) <= 12
