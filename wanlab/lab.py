"""The WAN lab as one context manager, for tests and benchmarks (and the ``run`` command).

``WanLab`` sets up the network side (``wanlab.netns.LabNetwork``), hands the TUN device to an
emulator process (``python -m wanlab _loop``, see ``wanlab.emulator``), and on exit stops it,
keeps its final counters in ``stats`` and undoes the network side. Driver code: root, inside a
private network namespace only (the set-up refuses anywhere else).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from wanlab.emulator import READY_LINE
from wanlab.netns import LabNetwork, NetnsError
from wanlab.profiles import Profile

__all__ = ["WanLab"]

_READY_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


class WanLab:
    """An emulated internet between ``hosts`` addresses of ``prefix``, shaped by ``profile``.

    Usage::

        with WanLab(Profile(delay_ms=(10, 150), jitter_ms=5, loss=0.02), hosts=40) as lab:
            a, b = lab.addresses[:2]  # bind sockets to these: traffic between them is shaped
        lab.stats["lost"]  # the emulator's counters (``WanStats``), once it has stopped

    The pairs' delays depend on the profile alone, so every run sees the same ones; jitter and
    loss come from ``random.Random(profile.seed)``, so they repeat for the same packet sequence.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        prefix: str = "198.18.0.0/15",
        hosts: int = 40,
        tun_name: str = "wanlab0",
    ) -> None:
        self.profile = profile
        self.network = LabNetwork(prefix=prefix, hosts=hosts, tun_name=tun_name)
        self.stats: dict[str, int] = {}
        self._process: subprocess.Popen[str] | None = None

    @property
    def addresses(self) -> list[str]:
        """The lab's host addresses (``.1`` first), bound on the TUN device."""
        return self.network.addresses

    @property
    def emulator_pid(self) -> int | None:
        """The emulator process's id while the lab is up."""
        return None if self._process is None else self._process.pid

    def __enter__(self) -> WanLab:
        self.network.__enter__()
        try:
            self._start_emulator()
        except BaseException:
            self._stop_emulator()
            self.network.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            status = self._stop_emulator()
        finally:
            self.network.close()
        # A dead emulator black-holes the lab: say so, unless the body already failed.
        if status not in {0, None} and exc is None:
            raise NetnsError(
                f"the emulator exited with status {status} during the run (its error is above)"
            )

    def _start_emulator(self) -> None:
        fd = self.network.tun_fd
        assert fd is not None
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            part for part in (_PACKAGE_PARENT, env.get("PYTHONPATH", "")) if part
        )
        self._process = subprocess.Popen(
            [sys.executable, "-m", "wanlab", "_loop", "--fd", str(fd), self.profile.to_json()],
            pass_fds=[fd],
            # Our end of its stdin closes when we die, which stops it: no orphan holds the TUN.
            stdin=subprocess.PIPE,
            # Its own process group: a Ctrl-C meant for the command under test does not stop
            # the network under that command's feet; we stop it, after the command.
            process_group=0,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        # The device lives while any fd holds it: from here on the emulator's is the only one.
        self.network.release_fd()
        assert self._process.stdout is not None
        line = _readline_within(self._process, _READY_TIMEOUT_S)
        if line.strip() != READY_LINE:
            raise NetnsError(f"the emulator did not start (said {line.strip()!r})")

    def _stop_emulator(self) -> int | None:
        """Stop the emulator, keep its counters; its exit status if it had died on its own."""
        process, self._process = self._process, None
        if process is None:
            return None
        died = process.poll()
        if died is None:
            process.terminate()
        try:
            out, _ = process.communicate(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise NetnsError("the emulator did not stop on SIGTERM; killed") from None
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                self.stats = {key: int(value) for key, value in json.loads(line).items()}
                break
        return died


def _readline_within(process: subprocess.Popen[str], timeout_s: float) -> str:
    """The first line of ``process``'s stdout, or ``""`` if none comes within ``timeout_s``."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            return ""
    return process.stdout.readline()
