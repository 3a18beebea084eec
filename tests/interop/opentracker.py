"""Debian's opentracker on loopback, for interop tests and benchmarks.

``with OpenTracker([info_hash, ...]) as tracker:`` starts ``opentracker`` bound to 127.0.0.1
on a free port (TCP for HTTP, the same number in UDP for BEP 15), with the given info hashes
in its whitelist, and stops it on exit. Debian builds opentracker with a whitelist (only
listed torrents may be announced) and for IPv4 only. It chroots into its directory before
reading the whitelist, so the file is named relative to that directory; as root it drops to
``nobody``, so the directory must be world-readable. Install: ``apt-get install -y opentracker``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import quote_from_bytes

__all__ = ["OpenTracker", "OpenTrackerError", "find_opentracker"]

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class OpenTrackerError(RuntimeError):
    """opentracker is missing, or did not start or answer in time."""


def find_opentracker() -> str | None:
    """Path of the opentracker binary, or None (Debian puts it in /usr/bin)."""
    return shutil.which("opentracker") or next(
        (p for p in ("/usr/bin/opentracker", "/usr/sbin/opentracker") if os.access(p, os.X_OK)),
        None,
    )


def _free_port() -> int:
    """A port free in both TCP and UDP on HOST (opentracker takes the same number for both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((HOST, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((HOST, port))
                except OSError:
                    continue
        return port
    raise OpenTrackerError("no free port on loopback")


class OpenTracker:
    """A running opentracker: ``udp_url`` and ``http_url`` are its announce URLs."""

    def __init__(self, whitelist: Sequence[bytes], *, binary: str | None = None) -> None:
        if not whitelist or any(len(h) != 20 for h in whitelist):
            raise ValueError("the whitelist needs at least one 20-byte info hash")
        self.whitelist = list(whitelist)
        self.binary = binary or find_opentracker()
        self.port = 0
        self.log_path: Path | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def udp_url(self) -> str:
        return f"udp://{HOST}:{self.port}/announce"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}/announce"

    def __enter__(self) -> OpenTracker:
        if self.binary is None:
            raise OpenTrackerError("opentracker not found (apt-get install -y opentracker)")
        self._dir = tempfile.TemporaryDirectory(prefix="opentracker-")
        root = Path(self._dir.name)
        # The whitelist is read after chroot and privilege drop to nobody.
        root.chmod(0o755)
        whitelist = root / "whitelist.txt"
        whitelist.write_text("".join(f"{h.hex()}\n" for h in self.whitelist))
        whitelist.chmod(0o644)
        self.log_path = root / "opentracker.log"
        try:
            for _ in range(3):  # a port taken between probe and bind: try another
                self.port = _free_port()
                if self._start(root):
                    return self
            raise OpenTrackerError(f"opentracker did not start: {self._log_tail()}")
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _start(self, root: Path) -> bool:
        assert self.binary is not None and self.log_path is not None
        # -i must come before -p/-P: opentracker binds as it parses its arguments.
        argv = [self.binary, "-i", HOST, "-p", str(self.port), "-P", str(self.port)]
        argv += ["-d", str(root), "-w", "whitelist.txt"]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv, cwd=root, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                return False
            if self._whitelist_loaded():
                return True
            time.sleep(0.05)
        self.stop()
        raise OpenTrackerError(f"opentracker gave no answer in {START_TIMEOUT_S} s")

    def _whitelist_loaded(self) -> bool:
        # The whitelist is loaded by a thread of its own after start-up: an announce before
        # that is refused. Ask with event=stopped so that no peer is left behind.
        query = "&".join(
            [
                f"info_hash={quote_from_bytes(self.whitelist[0], safe='')}",
                f"peer_id={quote_from_bytes(b'-OT-readiness-probe-', safe='')}",
                "port=1&uploaded=0&downloaded=0&left=0&compact=1&event=stopped",
            ]
        )
        try:
            with urllib.request.urlopen(f"{self.http_url}?{query}", timeout=1.0) as resp:
                return b"failure reason" not in resp.read(4096)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _log_tail(self) -> str:
        try:
            assert self.log_path is not None
            return " ".join(self.log_path.read_text(errors="replace").split()[-30:])
        except (OSError, AssertionError):
            return "(no log)"
