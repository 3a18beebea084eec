"""The ``magnetar`` command line: a thin typer layer over the ``dht`` and ``magnet`` libraries.

Commands parse their arguments, call the library and print. Exit codes: 0 success, 1 nothing
found or timed out, 2 bad input. Heavy modules are imported inside the commands so that
``magnetar resolve`` starts fast.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from dht.wire import Addr

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    help="magnetar: resolve magnet links, run DHT nodes, study the BitTorrent DHT.",
)

EXIT_NOT_FOUND = 1
EXIT_BAD_INPUT = 2

BootstrapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--bootstrap",
        "-b",
        metavar="HOST:PORT",
        help="DHT node to join through (repeatable); replaces the public bootstrap routers.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON lines for scripts.")]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print one line to stderr and exit."""
    typer.echo(f"magnetar: {message}", err=True)
    raise typer.Exit(code)


def parse_bootstrap(values: list[str] | None) -> list[Addr] | None:
    from dht.bootstrap import parse_hostport

    if not values:
        return None
    try:
        return [parse_hostport(v) for v in values]
    except ValueError as exc:
        fail(f"bad --bootstrap {exc}")


@app.callback()
def _root(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log output.")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
) -> None:
    """magnetar: resolve magnet links, run DHT nodes, study the BitTorrent DHT."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )


@app.command()
def version() -> None:
    """Print magnetar's version."""
    typer.echo("magnetar 0.1.0")


@app.command()
def node(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="UDP port to bind.")] = 6881,
    bootstrap: BootstrapOption = None,
    status_interval: Annotated[
        float, typer.Option(help="Seconds between status lines.", min=0.1)
    ] = 60.0,
) -> None:
    """Run a DHT node until SIGINT/SIGTERM, logging a status line periodically.

    Example: magnetar node --port 6881
    """
    from dht.daemon import serve_node
    from dht.node import run

    routers = parse_bootstrap(bootstrap)
    try:
        run(serve_node(host, port, routers, status_interval=status_interval))
    except OSError as exc:
        fail(f"cannot bind {host}:{port}: {exc.strerror or exc}", EXIT_NOT_FOUND)


@app.command()
def ping(
    target: Annotated[str, typer.Argument(metavar="HOST:PORT", help="The DHT node to ping.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait.", min=0.1)] = 5.0,
    json_out: JsonOption = False,
) -> None:
    """Ping a DHT node and print its id, version and round-trip time.

    Example: magnetar ping 127.0.0.1:6881
    """
    import asyncio
    import json

    from dht.bootstrap import parse_hostport, resolve_routers
    from dht.node import DhtQueryError, Node, run
    from dht.protocol import DhtConfig

    try:
        host, port = parse_hostport(target)
    except ValueError as exc:
        fail(str(exc))

    async def main() -> None:
        addrs = await resolve_routers([(host, port)])
        if not addrs:
            fail(f"cannot resolve {host}", EXIT_NOT_FOUND)
        config = DhtConfig(read_only=True, query_timeout_s=timeout)
        async with Node("0.0.0.0", 0, bootstrap_routers=[], config=config) as client:
            try:
                answer = await asyncio.wait_for(client.ping(addrs[0]), timeout + 1)
            except (DhtQueryError, TimeoutError) as exc:
                fail(
                    f"{target} did not answer: {getattr(exc, 'reason', 'timeout')}", EXIT_NOT_FOUND
                )
        version = answer.response.version
        if json_out:
            record = {
                "addr": target,
                "id": answer.response.id.hex(),
                "rtt_ms": round(answer.rtt * 1000, 3),
                "version": version.hex() if version else None,
            }
            typer.echo(json.dumps(record))
        else:
            ver = f", version {_describe_version(version)}" if version else ""
            rtt_ms = answer.rtt * 1000
            typer.echo(f"{target} answered in {rtt_ms:.1f} ms: id {answer.response.id.hex()}{ver}")

    run(main())


def _describe_version(v: bytes) -> str:
    if len(v) == 4 and v[:2].isalpha():
        return (
            f"{v[:2].decode()} {v[2]}.{v[3] >> 4}.{v[3] & 15}"
            if v[:2] == b"LT"
            else (f"{v[:2].decode()} {v[2]}.{v[3]}")
        )
    return v.hex()


@app.command()
def peers(
    info_hash: Annotated[str, typer.Argument(help="40-hex or 32-base32 info-hash.")],
    bootstrap: BootstrapOption = None,
    timeout: Annotated[
        float, typer.Option(help="Give up after this many seconds.", min=0.1)
    ] = 30.0,
    json_out: JsonOption = False,
) -> None:
    """Look up peers for an info-hash on the DHT; print them as they arrive.

    Example: magnetar peers 0123456789abcdef0123456789abcdef01234567 -b 127.0.0.1:6881
    """
    import asyncio
    import json
    import time

    from dht.bootstrap import format_hostport
    from dht.ids import parse_info_hash
    from dht.node import Node, run
    from dht.protocol import DhtConfig

    try:
        target = parse_info_hash(info_hash)
    except ValueError as exc:
        fail(str(exc))
    routers = parse_bootstrap(bootstrap)
    started = time.monotonic()

    async def main() -> int:
        config = DhtConfig(read_only=True)
        async with Node("0.0.0.0", 0, bootstrap_routers=routers, config=config) as client:
            deadline = asyncio.get_running_loop().time() + timeout
            try:
                size = await asyncio.wait_for(client.bootstrap(), timeout)
            except TimeoutError:
                size = 0
            if size == 0:
                fail("no DHT node answered the bootstrap", EXIT_NOT_FOUND)
            stream = client.get_peers(target)
            found = 0
            try:
                async with asyncio.timeout_at(deadline):
                    async for peer in stream:
                        found += 1
                        if json_out:
                            record = {
                                "ip": peer[0],
                                "port": peer[1],
                                "seconds": round(time.monotonic() - started, 3),
                            }
                            typer.echo(json.dumps(record))
                        else:
                            typer.echo(format_hostport(peer))
            except TimeoutError:
                stream.cancel()
            result = stream.result
            asked = (
                f"{result.replied} of {result.queried} nodes answered" if result else "timed out"
            )
            logging.getLogger("magnetar").info(
                "%d peers in %.2f s (%s)", found, time.monotonic() - started, asked
            )
            if not found:
                fail(f"no peers found for {target.hex()} ({asked})", EXIT_NOT_FOUND)
            return found

    run(main())


@app.command()
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
    import asyncio
    import contextlib
    import json
    import signal

    from dht.node import run
    from dht.testnet import Testnet

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        async with Testnet(nodes, host=host, port=port) as net:
            typer.echo(json.dumps(net.describe()), nl=True)
            sys.stdout.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)

    try:
        run(main())
    except OSError as exc:
        fail(f"cannot start the testnet on {host}: {exc.strerror or exc}", EXIT_NOT_FOUND)


def main() -> None:
    app()
