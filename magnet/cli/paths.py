"""The files a long-running command keeps, checked before it starts: ``--state``, ``--db``.

A command that runs for a day must never replace something that is not a file of ours: a
device (``--state /dev/null`` run as root), a directory, a FIFO. The check fails in one
line: exit 2 when the path is the wrong kind of thing (bad input), exit 1 when the system
refuses (permission denied: the environment, not the words typed). ``resolve -o`` has the
same check in ``magnet.io.output.check_output`` (already loaded there: resolve starts fast).
"""

from __future__ import annotations

from magnet.cli.options import EXIT_NOT_FOUND, fail

__all__ = ["check_file_target"]


def check_file_target(path: str, option: str) -> None:
    """``path`` will be replaced by a file of ours: it must be a regular file or not exist."""
    from dht.io.files import NotRegularFileError, check_replaceable

    try:
        check_replaceable(path)
    except NotRegularFileError as exc:
        fail(f"{option} {path} is {exc.kind}, not a regular file")
    except OSError as exc:
        fail(f"cannot use {option} {path}: {exc.strerror or exc}", EXIT_NOT_FOUND)
