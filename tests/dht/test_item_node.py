"""BEP 44 through ``dht.Node`` on loopback sockets, and the key files of mutable items."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from dht.io.files import NotRegularFileError
from dht.io.itemclient import get_item, load_key, new_key, put_item
from dht.io.node import Node
from dht.io.testnet import Testnet
from dht.items import (
    ImmutableItem,
    MutableItem,
    encode_value,
    immutable_target,
    mutable_target,
    public_key,
)

T = TypeVar("T")
SEED = bytes(range(32))


def run(coro: Awaitable[T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def test_put_and_get_through_nodes_on_loopback() -> None:
    async def main() -> None:
        async with Testnet(16, seed=2) as net:
            writer, reader = net.nodes[3], net.nodes[12]
            stored = await writer.put_immutable(b"Hello World!")
            assert stored.stored == stored.asked == 8
            assert stored.target.hex() == "e5f96f6f38320f0f33959cb4d3d656452117aadb"
            got = await reader.get(stored.target)
            assert isinstance(got, ImmutableItem) and got.value() == b"Hello World!"

            first = await writer.put_mutable(SEED, [1, b"two"], salt=b"s")
            second = await writer.put_mutable(SEED, {b"k": b"v"}, salt=b"s")
            assert isinstance(second.item, MutableItem) and second.item.seq == 2
            assert first.target == second.target == mutable_target(public_key(SEED), b"s")
            got = await reader.get(second.target, salt=b"s")
            assert isinstance(got, MutableItem) and (got.seq, got.value()) == (2, {b"k": b"v"})
            # asking only for something newer than what we have: nothing
            assert await reader.get(second.target, salt=b"s", seq=2) is None
            # the writer's node republishes what it put
            assert len(writer.core.republisher) == 2
            assert await reader.get(immutable_target(encode_value(b"no!"))) is None

    run(main())


def test_the_one_shot_client_puts_and_gets() -> None:
    async def main() -> None:
        async with Testnet(12, seed=3) as net:
            routers = net.bootstrap_addrs()
            result = await put_item(b"x" * 10, key=SEED, bootstrap=routers, timeout=20)
            assert result.stored >= 6
            item = await get_item(result.target, bootstrap=routers, timeout=20)
            assert item == result.item
            with pytest.raises(ValueError, match="1000"):
                await put_item(b"x" * 1000, bootstrap=routers)
            with pytest.raises(ValueError, match="mutable"):
                await put_item(b"x", salt=b"s", bootstrap=routers)

    run(main())


def test_a_node_without_peers_finds_nothing_fast() -> None:
    async def main() -> None:
        async with Node("127.0.0.1", 0, bootstrap_routers=[]) as node:
            assert await node.get(b"t" * 20) is None
            result = await node.put_immutable(b"lonely")
            assert (result.asked, result.stored) == (0, 0)

    run(main(), timeout=10)


def test_key_files_are_private_and_never_replace_what_is_not_a_file(tmp_path: Path) -> None:
    path = tmp_path / "my.key"
    seed = new_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key(path) == seed and len(seed) == 32
    with pytest.raises(FileExistsError):
        new_key(path)  # a key is never lost to a slip
    assert load_key(path) == seed
    assert new_key(path, overwrite=True) != seed
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFileError):
        new_key(fifo, overwrite=True)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(ValueError, match="regular"):
        load_key(fifo)  # would block forever if opened
    (tmp_path / "raw.key").write_bytes(SEED)
    assert load_key(tmp_path / "raw.key") == SEED
    (tmp_path / "junk.key").write_bytes(b"z" * 5000)
    with pytest.raises(ValueError, match="not a key file"):
        load_key(tmp_path / "junk.key")


def test_announces_as_seed_and_not_are_counted_apart_by_a_scrape() -> None:
    # Every node of a loopback testnet is 127.0.0.1: one IP, so counts are 0 or 1 here;
    # a second testnet on 127.0.0.2 plays the other peer.
    async def main() -> None:
        async with Testnet(10, seed=4) as net:
            info_hash = b"\x42" * 20
            assert await net.nodes[2].announce(info_hash, 6000, seed=True) >= 6
            seeds, peers = await net.nodes[7].scrape(info_hash)
            assert round(seeds) == 1 and peers == 0
            async with Node("127.0.0.2", 0, bootstrap_routers=net.bootstrap_addrs()) as other:
                await other.bootstrap()
                assert await other.announce(info_hash, 6000) >= 6
                seeds, peers = await other.scrape(info_hash)
            assert round(seeds) == 1 and round(peers) == 1

    run(main())
