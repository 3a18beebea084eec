"""``magnetar ping`` and ``magnetar peers``: questions to the DHT through ``dht.io.client``."""

from __future__ import annotations

import logging
import time
from typing import Annotated

import typer

from magnet.cli.options import (
    EXIT_NOT_FOUND,
    BootstrapOption,
    JsonOption,
    fail,
    parse_bootstrap,
    run,
)

__all__ = ["describe_version", "peers", "ping"]


def ping(
    target: Annotated[str, typer.Argument(metavar="HOST:PORT", help="The DHT node to ping.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait.", min=0.1)] = 5.0,
    json_out: JsonOption = False,
) -> None:
    """Ping a DHT node and print its id, version and round-trip time.

    Example: magnetar ping 127.0.0.1:6881
    """
    import json

    from dht.addresses import parse_hostport
    from dht.io.client import DhtQueryError, HostNotFoundError
    from dht.io.client import ping as ping_node

    try:
        addr = parse_hostport(target)
    except ValueError as exc:
        fail(str(exc))
    try:
        answer = run(ping_node(addr, timeout=timeout))
    except HostNotFoundError as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    except DhtQueryError as exc:
        fail(f"{target} did not answer: {exc.reason}", EXIT_NOT_FOUND)
    node_id, version = answer.response.id, answer.response.version
    if json_out:
        record = {
            "addr": target,
            "id": node_id.hex(),
            "rtt_ms": round(answer.rtt * 1000, 3),
            "version": version.hex() if version else None,
        }
        typer.echo(json.dumps(record))
    else:
        ver = f", version {describe_version(version)}" if version else ""
        typer.echo(f"{target} answered in {answer.rtt * 1000:.1f} ms: id {node_id.hex()}{ver}")


def describe_version(v: bytes) -> str:
    """A BEP 5 ``v`` value for people: ``LT 2.0.11`` (libtorrent's nibbles), ``MR 0.1``."""
    if len(v) == 4 and v[:2].isalpha():
        if v[:2] == b"LT":
            return f"LT {v[2]}.{v[3] >> 4}.{v[3] & 15}"
        return f"{v[:2].decode()} {v[2]}.{v[3]}"
    return v.hex()


def peers(
    info_hash: Annotated[str, typer.Argument(help="40-hex or 32-base32 info-hash.")],
    bootstrap: BootstrapOption = None,
    timeout: Annotated[
        float, typer.Option(help="Give up after this many seconds.", min=0.1)
    ] = 30.0,
    json_out: JsonOption = False,
    scrape: Annotated[
        bool,
        typer.Option("--scrape", help="Estimate seeds and peers from BEP 33 filters instead."),
    ] = False,
) -> None:
    """Look up peers for an info-hash on the DHT; print them as they arrive.

    With --scrape, print the estimated number of seeds and peers (BEP 33) instead.

    Example: magnetar peers 0123456789abcdef0123456789abcdef01234567 -b 127.0.0.1:6881
    """
    import json

    from dht.addresses import format_hostport
    from dht.ids import parse_info_hash
    from dht.io.client import ClientError, find_peers

    try:
        target = parse_info_hash(info_hash)
    except ValueError as exc:
        fail(str(exc))
    if scrape:
        from magnet.cli.items import print_scrape

        print_scrape(target, parse_bootstrap(bootstrap), timeout, json_out)
        return
    search = find_peers(target, bootstrap=parse_bootstrap(bootstrap), timeout=timeout)
    started = time.monotonic()

    async def show() -> int:
        found = 0
        async for peer in search:
            found += 1
            if json_out:
                seconds = round(time.monotonic() - started, 3)
                typer.echo(json.dumps({"ip": peer[0], "port": peer[1], "seconds": seconds}))
            else:
                typer.echo(format_hostport(peer))
        return found

    try:
        found = run(show())
    except ClientError as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    result = search.result
    asked = f"{result.replied} of {result.queried} nodes answered" if result else "timed out"
    logging.getLogger("magnetar").info(
        "%d peers in %.2f s (%s)", found, time.monotonic() - started, asked
    )
    if not found:
        fail(f"no peers found for {target.hex()} ({asked})", EXIT_NOT_FOUND)
