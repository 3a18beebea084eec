"""``magnetar node --state`` restarted where no bootstrap router resolves and nobody answers.

The node must shut down cleanly and keep what its state file knew: a node that could not
join must not save an empty table over the contacts it was restored from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

import dht.io.node as node_mod
from dht.io.daemon import NodeService, serve_node
from dht.io.state import NodeState, load_state, save_state
from dht.wire import Addr, NodeContact

pytestmark = pytest.mark.timeout(60)

NODE_ID = b"\x07" * 20


async def nothing_resolves(names: Sequence[object], *, family: int) -> list[Addr]:
    return []


@pytest.mark.slow
def test_restart_without_routers_keeps_its_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_mod, "resolve_routers", nothing_resolves)
    path = tmp_path / "node.state"
    # Saved contacts on loopback ports where nothing listens: nobody will answer.
    contacts = [NodeContact(bytes([100 + i]) * 20, ("127.0.0.1", 1 + i)) for i in range(1, 20)]
    save_state(path, NodeState.from_contacts(NODE_ID, contacts))

    async def main() -> None:
        for _ in range(2):  # two restarts in a row: the second still has them
            stop = asyncio.Event()
            service = NodeService(
                host="127.0.0.1",
                port=0,
                routers=[("router.invalid", 6881)],
                state_path=str(path),
                state_interval=3600.0,
            )
            task = asyncio.create_task(serve_node(service, stop))
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.wait_for(task, 10)  # no exception on the way out

    asyncio.run(main())
    state = load_state(path)
    assert state.node_id == NODE_ID
    assert sorted(c.id for c in state.nodes) == sorted(c.id for c in contacts)
