"""``magnetar resolve --json`` run as a user runs it, for the interop tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_resolve(
    magnet: str,
    out: Path,
    *extra: str,
    boot: tuple[str, int] | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, Any], str]:
    """(exit code, the JSON record or {} if none, stderr)."""
    argv = [sys.executable, "-m", "magnet", "resolve", magnet]
    if boot is not None:
        argv += ["-b", f"{boot[0]}:{boot[1]}"]
    argv += ["-o", str(out), "--json", "--timeout", f"{timeout:g}", *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 60)
    record: dict[str, Any] = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, record, proc.stderr


def resolve_ok(
    magnet: str, out: Path, *extra: str, boot: tuple[str, int] | None = None
) -> dict[str, Any]:
    """The JSON record of a resolve that must succeed."""
    code, record, err = run_resolve(magnet, out, *extra, boot=boot)
    assert code == 0, f"{record}\n{err}"
    return record
