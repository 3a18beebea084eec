"""The command line as a user runs it: subprocesses, exit codes, output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.magnet.fakepeers import info_hash, make_info

MAGNETAR = [sys.executable, "-m", "magnet"]


def magnetar(
    *args: str, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MAGNETAR, *args], capture_output=True, text=True, timeout=timeout, input=stdin
    )


class Background:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*MAGNETAR, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def first_line(self, timeout: float = 30) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.5):
                line = self.proc.stdout.readline()
                if line:
                    return line
            if self.proc.poll() is not None:
                break
        raise AssertionError(f"no output; stderr: {self.stop()}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


@pytest.fixture(scope="module")
def testnet() -> Iterator[str]:
    bg = Background("testnet", "--nodes", "12", "--duration", "300")
    try:
        described = json.loads(bg.first_line())
        yield described["bootstrap"][0]
    finally:
        bg.stop()


def test_help_has_examples() -> None:
    out = magnetar("resolve", "--help")
    assert out.returncode == 0 and "Example" in out.stdout


def test_bad_magnet_is_one_line_and_exit_2() -> None:
    out = magnetar("resolve", "magnet:?xt=urn:btih:123")
    assert out.returncode == 2
    assert (
        out.stderr.count("\n") == 1 and "magnetar:" in out.stderr and "Traceback" not in out.stderr
    )


def test_bad_bootstrap_is_exit_2() -> None:
    out = magnetar("peers", "a" * 40, "-b", "nohostport")
    assert out.returncode == 2 and "HOST:PORT" in out.stderr


def test_ping_testnet_node(testnet: str) -> None:
    out = magnetar("ping", testnet, "--json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert len(bytes.fromhex(record["id"])) == 20


def test_ping_nobody_is_exit_1() -> None:
    out = magnetar("ping", "127.0.0.1:9", "--timeout", "0.5")
    assert out.returncode == 1 and "did not answer" in out.stderr


def test_peers_not_found_is_exit_1_with_reason(testnet: str) -> None:
    out = magnetar("peers", "b" * 40, "-b", testnet, "--timeout", "5")
    assert out.returncode == 1
    assert "no peers found" in out.stderr and "nodes answered" in out.stderr


@pytest.mark.slow
def test_serve_then_resolve_then_peers(testnet: str, tmp_path: Path) -> None:
    info = make_info(50_000, name="served.bin")
    torrent = b"d4:info" + info + b"e"
    path = tmp_path / "served.torrent"
    path.write_bytes(torrent)
    server = Background("serve", str(path), "--port", "0", "--dht-port", "0", "-b", testnet)
    try:
        link = server.first_line().strip()
        assert link.startswith("magnet:?xt=urn:btih:" + info_hash(info).hex())
        out_file = tmp_path / "out.torrent"
        for _ in range(20):  # the announce may still be on its way
            out = magnetar(
                "resolve", link, "-b", testnet, "-o", str(out_file), "--json", "--timeout", "5"
            )
            if out.returncode == 0:
                break
            time.sleep(0.2)
        assert out.returncode == 0, out.stdout + out.stderr
        record = json.loads(out.stdout)
        assert record["name"] == "served.bin" and record["source"] == "dht"
        assert record["output"] == str(out_file)
        assert info in out_file.read_bytes()
        peers = magnetar("peers", info_hash(info).hex(), "-b", testnet, "--timeout", "5")
        assert peers.returncode == 0 and peers.stdout.strip()
    finally:
        server.stop()


@pytest.mark.slow
def test_bulk_from_stdin_reports_each_link(testnet: str, tmp_path: Path) -> None:
    links = "\n".join(f"magnet:?xt=urn:btih:{os.urandom(20).hex()}" for _ in range(3))
    out = magnetar(
        "resolve", "-", "-b", testnet, "--timeout", "1", "--json", "-o", str(tmp_path), stdin=links
    )
    assert out.returncode == 1
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == 3 and all(not r["ok"] for r in records)


@pytest.mark.slow
def test_node_runs_and_stops_on_sigint(testnet: str) -> None:
    node = Background(
        "node", "--host", "127.0.0.1", "--port", "0", "-b", testnet, "--status-interval", "0.3"
    )
    try:
        time.sleep(1.5)
    finally:
        err = node.stop()
    assert node.proc.returncode == 0
    assert "listening on" in err and "table" in err and "node stopped" in err


@pytest.mark.parametrize(
    ("link_trackers", "extra", "use_trackers", "expected"),
    [
        (["http://t.example/announce"], (), True, True),
        (["udp://t.example:80"], ("HTTPS://t2.example/announce",), True, True),
        (["udp://t.example:80"], (), True, False),
        (["http://t.example/announce"], (), False, False),  # --no-trackers
    ],
)
def test_http_client_is_preloaded_only_when_an_http_tracker_will_be_asked(
    monkeypatch: pytest.MonkeyPatch,
    link_trackers: list[str],
    extra: tuple[str, ...],
    use_trackers: bool,
    expected: bool,
) -> None:
    import magnet.io.trackers
    from magnet.cli.resolve import ResolveOptions, preload_http_client

    calls: list[None] = []
    monkeypatch.setattr(magnet.io.trackers, "preload_http_client", lambda: calls.append(None))
    opts = ResolveOptions(
        timeout=1.0,
        max_connections=1,
        max_metadata_mib=1,
        use_dht=True,
        use_trackers=use_trackers,
        trackers=extra,
        encryption="auto",
    )
    preload_http_client(opts, link_trackers)
    assert bool(calls) == expected


def test_one_link_and_many_get_the_same_resolve_options() -> None:
    # Bulk once dropped --max-metadata-size: both paths now take one dict, checked here
    # against what magnet.resolve accepts.
    import inspect

    from magnet.cli.resolve import ResolveOptions
    from magnet.io.resolve import resolve

    opts = ResolveOptions(
        timeout=2.0,
        max_connections=3,
        max_metadata_mib=5,
        use_dht=False,
        use_trackers=True,
        trackers=("udp://t.example:1",),
        encryption="off",
    )
    options = opts.resolve_options()
    assert set(options) <= set(inspect.signature(resolve).parameters)
    assert options["max_metadata_size"] == 5 * 1024 * 1024
    assert options["timeout"] == 2.0 and options["encryption"] == "off"


def test_records_bracket_an_ipv6_peer(tmp_path: Path) -> None:
    # The JSON record once wrote "::1:6881", which no HOST:PORT parser can split again.
    from magnet.io.output import result_record
    from magnet.io.resolve import ResolveResult
    from magnet.torrentfile import parse_info
    from magnet.uri import parse_info_hash_or_magnet

    info = make_info(20_000, name="v6.bin")
    result = ResolveResult(
        link=parse_info_hash_or_magnet(info_hash(info).hex()),
        info=info,
        meta=parse_info(info),
        peer=("2001:db8::1", 6881),
        source="dht",
        seconds=0.5,
    )
    assert result_record(result, tmp_path / "v6.torrent")["peer"] == "[2001:db8::1]:6881"
    assert result_record(replace(result, peer=("10.0.0.1", 1)), None)["peer"] == "10.0.0.1:1"


@pytest.mark.slow
def test_serve_on_a_taken_tcp_port_fails_instead_of_waiting(testnet: str, tmp_path: Path) -> None:
    import socket

    path = tmp_path / "t.torrent"
    path.write_bytes(b"d4:info" + make_info(20_000, name="t.bin") + b"e")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        out = magnetar(
            "serve", str(path), "--host", "127.0.0.1", "--port", port, "--dht-port", "0",
            "-b", testnet, timeout=30,
        )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"cannot bind 127.0.0.1:{port}" in out.stderr and out.stdout == ""
