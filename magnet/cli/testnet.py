"""``magnetar testnet``: a private DHT of N nodes in this process (``dht.io.testnet.run``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from magnet.cli.options import EXIT_NOT_FOUND, fail, run

if TYPE_CHECKING:
    from dht.io.testnet import Testnet

__all__ = ["testnet"]


def testnet(
    nodes: Annotated[
        int, typer.Option("--nodes", "-n", help="How many nodes.", min=1, max=5000)
    ] = 20,
    host: Annotated[str, typer.Option(help="Address every node binds (loopback).")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="First port (0: any free ports).", min=0, max=65535)
    ] = 0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
) -> None:
    """Run a private DHT of N nodes in this process (loopback by default).

    The first line printed is a JSON object with the bootstrap addresses, e.g.
    {"bootstrap": ["127.0.0.1:40001", ...], ...}; pass one to other commands with -b.

    Example: magnetar testnet --nodes 50 --port 40000 --duration 600
    """
    if duration is not None and duration <= 0:
        fail("--duration must be positive")
    if port and port + nodes - 1 > 65535:
        fail(f"--port {port} leaves no room for {nodes} nodes (node i uses port+i, up to 65535)")
    import json

    from dht.io.testnet import run as run_testnet

    def describe(net: Testnet) -> None:
        typer.echo(json.dumps(net.describe()))
        sys.stdout.flush()

    try:
        run(run_testnet(nodes, host=host, port=port, duration=duration, on_ready=describe))
    except OSError as exc:
        fail(f"cannot start the testnet on {host}: {exc.strerror or exc}", EXIT_NOT_FOUND)
