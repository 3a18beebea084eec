"""Every ``magnetar`` command fed a catalogue of bad values, as a new (or hostile) user would.

Each case must end in one line on stderr (``magnetar: ...``), no traceback, and the
documented exit code: 2 for bad input (a value out of range, a choice that is not one, a
path of the wrong kind), 1 when the environment refuses (a busy port, permission denied)
or nothing could be found. Most cases run in-process through typer's CliRunner, bounded by
an alarm so that a value wrongly accepted cannot leave a node running; the few that need a
port held by someone else run as subprocesses. Everything stays on loopback.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from typer.testing import CliRunner

from magnet.cli.app import app
from magnet.torrentfile import build_torrent
from tests.magnet.fakepeers import make_info

HASH = "0123456789abcdef0123456789abcdef01234567"
CASE_LIMIT_S = 30  # no case gets near this; a hang fails the case instead of the run


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Paths of every kind a user might pass where another is meant."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "plain.txt").write_text("not a torrent\n")
    (tmp_path / "garbage.torrent").write_bytes(b"l" * 1400)
    (tmp_path / "good.torrent").write_bytes(build_torrent(make_info(1000), creation_date=0))
    os.mkfifo(tmp_path / "fifo")
    return {
        "good": str(tmp_path / "good.torrent"),
        "dir": str(tmp_path / "dir"),
        "plain": str(tmp_path / "plain.txt"),
        "garbage": str(tmp_path / "garbage.torrent"),
        "fifo": str(tmp_path / "fifo"),
        "missing": str(tmp_path / "missing.torrent"),
        "db": str(tmp_path / "crawl.sqlite"),
    }


class CaseTooLong(BaseException):
    """Not an Exception (nor an OSError, as TimeoutError is): no handler in the command
    under test may swallow it and carry on."""


@pytest.fixture(autouse=True)
def bounded() -> Iterator[None]:
    """An alarm per case, and the root logger's level put back (commands set it)."""

    def too_long(signum: int, frame: FrameType | None) -> None:
        signal.alarm(5)  # again, should a bare except swallow this one
        raise CaseTooLong(f"still running after {CASE_LIMIT_S} s")

    level = logging.getLogger().level
    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(CASE_LIMIT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        logging.getLogger().setLevel(level)


# Were a check missing, the command would run: then only ever on loopback, for the alarm.
LOOP_DHT = ["-b", "127.0.0.1:9"]  # a repeated -b adds up: "-b ''" after it is still bad
NODE = ["node", "--host", "127.0.0.1", "--port", "0", *LOOP_DHT]  # a later --port wins
CRAWL = ["crawl", "--host", "127.0.0.1", "--port", "0", *LOOP_DHT]
SERVE = ["serve", "{good}", "--host", "127.0.0.1", "--port", "0", *LOOP_DHT]
RESOLVE = ["resolve", HASH, *LOOP_DHT]
PEERS = ["peers", HASH, *LOOP_DHT]

# (arguments, exit code, words the one line must contain); {dir}, {plain}... are ``files``.
CATALOGUE: list[tuple[list[str], int, str]] = [
    # the root
    (["--no-such-option"], 2, "No such option"),
    (["no-such-command"], 2, "No such command"),
    (["version", "extra"], 2, "unexpected extra argument"),
    # node
    ([*NODE, "--port", "70000"], 2, "--port"),
    ([*NODE, "--port", "-1"], 2, "--port"),
    ([*NODE, "--port", "many"], 2, "--port"),
    ([*NODE, "--metrics", "127.0.0.1:70000"], 2, "--metrics"),
    ([*NODE, "--metrics", "nohostport"], 2, "--metrics"),
    ([*NODE, "-b", ""], 2, "--bootstrap"),
    ([*NODE, "-b", "127.0.0.1:9,"], 2, "--bootstrap"),
    ([*NODE, "--stats-interval", "0"], 2, "--stats-interval"),
    ([*NODE, "--status-interval", "nan"], 2, "--status-interval"),
    ([*NODE, "--rate-limit", "-5"], 2, "--rate-limit"),
    ([*NODE, "--pool-size", "0"], 2, "--pool-size"),
    ([*NODE, "--state", "{dir}"], 2, "a directory"),
    ([*NODE, "--state", "{fifo}"], 2, "a FIFO"),
    # ping
    (["ping", "127.0.0.1:70000"], 2, "port"),
    (["ping", "nohostport"], 2, "nohostport"),
    (["ping", "127.0.0.1:6881", "--timeout", "0"], 2, "--timeout"),
    (["ping", "127.0.0.1:6881", "--timeout", "nan"], 2, "finite"),
    (["ping", "127.0.0.1:6881", "--timeout", "inf"], 2, "finite"),
    # peers
    (["peers", "nothex"], 2, "nothex"),
    ([*PEERS, "-b", ""], 2, "--bootstrap"),
    ([*PEERS, "--timeout", "-1"], 2, "--timeout"),
    # resolve
    (["resolve"], 2, "Missing argument"),
    (["resolve", "magnet:?xt=urn:btih:nothex", *LOOP_DHT], 2, "bad magnet link"),
    ([*RESOLVE, "--encryption", "bogus"], 2, "--encryption"),
    ([*RESOLVE, "--concurrency", "0"], 2, "--concurrency"),
    ([*RESOLVE, "--max-connections", "-3"], 2, "--max-connections"),
    ([*RESOLVE, "--timeout", "inf"], 2, "finite"),
    ([*RESOLVE, "-b", ""], 2, "--bootstrap"),
    ([*RESOLVE, "-o", "{fifo}"], 2, "a FIFO"),
    ([*RESOLVE, HASH[::-1], "-o", "{plain}"], 2, "not a directory"),
    ([*RESOLVE, "-v", "--no-dht", "--no-trackers", "--timeout", "0.2"], 1, "no peers"),
    # serve
    (["serve", "{missing}"], 2, "cannot read"),
    (["serve", "{dir}"], 2, "cannot read"),
    (["serve", "{fifo}"], 2, "not a regular file"),
    (["serve", "{garbage}"], 2, "not a valid torrent"),
    ([*SERVE, "--port", "70000"], 2, "--port"),
    ([*SERVE, "--dht-port", "70000"], 2, "--dht-port"),
    ([*SERVE, "--dht-port", "-1"], 2, "--dht-port"),
    # scrape
    (["scrape", "notaurl", HASH], 2, "bad tracker URL"),
    (["scrape", "ftp://127.0.0.1/announce", HASH], 2, "unsupported scheme"),
    (["scrape", "udp://127.0.0.1/announce", HASH], 2, "no port"),
    (["scrape", "http://127.0.0.1:99999/announce", HASH], 2, "bad tracker URL"),
    (["scrape", "udp://127.0.0.1:9/announce", "nothex"], 2, "bad info-hash"),
    (["scrape", "udp://127.0.0.1:9/announce", HASH, "--timeout", "0"], 2, "--timeout"),
    # testnet
    (["testnet", "--port", "70000"], 2, "--port"),
    (["testnet", "--port", "65535", "--nodes", "2"], 2, "no room"),
    (["testnet", "--nodes", "0"], 2, "--nodes"),
    (["testnet", "--duration", "0"], 2, "--duration"),
    (["testnet", "--duration", "-1"], 2, "--duration"),
    (["testnet", "--duration", "nan"], 2, "finite"),
    # crawl
    ([*CRAWL, "--db", "{db}", "--port", "70000"], 2, "--port"),
    ([*CRAWL, "--db", "{db}", "--port", "65530", "--ids", "8"], 2, "no room"),
    ([*CRAWL, "--db", "{db}", "--ids", "0"], 2, "--ids"),
    ([*CRAWL, "--db", "{db}", "--qps", "0"], 2, "--qps"),
    ([*CRAWL, "--db", "{db}", "--duration", "0"], 2, "--duration"),
    ([*CRAWL, "--db", "{db}", "-b", ""], 2, "--bootstrap"),
    ([*CRAWL, "--db", "{dir}", "--duration", "1"], 2, "a directory"),
    ([*CRAWL, "--db", "{fifo}", "--duration", "1"], 2, "a FIFO"),
    (["crawl", "--db", "{db}", "export", "--format", "xml"], 2, "--format"),
    (["crawl", "--db", "{missing}", "export"], 2, "no database"),
    (["crawl", "--db", "{db}", "export", "-v", "--format"], 2, "requires an argument"),
]


def invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def assert_one_line(stderr: str, words: str) -> None:
    assert "Traceback" not in stderr
    assert stderr.startswith("magnetar: ") and stderr.count("\n") == 1, repr(stderr)
    assert words.lower() in stderr.lower(), repr(stderr)


@pytest.mark.parametrize(
    ("args", "code", "words"), CATALOGUE, ids=[" ".join(c[0]) or "-" for c in CATALOGUE]
)
def test_bad_value_is_one_line_and_its_exit_code(
    args: list[str], code: int, words: str, files: dict[str, str]
) -> None:
    code_seen, stdout, stderr = invoke([a.format(**files) for a in args])
    assert code_seen == code, stderr
    assert_one_line(stderr, words)
    assert stdout == ""


def test_the_fifo_is_still_a_fifo_after_the_catalogue(files: dict[str, str]) -> None:
    for args in ([*NODE, "--state", files["fifo"]], [*RESOLVE, "-o", files["fifo"]]):
        assert invoke(args)[0] == 2
    assert stat.S_ISFIFO(os.stat(files["fifo"]).st_mode)


@pytest.fixture
def chardev(tmp_path: Path) -> Iterator[str]:
    """A character device of our own (the same numbers as /dev/null), made in tmp_path."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    path = tmp_path / "device"
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    yield str(path)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([*NODE, "--state", "{dev}"], "a device"),
        ([*RESOLVE, "-o", "{dev}", "--no-dht", "--timeout", "0.2"], "a device"),
        ([*RESOLVE, HASH[::-1], "-o", "{dev}", "--no-dht"], "not a directory"),
        ([*CRAWL, "--db", "{dev}", "--duration", "1"], "a device"),
        (["crawl", "--db", "{dev}", "export"], "a device"),
    ],
    ids=["node-state", "resolve-o", "bulk-o", "crawl-db", "export-db"],
)
def test_a_device_is_refused_and_left_alone(args: list[str], words: str, chardev: str) -> None:
    before = os.stat(chardev)
    code, _, stderr = invoke([a.format(dev=chardev) for a in args])
    assert code == 2, stderr
    assert_one_line(stderr, words)
    after = os.stat(chardev)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert after.st_ino == before.st_ino  # the very same node: nothing replaced it
    assert os.listdir(os.path.dirname(chardev)) == ["device"]  # nothing moved aside


def test_verbose_and_quiet_work_after_the_command() -> None:
    root = logging.getLogger()
    for flags, level in ((["-v"], logging.DEBUG), (["-q"], logging.WARNING)):
        root.setLevel(logging.INFO)
        code, _, stderr = invoke(["ping", "127.0.0.1:70000", *flags])
        assert code == 2 and "No such option" not in stderr
        assert root.level == level


def test_version_option_and_command_agree() -> None:
    code, out, _ = invoke(["--version"])
    code_cmd, out_cmd, _ = invoke(["version"])
    assert code == code_cmd == 0
    assert out == out_cmd and out.startswith("magnetar ")


# --- the environment refuses: subprocesses, each holding a port another command wants -------

MAGNETAR = [sys.executable, "-m", "magnet"]


def magnetar(*args: str, timeout: float = 45) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MAGNETAR, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def last_line(stderr: str) -> str:
    """The error line (log lines of the run may come first)."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("magnetar: "), stderr
    return lines[-1]


def test_node_on_a_taken_udp_port_names_that_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        out = magnetar("node", "--host", "127.0.0.1", "--port", str(port), "-b", "127.0.0.1:9")
    assert out.returncode == 1
    assert f"cannot bind 127.0.0.1:{port} (UDP" in last_line(out.stderr)


def test_node_with_taken_metrics_port_names_the_metrics_port(tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics_port = taken.getsockname()[1]
        out = magnetar(
            "node", "--host", "127.0.0.1", "--port", "0", "-b", "127.0.0.1:9",
            "--metrics", f"127.0.0.1:{metrics_port}", "--state", str(tmp_path / "node.state"),
        )  # fmt: skip
    assert out.returncode == 1
    line = last_line(out.stderr)
    assert f"cannot bind 127.0.0.1:{metrics_port} (TCP, metrics)" in line, line


def test_serve_with_a_taken_dht_port_names_the_dht_port(tmp_path: Path) -> None:
    torrent = tmp_path / "a.torrent"
    torrent.write_bytes(build_torrent(make_info(1000), trackers=[], creation_date=0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        dht_port = taken.getsockname()[1]
        out = magnetar(
            "serve", str(torrent), "--host", "127.0.0.1", "--port", "0",
            "--dht-port", str(dht_port), "-b", "127.0.0.1:9",
        )  # fmt: skip
    assert out.returncode == 1 and out.stdout == ""
    line = last_line(out.stderr)
    assert f"cannot bind 127.0.0.1:{dht_port} (UDP, --dht-port)" in line, line
