"""What ``resolve`` leaves behind: the .torrent file on disk and the record printed about it.

The file is written atomically (``dht.io.files.write_atomic``) so that a reader never sees
half a torrent, under a name that cannot escape the chosen directory, with the mode any new
file of the user's gets (0o666 less the umask; the node's state file stays private). A
bulk resolve names each file once: two torrents of one name get ``unique_path``'s second
name rather than one overwriting the other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dht.addresses import format_hostport
from dht.io import files
from magnet.io.resolve import ResolveError, ResolveResult
from magnet.torrentfile import safe_name

__all__ = [
    "TORRENT_MODE",
    "OutputError",
    "check_output",
    "error_record",
    "human_size",
    "output_path",
    "result_record",
    "unique_path",
    "write_atomic",
]

TORRENT_MODE = 0o666  # less the umask, as any file the user makes: a .torrent is no secret


class OutputError(Exception):
    """``-o`` cannot be used; ``reason`` is one line. ``denied``: the system refuses
    (permission), else the path is the wrong kind of thing (bad input)."""

    def __init__(self, reason: str, *, denied: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.denied = denied


def check_output(output: str, *, directory: bool) -> None:
    """Check before resolving that ``output`` can take what ``output_path`` will put there:
    a directory we may write (``directory``, or an existing one), else a regular file or
    nothing yet, in a directory we may write. Never a device. Raises ``OutputError``."""
    if directory or os.path.isdir(output):
        if os.path.lexists(output) and not os.path.isdir(output):
            raise OutputError(f"-o {output} is not a directory (several links write several files)")
        _check_writable(output)
        return
    try:
        files.check_replaceable(output)
    except files.NotRegularFileError as exc:
        raise OutputError(f"-o {output} is {exc.kind}, not a regular file") from None
    except OSError as exc:
        raise OutputError(f"cannot use -o {output}: {exc.strerror or exc}", denied=True) from None
    _check_writable(os.path.dirname(output) or ".")


def _check_writable(directory: str) -> None:
    # The directory, or the nearest one above that exists (the rest will be made in it).
    probe = os.path.abspath(directory)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise OutputError(f"cannot use -o {directory}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        reason = f"cannot write in {probe} (-o {directory}): permission denied"
        raise OutputError(reason, denied=True)


def output_path(result: ResolveResult, output: str | None, *, directory: bool = False) -> Path:
    """Where to write: ``output`` itself, or a safe name inside it (or the current directory)."""
    fallback = result.link.info_hash_hex
    name = safe_name(result.link.name or result.meta.name, fallback) + ".torrent"
    if output is None:
        return Path(name)
    path = Path(output)
    if directory or _is_dir(path):
        return path / name
    return path


def _is_dir(path: Path) -> bool:
    # Path.is_dir raises on EACCES (a path inside a directory we may not search): then the
    # write that follows fails with that error, reported in one line, not a traceback here.
    try:
        return path.is_dir()
    except OSError:
        return False


def unique_path(path: Path, info_hash_hex: str, taken: set[Path]) -> Path:
    """``path``, or when another link of this run already wrote it, the same name with the
    info-hash added (``name.<hash>.torrent``): two torrents may share a name, never a file."""
    if path not in taken:
        return path
    return path.with_name(f"{path.stem}.{info_hash_hex}{path.suffix}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write a .torrent whole or not at all, creating its directory if need be.

    :raises OSError: the directory cannot be made or written, or ``path`` is not a regular
        file (``dht.io.files.NotRegularFileError``: a device or a directory is never
        replaced).
    """
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    files.write_atomic(path, data, mode=TORRENT_MODE)


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def result_record(result: ResolveResult, path: Path | None) -> dict[str, Any]:
    meta = result.meta
    return {
        "ok": True,
        "info_hash": result.link.info_hash_hex,
        "info_hash_v1": meta.info_hash_v1.hex() if meta.info_hash_v1 else None,
        "info_hash_v2": meta.info_hash_v2.hex() if meta.info_hash_v2 else None,
        "name": meta.name,
        "size": meta.total_size,
        "files": [{"path": "/".join(f.path), "length": f.length} for f in meta.files],
        "output": str(path) if path is not None else None,
        "seconds": round(result.seconds, 4),
        "peer": format_hostport(result.peer),
        "source": result.source,
        "transport": result.transport,
        "connections": result.connections,
        "trace": [{"phase": p, "seconds": s} for p, s in result.trace],
        "sources": result.sources,
        "complete": result.complete,
        "piece_layers": {
            "status": result.layers_status,
            "files": len(result.piece_layers or {}),
            "hashes": sum(len(v) for v in (result.piece_layers or {}).values()) // 32,
            "peers": [format_hostport(p) for p in result.layer_peers],
            "seconds": round(result.layers_seconds, 4),
        },
    }


def error_record(link: str, error: ResolveError) -> dict[str, Any]:
    record: dict[str, Any] = {"ok": False, "link": link, "error": error.reason, "kind": error.kind}
    if error.stats is not None:
        record["peers_found"] = error.stats.known
        record["peers_connected"] = error.stats.connected
    return record
