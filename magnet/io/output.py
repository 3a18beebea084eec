"""What ``resolve`` leaves behind: the .torrent file on disk and the record printed about it.

The file is written atomically (``dht.io.files.write_atomic``) so that a reader never sees
half a torrent, under a name that cannot escape the chosen directory, with the mode any new
file of the user's gets (0o666 less the umask; the node's state file stays private). A
bulk resolve names each file once: two torrents of one name get ``unique_path``'s second
name rather than one overwriting the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dht.addresses import format_hostport
from dht.io import files
from magnet.io.resolve import ResolveError, ResolveResult
from magnet.torrentfile import safe_name

__all__ = [
    "TORRENT_MODE",
    "error_record",
    "human_size",
    "output_path",
    "result_record",
    "unique_path",
    "write_atomic",
]

TORRENT_MODE = 0o666  # less the umask, as any file the user makes: a .torrent is no secret


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
        "trace": [{"phase": p, "seconds": s} for p, s in result.trace],
        "sources": result.sources,
    }


def error_record(link: str, error: ResolveError) -> dict[str, Any]:
    record: dict[str, Any] = {"ok": False, "link": link, "error": error.reason, "kind": error.kind}
    if error.stats is not None:
        record["peers_found"] = error.stats.known
        record["peers_connected"] = error.stats.connected
    return record
