"""magnetar's magnet-link resolver: magnet URIs, the peer wire and metadata exchange.

``await magnet.resolve(uri)`` fetches and verifies the info dict a magnet link names and
returns a ``ResolveResult`` (``.info`` raw bytes, ``.meta`` parsed, ``.torrent()`` a complete
.torrent file). Submodules load on first use to keep start-up fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from magnet.io.bulk import resolve_many
    from magnet.io.resolve import ResolveError, ResolveResult, resolve
    from magnet.uri import MagnetError, MagnetLink, parse

__all__ = [
    "MagnetError",
    "MagnetLink",
    "ResolveError",
    "ResolveResult",
    "parse",
    "resolve",
    "resolve_many",
]

_LAZY = {
    "resolve": "magnet.io.resolve",
    "ResolveError": "magnet.io.resolve",
    "ResolveResult": "magnet.io.resolve",
    "resolve_many": "magnet.io.bulk",
    "MagnetLink": "magnet.uri",
    "MagnetError": "magnet.uri",
    "parse": "magnet.uri",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'magnet' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
