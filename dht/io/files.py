"""Files replaced whole or not at all: ``write_atomic``.

The node's state file and the .torrent files ``magnetar resolve`` writes must never be seen
half written, even after a crash or ``kill -9`` mid-write. The protocol: a uniquely named
temporary file beside the target, written and fsynced, renamed over the target, then the
directory fsynced so the rename itself survives a power loss. Temp files that a killed
writer left behind are swept once they are old enough not to be another writer's.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time

__all__ = ["STALE_TEMP_S", "write_atomic"]

STALE_TEMP_S = 600.0  # temp files of a write killed midway are removed after this long


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; raises OSError if the disk refuses.

    The directory must exist. The file gets a temporary file's permissions (0o600).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    # A unique temp name: two writers (a misconfiguration) then never rename each other's
    # half-written file into place.
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
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
