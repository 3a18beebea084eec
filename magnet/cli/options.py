"""What every ``magnetar`` command shares: options, exit codes, error lines, logging, the loop.

Defined once here and used by each command module (``crawl`` included). Importing this
module costs typer only: the libraries a command calls are imported inside the command, so
that ``magnetar resolve`` starts fast.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from dht.wire import Addr

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_NOT_FOUND",
    "BootstrapOption",
    "JsonOption",
    "configure_logging",
    "fail",
    "parse_bootstrap",
    "run",
]

# Exit codes: 0 success, 1 nothing found (or the work could not run: timed out, cannot bind),
# 2 bad input.
EXIT_NOT_FOUND = 1
EXIT_BAD_INPUT = 2

BootstrapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--bootstrap",
        "-b",
        metavar="HOST:PORT",
        help="DHT node to join through (repeatable, or comma-separated); replaces the public"
        " bootstrap routers.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON lines for scripts.")]

_T = TypeVar("_T")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print one line to stderr and exit."""
    typer.echo(f"magnetar: {message}", err=True)
    raise typer.Exit(code)


def parse_bootstrap(values: list[str] | None) -> list[Addr] | None:
    """``--bootstrap`` values (each may be a comma-separated list) as addresses; None when
    none were given (the public routers). A bad one fails with exit code 2."""
    from dht.addresses import parse_hostport

    if not values:
        return None
    # Every item must name a node: an empty one (``-b ''``, ``-b a:1,``) is a slip, and
    # silently meaning "no bootstrap" would leave the command waiting for nobody.
    items = [v.strip() for value in values for v in value.split(",")]
    if not all(items):
        fail("--bootstrap needs HOST:PORT (an empty value names no node)")
    try:
        return [parse_hostport(v) for v in items]
    except ValueError as exc:
        fail(f"bad --bootstrap {exc}")


def configure_logging(verbose: int, quiet: bool) -> None:
    """Log lines on stderr: warnings only when ``quiet``, debug when ``verbose``, else info."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    logging.getLogger().setLevel(level)  # basicConfig sets it only the first time


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """Run a library coroutine to completion on a fresh event loop (uvloop if installed)."""
    from dht.io.node import run as run_loop

    result: _T = run_loop(main)
    return result
