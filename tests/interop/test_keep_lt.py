"""Keeping libtorrent's BEP 44 items alive from magnetar, with libtorrent 2.1.1 on loopback.

A magnetar node keeps a mutable item a libtorrent node put: libtorrent's nodes accept the
re-put as got (same seq and signature, no private key), a refresh follows the libtorrent
owner's newer seq, and a refresh whose closest nodes all hold the latest sends no put.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from dht.io.node import Node
from dht.items import MutableItem, mutable_target, public_key
from dht.keeper import RefreshItem

if TYPE_CHECKING:
    from tests.interop.ltswarm import LtNode, LtSwarm

pytestmark = pytest.mark.interop

SEED = hashlib.sha256(b"magnetar keeps libtorrent's items").digest()
SALT = b"kept"


@pytest.fixture(scope="module")
def swarm() -> Iterator[LtSwarm]:
    pytest.importorskip("libtorrent")
    from tests.interop.ltswarm import LtSwarm

    with LtSwarm(8, first_ip="127.0.7.2") as s:
        yield s


def lt_put(node: LtNode, data: bytes, timeout: float = 20.0) -> None:
    """libtorrent puts ``data`` under SEED's key and SALT (the next seq), and stores it."""
    import libtorrent as lt

    h = bytearray(hashlib.sha512(SEED).digest())  # libtorrent's expanded secret key
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    node.session.dht_put_mutable_item(bytes(h), public_key(SEED), data, SALT)

    def done(a: Any) -> bool:
        return isinstance(a, lt.dht_put_alert) and a.num_success > 0

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(done(a) for a in node._pop(0.05)):
            return
    raise TimeoutError(f"{node}: no put alert; recent: {node.recent()}")


async def refresh(node: Node, item: MutableItem, *, may_skip: bool) -> RefreshItem:
    t = RefreshItem(node.core.new_request_id(), item, may_skip=may_skip)
    node.core.lookups.start(t, node._now())
    await node._run_lookups([t.id])
    return t


def test_magnetar_keeps_and_follows_an_item_libtorrent_put(swarm: LtSwarm) -> None:
    target = mutable_target(public_key(SEED), SALT)
    lt_put(swarm[1], b"one")

    async def main() -> None:
        async with Node("127.0.0.1", 0, bootstrap_routers=[swarm[0].addr]) as node:
            await node.bootstrap()
            kept = await node.keep(target, salt=SALT)
            assert isinstance(kept, MutableItem) and kept.value() == b"one"
            assert node.core.republisher.kept == 1
            # libtorrent's nodes take the re-put as got: same seq, its signature, no key.
            again = await refresh(node, kept, may_skip=False)
            assert again.put_to >= 6 and again.announced == again.put_to, again.errors
            # The owner writes again; the refresh follows it instead of pushing seq 1 back.
            await asyncio.to_thread(lt_put, swarm[3], b"two")
            newer = await refresh(node, kept, may_skip=False)
            item = newer.final_item()
            assert isinstance(item, MutableItem) and item.seq > kept.seq
            assert item.value() == b"two" and newer.announced == newer.put_to > 0, newer.errors
            # Every one of the closest libtorrent nodes now holds the latest: no put.
            fresh = await refresh(node, item, may_skip=True)
            assert fresh.skipped and fresh.put_to == 0

    asyncio.run(asyncio.wait_for(main(), 90))
