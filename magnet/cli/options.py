"""What every ``magnetar`` command shares: options, exit codes, error lines, logging, the loop.

Defined once here and used by each command module (``crawl`` included). Importing this
module costs typer only: the libraries a command calls are imported inside the command, so
that ``magnetar resolve`` starts fast (hence the root group lives here too, not in a module
of its own).

The root group, ``MagnetarGroup``: click reports a bad option in three lines (usage, a
hint, the error) and lets a float option take ``nan``; here each such mistake is the one
line ``magnetar: <what is wrong> (see 'magnetar CMD --help')`` with exit code 2, like the
errors the commands report themselves (``fail``), every float option refuses non-finite
numbers, and every command takes ``-v/--verbose`` and ``-q/--quiet``, so that ``magnetar
resolve -v ...`` works as ``magnetar -v resolve ...`` does.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperGroup, TyperOption

try:  # typer >= 0.26 carries its own copy of click, which is what raises and parses here
    from typer._click import core as click_core
    from typer._click import exceptions as click_errors
    from typer._click import types as click_types
except ImportError:  # an older typer, on click itself
    from click import core as click_core  # type: ignore[no-redef]
    from click import exceptions as click_errors  # type: ignore[no-redef]
    from click import types as click_types  # type: ignore[no-redef]

if TYPE_CHECKING:
    from dht.wire import Addr

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_NOT_FOUND",
    "BootstrapOption",
    "JsonOption",
    "MagnetarGroup",
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


# --- the root group: one-line usage errors, finite floats, -v/-q everywhere ----------------


class _Finite(click_types.ParamType):
    """Refuses nan and inf after the float type's own conversion (a range alone lets nan
    through: it compares false with both ends)."""

    def convert(
        self, value: Any, param: click_core.Parameter | None, ctx: click_core.Context | None
    ) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class _FiniteFloat(_Finite, click_types.FloatParamType):
    pass


class _FiniteFloatRange(_Finite, click_types.FloatRange):
    pass


def _finite(kind: click_types.ParamType) -> click_types.ParamType:
    if isinstance(kind, click_types.FloatRange):
        return _FiniteFloatRange(kind.min, kind.max, kind.min_open, kind.max_open, kind.clamp)
    if isinstance(kind, click_types.FloatParamType):
        return _FiniteFloat()
    return kind


def _log_level(ctx: click_core.Context, param: click_core.Parameter, value: Any) -> None:
    """Set the log level from a command's own ``-v``/``-q`` (the root's set it first)."""
    if not value:
        return
    root = ctx.find_root().meta
    root[f"magnetar.{param.name}"] = value
    quiet = root.get("magnetar.quiet", False)
    logging.getLogger().setLevel(logging.WARNING if quiet else logging.DEBUG)


def _logging_options() -> list[TyperOption]:
    return [
        TyperOption(
            param_decls=["--verbose", "-v"],
            count=True,
            expose_value=False,
            callback=_log_level,
            help="More log output.",
        ),
        TyperOption(
            param_decls=["--quiet", "-q"],
            is_flag=True,
            expose_value=False,
            callback=_log_level,
            help="Only warnings and errors.",
        ),
    ]


def _harden(command: click_core.Command) -> None:
    """Finite floats everywhere; ``-v``/``-q`` on each command below the root."""
    names = {name for p in command.params for name in p.opts}
    if "--verbose" not in names:
        command.params.extend(_logging_options())
    for param in command.params:
        param.type = _finite(param.type)
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            _harden(sub)


def _command_path(ctx: click_core.Context | None) -> str:
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["magnetar", *reversed(names)])


class MagnetarGroup(TyperGroup):
    """typer's group, with one-line usage errors and the shared options of every command."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for param in self.params:
            param.type = _finite(param.type)
        for sub in self.commands.values():
            _harden(sub)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
        try:
            code = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()  # the help text: asked for by giving nothing
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            message = " ".join(exc.format_message().split())  # one line, whatever click said
            where = _command_path(getattr(exc, "ctx", None))
            typer.echo(f"magnetar: {message} (see '{where} --help')", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("magnetar: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)
