"""The WAN lab's packet loop: read the TUN device, hold packets, write them back when due.

The driver around ``wanlab.schedule.WanSchedule``: it owns the TUN file descriptor and the
monotonic clock, and nothing else. One ``select`` waits for the device, a stop signal, or the
schedule's next release; each wake-up reads what the device has (a bounded burst, so that
releases stay on time under load), schedules it, and writes back every packet that is due.
It runs in its own process (``python -m wanlab _loop``, started by ``wanlab.lab.WanLab``) so
that the code under test never competes with it for the GIL; on SIGTERM or SIGINT, or when
the parent's end of its stdin closes, it stops and reports its counters as one JSON line.
"""

from __future__ import annotations

import errno
import json
import os
import random
import select
import signal
import sys
import time
from types import FrameType

from wanlab.profiles import Profile
from wanlab.schedule import WanSchedule

__all__ = ["READY_LINE", "run_loop", "serve_fd"]

READY_LINE = "wanlab ready"
_MAX_PACKET = 65535
_READ_BURST = 256
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_NICENESS = -5


def run_loop(tun_fd: int, schedule: WanSchedule, stop_fds: list[int]) -> None:
    """Move packets from ``tun_fd`` through ``schedule`` until a ``stop_fds`` is readable."""
    clock = time.monotonic
    read, write = os.read, os.write
    receive, due = schedule.receive, schedule.packets_due
    watched = [tun_fd, *stop_fds]
    write_failures = 0
    while True:
        timer = schedule.get_timer()
        timeout = None if timer is None else max(0.0, timer - clock())
        ready, _, _ = select.select(watched, [], [], timeout)
        if any(fd in ready for fd in stop_fds):
            break
        now = clock()
        if ready:
            for _ in range(_READ_BURST):
                try:
                    packet = read(tun_fd, _MAX_PACKET)
                except BlockingIOError:
                    break
                receive(packet, now)
            now = clock()
        for packet in due(now):
            try:
                write(tun_fd, packet)
            except OSError as exc:
                # A full receive path drops the packet, as a congested router would.
                if exc.errno not in {errno.EAGAIN, errno.ENOBUFS, errno.EINVAL}:
                    raise
                write_failures += 1
    if write_failures:
        print(f"wanlab: {write_failures} packets dropped on write", file=sys.stderr)


def serve_fd(tun_fd: int, profile: Profile, parent_fd: int | None = None) -> dict[str, int]:
    """Run the loop on an inherited TUN fd until SIGTERM/SIGINT; return the final counters.

    ``parent_fd`` is a pipe the parent holds open: when it reads as ready (the parent died
    without stopping us), the loop stops too, so an orphan never keeps the device alive.
    """
    stop_read, stop_write = os.pipe()
    os.set_blocking(stop_write, False)

    def on_stop(signum: int, frame: FrameType | None) -> None:
        try:
            os.write(stop_write, b"x")
        except BlockingIOError:
            pass

    for signum in _STOP_SIGNALS:
        signal.signal(signum, on_stop)
    try:
        # The network goes before the programs under test: a late release is a delay that
        # was not asked for. Root may raise priority; anyone else just runs at their own.
        os.setpriority(os.PRIO_PROCESS, 0, _NICENESS)
    except OSError:
        pass
    os.set_blocking(tun_fd, False)
    schedule = WanSchedule(profile, random.Random(profile.seed))
    print(READY_LINE, flush=True)
    run_loop(tun_fd, schedule, [stop_read] if parent_fd is None else [stop_read, parent_fd])
    return schedule.stats.as_dict()


def main(tun_fd: int, profile_json: str) -> int:
    """Entry of ``python -m wanlab _loop``: serve, then print the counters as JSON."""
    stats = serve_fd(tun_fd, Profile.from_json(profile_json), parent_fd=sys.stdin.fileno())
    print(json.dumps(stats), flush=True)
    return 0
