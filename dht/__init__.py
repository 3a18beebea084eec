"""magnetar's BitTorrent Mainline DHT (BEP 5 and friends).

The protocol logic lives in sans-IO cores (``dht.protocol.DhtProtocol`` and the units it is
built from); ``dht.Node`` drives one over an asyncio UDP socket, and ``dht.simulation`` drives
many on a virtual clock. Submodules are imported on first use to keep start-up fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dht.config import DhtConfig
    from dht.io.node import DhtQueryError, Node, PeerStream
    from dht.protocol import DhtProtocol

__all__ = ["DhtConfig", "DhtProtocol", "DhtQueryError", "Node", "PeerStream"]

_LAZY = {
    "Node": "dht.io.node",
    "PeerStream": "dht.io.node",
    "DhtQueryError": "dht.io.node",
    "DhtConfig": "dht.config",
    "DhtProtocol": "dht.protocol",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dht' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
