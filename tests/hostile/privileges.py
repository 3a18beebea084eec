"""Running a command as a user the file system can say no to, even when the tests run as root.

Root ignores permission bits (``CAP_DAC_OVERRIDE``, ``CAP_DAC_READ_SEARCH``), so a test that
needs "permission denied" cannot get it from ``chmod`` alone. ``without_file_override`` gives a
``preexec_fn`` that drops those two capabilities from the child's bounding set before it
runs the command: the child keeps uid 0 (and can read /root, where Python may live) but
obeys ``chmod``. As another user nothing needs dropping.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

import pytest

__all__ = ["without_file_override"]

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def _drop() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def without_file_override() -> Callable[[], None] | None:
    """A ``preexec_fn`` under which permission bits apply (None: they already do); skips the
    test where the capabilities cannot be dropped."""
    if os.geteuid() != 0:
        return None
    try:
        import subprocess

        subprocess.run(["true"], preexec_fn=_drop, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {exc}")
    return _drop
