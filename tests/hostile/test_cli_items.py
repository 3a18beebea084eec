"""``magnetar get``, ``put``, ``keygen`` and ``peers --scrape`` as a user runs them: bad input
is one line and exit 2, nothing found is exit 1, and a round trip is byte for byte."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from magnet.cli.app import app

LOOP_DHT = ["-b", "127.0.0.1:9"]  # nobody there: a check that is missing would only time out
KEY = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["get"], "TARGET or --key"),
        (["get", "ab" * 20, "--key", KEY], "TARGET or --key"),
        (["get", "nothex"], "40 hex digits"),
        (["get", "--key", "abcd"], "64 hex digits"),
        (["get", "ab" * 20, "--salt", "s"], "--salt goes with --key"),
        (["get", "--key", KEY, "--salt", "s" * 65], "64"),
        (["get", "ab" * 20, "--timeout", "0"], "--timeout"),
        (["put", "x" * 1000, *LOOP_DHT], "1000"),
        (["put", "x", "--salt", "s", *LOOP_DHT], "--key-file"),
        (["put", "x", "--seq", "3", *LOOP_DHT], "--key-file"),
        (["put", "l1:x", "--bencoded", *LOOP_DHT], "not valid bencode"),
        (["put", "d1:bi1e1:ai2ee", "--bencoded", *LOOP_DHT], "not valid bencode"),
        (["put", "x", "--key-file", "/nonexistent/key", *LOOP_DHT], "cannot read the key"),
        (["put", "x", "--seq", "-1", *LOOP_DHT], "--seq"),
        (["keygen"], "--out"),
        (["peers", "nothex", "--scrape"], "nothex"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], words: str) -> None:
    code, out = invoke(*args)
    assert code == 2, out
    assert words in out and "Traceback" not in out


def test_keygen_refuses_to_replace_a_key_or_a_fifo(tmp_path: Path) -> None:
    key = tmp_path / "my.key"
    code, out = invoke("keygen", "--out", str(key), "--json")
    assert code == 0
    record = json.loads(out)
    assert len(bytes.fromhex(record["public_key"])) == 32
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    before = key.read_bytes()
    code, out = invoke("keygen", "--out", str(key))
    assert code == 2 and "exists" in out and key.read_bytes() == before
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, out = invoke("keygen", "--out", str(fifo), "--force")
    assert code == 2 and "FIFO" in out
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    code, out = invoke("put", "x", "--key-file", str(fifo), *LOOP_DHT)
    assert code == 2 and "regular" in out  # never opened: reading a FIFO blocks


MAGNETAR = [sys.executable, "-m", "magnet"]


def magnetar(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*MAGNETAR, *args], capture_output=True, timeout=60, input=stdin)


@pytest.fixture(scope="module")
def testnet() -> Iterator[str]:
    proc = subprocess.Popen(
        [*MAGNETAR, "testnet", "--nodes", "12", "--duration", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        yield json.loads(line)["bootstrap"][0]
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
def test_put_and_get_byte_for_byte(testnet: str, tmp_path: Path) -> None:
    b = ["-b", testnet]
    blob = bytes(range(256)) * 3  # not text: the bytes must come back as they went in
    put = magnetar("put", "-", *b, "--json", stdin=blob)
    assert put.returncode == 0, put.stderr
    target = json.loads(put.stdout)["target"]
    got = magnetar("get", target, *b)
    assert got.returncode == 0 and got.stdout == blob + b"\n"
    got = magnetar("get", target, *b, "--bencoded")
    assert got.stdout == b"768:" + blob + b"\n"

    key = tmp_path / "k"
    public = magnetar("keygen", "--out", str(key)).stdout.decode().strip()
    for value in ("d1:ai1ee", "d1:ai2ee"):
        put = magnetar("put", value, "--bencoded", "--key-file", str(key), "--salt", "s", *b)
        assert put.returncode == 0, put.stderr
    got = magnetar("get", "--key", public, "--salt", "s", *b, "--json")
    record = json.loads(got.stdout)
    assert (record["seq"], record["bencoded"]) == (2, b"d1:ai2ee".hex())
    stale = magnetar("put", "x", "--key-file", str(key), "--salt", "s", "--seq", "1", *b)
    assert stale.returncode == 1 and b"302" in stale.stderr
    race = magnetar("put", "x", "--key-file", str(key), "--salt", "s", "--cas", "1", *b)
    assert race.returncode == 1 and b"301" in race.stderr
    missing = magnetar("get", "--key", public, *b, "--timeout", "5")  # no salt: not there
    assert missing.returncode == 1 and b"no item found" in missing.stderr
    scrape = magnetar("peers", "ab" * 20, "--scrape", *b, "--json")
    assert scrape.returncode == 1 and json.loads(scrape.stdout)["seeds"] == 0
