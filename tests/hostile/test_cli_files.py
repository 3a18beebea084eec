"""What ``magnetar`` writes, and where it refuses to: modes, devices, names, duplicates.

.torrent files get the mode any file of the user's gets (0o666 less the umask) while the
node's state stays 0o600; nothing that is not a regular file is ever replaced (the
library refuses too, not only the command line); a bulk resolve writes each torrent under
its own name and resolves each info-hash once; a directory the user may not write is one
line before any work, not a traceback after it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dht.io.files import NotRegularFileError, current_umask, write_atomic
from dht.io.state import NodeState, load_state_or_fresh, save_state
from magnet.cli.app import app
from tests.hostile.privileges import without_file_override
from tests.hostile.seeds import seeded_links
from tests.magnet.fakepeers import info_hash, make_info


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_umask_is_read_without_changing_it(umask_022: None) -> None:
    assert current_umask() == 0o022
    assert os.umask(0o022) == 0o022  # still what it was


def test_write_atomic_mode_is_less_the_umask_and_private_by_default(
    tmp_path: Path, umask_022: None
) -> None:
    write_atomic(tmp_path / "state", b"x")
    write_atomic(tmp_path / "a.torrent", b"x", mode=0o666)
    assert mode_of(tmp_path / "state") == 0o600
    assert mode_of(tmp_path / "a.torrent") == 0o644
    os.umask(0o077)
    write_atomic(tmp_path / "a.torrent", b"y", mode=0o666)
    assert mode_of(tmp_path / "a.torrent") == 0o600


def test_state_file_stays_private(tmp_path: Path, umask_022: None) -> None:
    save_state(tmp_path / "node.state", NodeState(node_id=b"\x01" * 20))
    assert mode_of(tmp_path / "node.state") == 0o600


def test_write_atomic_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name in ("fifo", "dir"):
        with pytest.raises(NotRegularFileError):
            write_atomic(tmp_path / name, b"x")
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "fifo"]  # no temp left


def test_write_atomic_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"old")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    write_atomic(tmp_path / "link", b"new")
    assert (tmp_path / "link").is_symlink()
    assert (tmp_path / "real").read_bytes() == b"new"


def unblock_readers_of(fifo: Path, after: float = 5.0) -> None:
    """Should the code under test open ``fifo`` to read (it must not), a writer comes and
    goes after ``after`` seconds, so the test fails instead of hanging."""

    def writer() -> None:
        deadline = time.monotonic() + after + 5.0
        time.sleep(after)
        while time.monotonic() < deadline:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                return
            except OSError:  # ENXIO: no reader, as it should be
                time.sleep(0.1)

    threading.Thread(target=writer, daemon=True).start()


def test_state_on_a_fifo_is_reported_and_left_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "node.state"
    os.mkfifo(fifo)
    unblock_readers_of(fifo)
    state, problem = load_state_or_fresh(fifo)  # an open() would block here
    assert state is None and problem is not None and "FIFO" in problem
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.state"]  # not moved aside


def resolve(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["resolve", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_resolved_torrent_gets_the_umask_mode(tmp_path: Path, umask_022: None) -> None:
    info = make_info(3000, name="public")
    with seeded_links([info]) as links:
        code, _, stderr = resolve(
            links[0], "-o", str(tmp_path / "a.torrent"), "--no-dht", "--timeout", "20"
        )
    assert code == 0, stderr
    assert mode_of(tmp_path / "a.torrent") == 0o644


def test_two_torrents_of_one_name_are_two_files(tmp_path: Path) -> None:
    infos = [make_info(3000, name="same"), make_info(5000, name="same")]
    with seeded_links(infos) as links:
        code, stdout, stderr = resolve(*links, "-o", str(tmp_path), "--no-dht", "--timeout", "20")
    assert code == 0, stdout + stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    assert len(written) == 2 and "same.torrent" in written, written
    hashes = {info_hash(i).hex() for i in infos}
    renamed = next(name for name in written if name != "same.torrent")
    assert renamed.removeprefix("same.").removesuffix(".torrent") in hashes
    assert "written for another link" in stderr  # and it says so


def test_the_same_info_hash_twice_is_resolved_once(tmp_path: Path) -> None:
    info = make_info(3000, name="once")
    with seeded_links([info]) as links:
        bare = info_hash(info).hex()
        same = links[0] + "&dn=another+name"
        code, stdout, stderr = resolve(
            links[0], links[0], same, bare, "-o", str(tmp_path), "--no-dht", "--timeout", "20"
        )
    assert code == 0, stdout + stderr
    assert stdout.count("\n") == 1, stdout  # one result line
    assert "3 links left out" in stderr
    assert [p.name for p in tmp_path.iterdir()] == ["once.torrent"]


def test_duplicates_of_a_failing_link_fail_once(tmp_path: Path) -> None:
    link = "0123456789abcdef0123456789abcdef01234567"
    code, stdout, stderr = resolve(link, link, "--no-dht", "--no-trackers", "--timeout", "0.2")
    assert code == 1
    assert "FAILED" not in stdout and stderr.count("no peers known") == 1, stdout + stderr


def run_unprivileged(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "magnet", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        preexec_fn=without_file_override(),
    )


def test_unwritable_output_directory_is_one_line_before_any_work(tmp_path: Path) -> None:
    info = make_info(3000, name="blocked")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        with seeded_links([info]) as links:
            single = run_unprivileged(
                ["resolve", links[0], "-o", str(locked / "x.torrent"), "--no-dht"], tmp_path
            )
            inside = run_unprivileged(
                ["resolve", links[0], "-o", str(locked / "sub" / "x.torrent"), "--no-dht"],
                tmp_path,
            )
            bulk = run_unprivileged(
                ["resolve", links[0], "0" * 40, "-o", str(locked), "--no-dht"], tmp_path
            )
    finally:
        locked.chmod(0o755)
    for out in (single, inside, bulk):
        assert out.returncode == 1, out.stderr
        assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
        assert "permission denied" in out.stderr.lower()
        assert out.stdout == ""  # refused before resolving anything
    assert list(locked.iterdir()) == []


def test_unsearchable_output_directory_is_one_line(tmp_path: Path) -> None:
    info = make_info(3000, name="hidden")
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o000)
    try:
        with seeded_links([info]) as links:
            out = run_unprivileged(
                ["resolve", links[0], "-o", str(closed / "dir" / "x.torrent"), "--no-dht"],
                tmp_path,
            )
    finally:
        closed.chmod(0o755)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr


def test_unreadable_links_file_is_one_line_exit_2(tmp_path: Path) -> None:
    links = tmp_path / "links.txt"
    links.write_text("0123456789abcdef0123456789abcdef01234567\n")
    links.chmod(0o000)
    try:
        out = run_unprivileged(["resolve", str(links), "--no-dht"], tmp_path)
    finally:
        links.chmod(0o644)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "cannot read" in out.stderr, out.stderr
