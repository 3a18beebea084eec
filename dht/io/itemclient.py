"""One-shot BEP 44 and BEP 33 questions from a throwaway client node.

What ``magnetar get``, ``put`` and ``peers --scrape`` call: each makes a read-only client
node (``dht.io.client.client_node``), bootstraps it, runs one ``dht.Node`` call and closes
it, all within ``timeout`` seconds. ``load_key``/``new_key`` read and write the ed25519
private key seed a mutable item is signed with: 64 hex digits and a newline, written 0600
and atomically, never over a file that is not a regular one.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from dht.io.client import BootstrapError, client_node
from dht.io.files import write_atomic
from dht.io.node import Node
from dht.itemlookups import PutResult
from dht.items import MAX_SALT_BYTES, MAX_V_BYTES, Item, encode_value
from dht.wire import Addr

__all__ = ["KEY_FILE_BYTES", "get_item", "load_key", "new_key", "put_item", "scrape_swarm"]

KEY_FILE_BYTES = 65  # 64 hex digits and a newline
_R = TypeVar("_R")


async def _with_node(
    bootstrap: Sequence[Addr] | None, timeout: float, call: Callable[[Node], Awaitable[_R]]
) -> _R:
    """Bootstrap a client node and run ``call`` on it, all within ``timeout`` seconds.

    :raises BootstrapError: no node answered the bootstrap.
    :raises TimeoutError: ``call`` did not finish in time.
    """
    async with client_node(bootstrap) as node:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            size = await asyncio.wait_for(node.bootstrap(), timeout)
        except TimeoutError:
            size = 0
        if size == 0:
            raise BootstrapError
        async with asyncio.timeout_at(deadline):
            return await call(node)


async def get_item(
    target: bytes,
    *,
    salt: bytes = b"",
    bootstrap: Sequence[Addr] | None = None,
    timeout: float = 30.0,
) -> Item | None:
    """The item under ``target`` (see ``dht.Node.get``), or None when none was found in
    ``timeout`` seconds. :raises BootstrapError: nobody answered the bootstrap."""
    try:
        return await _with_node(bootstrap, timeout, lambda node: node.get(target, salt=salt))
    except TimeoutError:
        return None


async def put_item(
    value: object,
    *,
    key: bytes | None = None,
    salt: bytes = b"",
    seq: int | None = None,
    cas: int | None = None,
    bootstrap: Sequence[Addr] | None = None,
    timeout: float = 30.0,
) -> PutResult:
    """Put ``value``: immutable without ``key``, else mutable, signed with the key of this
    32-byte seed (see ``dht.Node.put_mutable``).

    :raises ValueError: the value, salt or seq break BEP 44's limits.
    :raises BootstrapError: nobody answered the bootstrap.
    :raises TimeoutError: the put did not finish within ``timeout`` seconds.
    """
    v = encode_value(value)  # refuse misuse before any network traffic
    if len(v) > MAX_V_BYTES:
        raise ValueError(f"value is {len(v)} bytes bencoded, BEP 44 allows {MAX_V_BYTES}")
    if len(salt) > MAX_SALT_BYTES:
        raise ValueError(f"salt is {len(salt)} bytes, BEP 44 allows {MAX_SALT_BYTES}")
    if key is not None and len(key) != 32:
        raise ValueError("a private key seed is 32 bytes")
    if key is None:
        if salt or seq is not None or cas is not None:
            raise ValueError("salt, seq and cas are for mutable items (give a key)")
        return await _with_node(bootstrap, timeout, lambda node: node.put_immutable(value))
    signer = key
    return await _with_node(
        bootstrap,
        timeout,
        lambda node: node.put_mutable(signer, value, salt=salt, seq=seq, cas=cas),
    )


async def scrape_swarm(
    info_hash: bytes, *, bootstrap: Sequence[Addr] | None = None, timeout: float = 30.0
) -> tuple[float, float]:
    """Estimated (seeds, peers) of a swarm from BEP 33 filters (see ``dht.Node.scrape``).

    :raises BootstrapError: nobody answered the bootstrap.
    :raises TimeoutError: the lookup did not finish within ``timeout`` seconds.
    """
    return await _with_node(bootstrap, timeout, lambda node: node.scrape(info_hash))


def new_key(path: str | os.PathLike[str], *, overwrite: bool = False) -> bytes:
    """Make an ed25519 private key seed, save it to ``path`` and return it.

    :raises FileExistsError: ``path`` exists and ``overwrite`` is False.
    :raises NotRegularFileError: ``path`` is a device, directory or FIFO (never replaced).
    """
    import secrets

    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f"{os.fspath(path)} exists (a key is not overwritten lightly)")
    seed = secrets.token_bytes(32)
    write_atomic(path, seed.hex().encode() + b"\n", mode=0o600)
    return seed


def load_key(path: str | os.PathLike[str]) -> bytes:
    """The 32-byte seed saved in ``path``: 64 hex digits (``new_key``'s format) or 32 raw
    bytes. :raises ValueError: it is neither. :raises OSError: it cannot be read."""
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block, a device never end
        raise ValueError(f"{os.fspath(path)} is not a regular file")
    with open(path, "rb") as f:
        data = f.read(KEY_FILE_BYTES + 1)  # a key file is tiny: never read more
    text = data.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    if len(data) == 32:
        return data
    raise ValueError(f"{os.fspath(path)} is not a key file (64 hex digits or 32 bytes)")
