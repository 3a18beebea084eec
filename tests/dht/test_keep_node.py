"""Keeping others' BEP 44 items through ``dht.Node`` and ``magnetar node --keep``, on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from typer.testing import CliRunner

from dht.io.daemon import NodeService, serve_node
from dht.io.testnet import Testnet
from dht.items import MutableItem, mutable_target, public_key
from magnet.cli.app import app
from magnet.cli.node import parse_keep

T = TypeVar("T")
SEED = bytes(range(32))
TARGET_HEX = "ab" * 20


def run(coro: Awaitable[T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def test_node_keep_gets_the_item_and_hands_it_to_the_republisher() -> None:
    async def main() -> None:
        async with Testnet(16, seed=4) as net:
            owner, keeper = net.nodes[2], net.nodes[11]
            put = await owner.put_mutable(SEED, b"keep me", salt=b"s")
            kept = await keeper.keep(put.target, salt=b"s")
            assert isinstance(kept, MutableItem) and kept.value() == b"keep me"
            assert keeper.core.republisher.kept == 1
            assert keeper.core.republisher.item(put.target) == kept
            # Not found: nothing is kept; a wrong salt does not check out either.
            assert await keeper.keep(bytes(20)) is None
            assert await keeper.keep(put.target, salt=b"other") is None
            assert keeper.core.republisher.kept == 1
            with pytest.raises(ValueError, match="20"):
                await keeper.keep(b"short")

    run(main())


@pytest.mark.slow
def test_the_service_keeps_an_item_once_joined_and_gives_up_on_a_missing_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = mutable_target(public_key(SEED), b"s")
    missing = bytes(range(20))

    async def main() -> None:
        async with Testnet(12, seed=6) as net:
            service = NodeService(
                host="127.0.0.1",
                port=0,
                routers=net.bootstrap_addrs(2),
                keep=[(target, b"s"), (missing, b"")],
                keep_retry_s=0.3,
                keep_tries=3,
            )
            stop = asyncio.Event()
            task = asyncio.create_task(serve_node(service, stop))
            await asyncio.sleep(0.5)  # the service looks before the item exists ...
            await net.nodes[1].put_mutable(SEED, b"late", salt=b"s")  # ... then it is put
            for _ in range(100):
                if "not kept" in caplog.text:
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.wait_for(task, 5)

    with caplog.at_level(logging.INFO, logger="dht.io.node"):
        run(main())
    assert f"keeping item {target.hex()} (seq 1)" in caplog.text
    assert f"item {missing.hex()} not found after 3 tries; not kept" in caplog.text


def test_keep_values_parse_as_target_and_hex_salt() -> None:
    assert parse_keep(TARGET_HEX) == (bytes.fromhex(TARGET_HEX), b"")
    assert parse_keep(TARGET_HEX + ":686f6d65") == (bytes.fromhex(TARGET_HEX), b"home")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("zz", "in hex"),
        ("abcd", "40 hex digits"),
        (TARGET_HEX + ":xyz", "in hex"),
        (TARGET_HEX + ":" + "00" * 65, "at most 64 bytes"),
    ],
)
def test_a_bad_keep_is_one_line_and_exit_2(value: str, words: str) -> None:
    result = CliRunner().invoke(app, ["node", "--port", "0", "-b", "127.0.0.1:9", "--keep", value])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and words in result.output, result.output
