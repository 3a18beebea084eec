"""The paths a command writes, checked before it starts: ``--state``, ``-o`` and ``--db``.

A command that runs for a minute (or a day) should not find out at the end that it cannot
write where it was told, and must never replace something that is not a file of ours: a
device (``--state /dev/null`` run as root), a directory, a FIFO. Each check fails in one
line: exit 2 when the path is the wrong kind of thing (bad input), exit 1 when the system
refuses (permission denied: the environment, not the words typed).
"""

from __future__ import annotations

import os

from magnet.cli.options import EXIT_NOT_FOUND, fail

__all__ = ["check_directory_target", "check_file_target", "check_output_target"]


def check_file_target(path: str, option: str) -> None:
    """``path`` will be replaced by a file of ours: it must be a regular file or not exist."""
    from dht.io.files import NotRegularFileError, check_replaceable

    try:
        check_replaceable(path)
    except NotRegularFileError as exc:
        fail(f"{option} {path} is {exc.kind}, not a regular file")
    except OSError as exc:
        fail(f"cannot use {option} {path}: {exc.strerror or exc}", EXIT_NOT_FOUND)


def check_directory_target(path: str, option: str) -> None:
    """Files will be written inside ``path``: a directory we may write, or one we may make."""
    if os.path.lexists(path) and not os.path.isdir(path):
        fail(f"{option} {path} is not a directory (several links write several files)")
    _check_writable(path, option)


def check_output_target(path: str, option: str) -> None:
    """One file will be written at ``path``, or inside it when it is a directory."""
    if os.path.isdir(path):
        _check_writable(path, option)
        return
    check_file_target(path, option)
    _check_writable(os.path.dirname(path) or ".", option)


def _check_writable(directory: str, option: str) -> None:
    # The directory, or the nearest one above that exists (the rest will be made in it).
    probe = os.path.abspath(directory)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        fail(f"cannot use {option} {directory}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        fail(f"cannot write in {probe} ({option} {directory}): permission denied", EXIT_NOT_FOUND)
