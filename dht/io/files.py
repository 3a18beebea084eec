"""Files replaced whole or not at all: ``write_atomic``.

The node's state file and the .torrent files ``magnetar resolve`` writes must never be seen
half written, even after a crash or ``kill -9`` mid-write. The protocol: a uniquely named
temporary file beside the target, written and fsynced, renamed over the target, then the
directory fsynced so the rename itself survives a power loss. Temp files that a killed
writer left behind are swept once they are old enough not to be another writer's.

Only a regular file is ever replaced: a path naming a device, a directory or a FIFO is
refused (``NotRegularFileError``) before anything is written, so ``--state /dev/null`` run as
root cannot swap a device node for a file. A symlink to a regular file is followed: its
target is replaced and the link stays. The new file's mode is ``mode`` less the umask, as
``open`` would make it (state files keep 0o600, .torrent files ask for 0o666).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import time

__all__ = [
    "STALE_TEMP_S",
    "NotRegularFileError",
    "check_replaceable",
    "current_umask",
    "write_atomic",
]

STALE_TEMP_S = 600.0  # temp files of a write killed midway are removed after this long


class NotRegularFileError(OSError):
    """The path exists and is not a regular file (a device, a directory, a FIFO...)."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(errno.EEXIST, f"{kind}, not a regular file", path)
        self.kind = kind


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def check_replaceable(path: str | os.PathLike[str]) -> None:
    """Raise ``NotRegularFileError`` if ``path`` exists (through symlinks) and is not a
    regular file; a missing path or a dangling link is fine (it will be created)."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(path, _kind(st.st_mode))


def current_umask() -> int:
    """The process umask, read without changing it where the kernel says (Linux >= 4.7).

    ``os.umask`` can only be read by setting it; between the two calls another thread's
    new file would get the temporary mask. /proc/self/status has it without that race.
    """
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # the fallback: as brief as possible, and never looser
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically; raises OSError if the disk refuses.

    The directory must exist. The file gets ``mode & ~umask`` (default 0o600: private).
    :raises NotRegularFileError: ``path`` is a device, a directory or anything but a file.
    """
    path = os.fspath(path)
    check_replaceable(path)
    if os.path.islink(path):
        path = os.path.realpath(path)  # replace what the link points at; keep the link
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    # A unique temp name: two writers (a misconfiguration) then never rename each other's
    # half-written file into place.
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode != 0o600:  # mkstemp made it 0o600 whatever the umask
                os.fchmod(f.fileno(), mode & ~current_umask() & 0o7777)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)  # makes the rename itself durable
    _remove_stale_temps(directory, base)


def _fsync_dir(directory: str) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        dfd = os.open(directory, flags)
    except OSError:
        return  # some platforms cannot open a directory; the rename is still atomic
    try:
        with contextlib.suppress(OSError):
            os.fsync(dfd)
    finally:
        os.close(dfd)


def _remove_stale_temps(directory: str, base: str) -> None:
    # A write killed between mkstemp and rename leaves its temp file behind; without this a
    # node crash-looping under systemd would fill the state directory.
    prefix = f".{base}."
    cutoff = time.time() - STALE_TEMP_S
    with contextlib.suppress(OSError), os.scandir(directory) as it:
        for entry in it:
            if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
