"""magnetar's version, and every form of it that goes on the wire or into a file.

One string, ``__version__``, is the source: packaging reads it (pyproject.toml), and from it
come the KRPC ``v`` value our DHT messages carry (BEP 5: two letters naming the client, two
bytes of version), the Azureus-style peer-id prefix of the peer wire (BEP 20), and the
``"magnetar X.Y.Z"`` name sent in extension handshakes (BEP 10) and written as a .torrent's
``created by``. It lives in ``dht`` because ``dht`` never imports ``magnet``.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CLIENT_NAME", "KRPC_VERSION", "PEER_ID_PREFIX", "__version__"]

__version__: Final = "0.1.0"

_MAJOR, _MINOR, _PATCH = (int(part) for part in __version__.split("."))

# BEP 5 ``v``: client code "MR", then major and minor as one byte each (peers show "MR 0.1").
KRPC_VERSION: Final = b"MR" + bytes((_MAJOR, _MINOR))
# BEP 20, Azureus style: '-', client code, four digits (major, minor on two, patch), '-'.
PEER_ID_PREFIX: Final = f"-MR{_MAJOR}{_MINOR:02d}{_PATCH}-".encode()
CLIENT_NAME: Final = f"magnetar {__version__}"
