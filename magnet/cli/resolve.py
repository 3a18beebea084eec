"""``magnetar resolve``: magnet links to .torrent files, through ``magnet.io.resolve`` (one link)
or ``magnet.io.bulk`` (many), written by ``magnet.io.output``."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from magnet.cli.options import (
    EXIT_BAD_INPUT,
    EXIT_NOT_FOUND,
    BootstrapOption,
    JsonOption,
    fail,
    parse_bootstrap,
    run,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dht.wire import Addr
    from magnet.io.resolve import Progress, ResolveResult
    from magnet.uri import MagnetLink

__all__ = ["EXIT_INCOMPLETE", "resolve"]

# The .torrent was written but lacks the piece layers of its v2 files (see --no-piece-layers).
EXIT_INCOMPLETE = 3


def resolve(
    magnets: Annotated[
        list[str],
        typer.Argument(
            metavar="MAGNET...",
            help="Magnet links or info-hashes; '-' reads them from stdin and a file name from"
            " that file, one a line.",
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="File to write (a directory when resolving several)."),
    ] = None,
    bootstrap: BootstrapOption = None,
    timeout: Annotated[
        float, typer.Option(help="Give up on a link after this many seconds.", min=0.1)
    ] = 60.0,
    json_out: JsonOption = False,
    concurrency: Annotated[
        int, typer.Option(help="Links resolved at once (bulk).", min=1, max=1000)
    ] = 16,
    max_connections: Annotated[
        int, typer.Option(help="Peer connections per link.", min=1, max=1000)
    ] = 40,
    max_metadata_size: Annotated[
        int, typer.Option(help="Largest info dict accepted, in MiB.", min=1, max=1024)
    ] = 32,
    no_dht: Annotated[bool, typer.Option("--no-dht", help="Do not use the DHT.")] = False,
    no_trackers: Annotated[
        bool, typer.Option("--no-trackers", help="Do not announce to the link's trackers.")
    ] = False,
    tracker: Annotated[
        list[str] | None,
        typer.Option("--tracker", metavar="URL", help="Tracker to use too (repeatable)."),
    ] = None,
    encryption: Annotated[
        str,
        typer.Option(
            help="Peer encryption (MSE/PE): auto (plaintext, then encrypted when a peer hangs"
            " up), prefer, require, off."
        ),
    ] = "auto",
    transport: Annotated[
        str,
        typer.Option(
            help="How to dial peers: auto (TCP, and uTP too unless TCP answers within 250 ms;"
            " the stream the peer answers on is kept), tcp, utp."
        ),
    ] = "auto",
    allow_private: Annotated[
        bool,
        typer.Option(
            "--allow-private",
            help="Also connect to peers and trackers on private or loopback addresses (on by"
            " itself when the link's x.pe or the bootstrap addresses are such).",
        ),
    ] = False,
    no_piece_layers: Annotated[
        bool,
        typer.Option(
            "--no-piece-layers",
            help="v2 and hybrid links: write the info dict alone, without fetching the piece"
            " layers (BEP 52 hash requests) of files over one piece. Without this option a"
            " .torrent whose layers could not all be fetched within --timeout is still"
            " written (clients can fetch layers themselves), with a warning and exit code 3.",
        ),
    ] = False,
) -> None:
    """Resolve magnet links into verified .torrent files, using the DHT (no tracker needed).

    Exit codes: 0 all written, 1 a link failed, 2 bad input, 3 written but without the
    piece layers a v2 torrent has (incomplete; see --no-piece-layers).

    Examples:

      magnetar resolve 'magnet:?xt=urn:btih:...' -o ubuntu.torrent

      magnetar resolve --json -o torrents/ - < links.txt
    """
    links = _read_links(magnets)
    if not links:
        fail("no magnet links given")
    from magnet.resolution import ENCRYPTION_POLICIES

    if encryption not in ENCRYPTION_POLICIES:
        fail(f"--encryption must be one of {', '.join(ENCRYPTION_POLICIES)}")
    from magnet.io.dial import TRANSPORTS

    if transport not in TRANSPORTS:
        fail(f"--transport must be one of {', '.join(TRANSPORTS)}")
    opts = ResolveOptions(
        timeout=timeout,
        max_connections=max_connections,
        max_metadata_mib=max_metadata_size,
        use_dht=not no_dht,
        use_trackers=not no_trackers,
        trackers=tuple(tracker or ()),
        encryption=encryption,
        allow_private=allow_private,
        piece_layers=not no_piece_layers,
        transport=transport,
    )
    routers = parse_bootstrap(bootstrap)
    from magnet.uri import MagnetError, parse_info_hash_or_magnet

    links = _unique_links(links)
    if len(links) == 1:
        try:
            link = parse_info_hash_or_magnet(links[0])
        except MagnetError as exc:
            fail(f"bad magnet link: {exc}")
        preload_http_client(opts, link.trackers)
        if output is not None:  # after the preload: the check loads what resolving needs
            _check_output(output, directory=False)
        code = run(_resolve_one(link, output, routers, json_out, opts))
    else:
        # Percent-encoding leaves letters alone: "tr=http" finds http and https trackers.
        preload_http_client(opts, ["http"] if any("tr=http" in s.lower() for s in links) else [])
        if output is not None:
            _check_output(output, directory=True)
        code = run(_resolve_bulk(links, output, routers, json_out, concurrency, opts))
    raise typer.Exit(code)


def _check_output(output: str, *, directory: bool) -> None:
    """Before any work: ``-o`` must be somewhere we may write, and never a device."""
    from magnet.io.output import OutputError, check_output

    try:
        check_output(output, directory=directory)
    except OutputError as exc:
        fail(exc.reason, EXIT_NOT_FOUND if exc.denied else EXIT_BAD_INPUT)


def _read_links(args: list[str]) -> list[str]:
    """Magnet links from arguments; ``-`` reads stdin, an existing file is read a link a line."""
    links: list[str] = []
    for arg in args:
        try:
            if arg == "-":
                lines = sys.stdin.read().splitlines()
            elif not arg.startswith("magnet:") and len(arg) not in (32, 40, 64) and _is_file(arg):
                lines = Path(arg).read_text(errors="replace").splitlines()
            else:
                lines = [arg]
        except OSError as exc:
            fail(f"cannot read {arg}: {exc.strerror or exc}")
        except UnicodeDecodeError as exc:
            fail(f"cannot read {arg}: not text ({exc.reason})")
        links.extend(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    return links


def _is_file(arg: str) -> bool:
    # Path.is_file raises PermissionError for a name inside a directory we may not search:
    # then it is a file we cannot read, which the caller reports.
    try:
        return Path(arg).is_file()
    except OSError:
        return True


def _unique_links(links: list[str]) -> list[str]:
    """Each info-hash once (the first link naming it): the same link given twice, or two
    links of one torrent, are resolved once; a note on stderr says how many were left out."""
    from magnet.uri import MagnetError, parse_info_hash_or_magnet

    seen: set[bytes | str] = set()
    unique: list[str] = []
    for text in links:
        try:
            key: bytes | str = parse_info_hash_or_magnet(text).dht_key
        except MagnetError:
            key = text  # reported as a bad link when its turn comes
        if key not in seen:
            seen.add(key)
            unique.append(text)
    if len(unique) < len(links):
        left = len(links) - len(unique)
        typer.echo(
            f"magnetar: {left} link{'s' if left != 1 else ''} left out: same info-hash as an"
            " earlier one",
            err=True,
        )
    return unique


def preload_http_client(opts: ResolveOptions, link_trackers: Sequence[str]) -> None:
    """Start importing the HTTP client now if an HTTP tracker will be asked: it then loads
    alongside the DHT and resolver modules instead of after them (~0.05 s sooner here)."""
    if opts.use_trackers and any(
        url.lower().startswith("http") for url in (*link_trackers, *opts.trackers)
    ):
        from magnet.io.trackers import preload_http_client as start_import

        start_import()


@dataclass(frozen=True, slots=True)
class ResolveOptions:
    """The options of one link and of many alike (bulk once dropped one of them)."""

    timeout: float
    max_connections: int
    max_metadata_mib: int
    use_dht: bool
    use_trackers: bool
    trackers: tuple[str, ...]
    encryption: str
    allow_private: bool = False
    piece_layers: bool = True
    transport: str = "auto"

    def resolve_options(self) -> dict[str, Any]:
        """Keyword arguments of ``magnet.resolve`` (and ``resolve_many``), one link or many."""
        return {
            "timeout": self.timeout,
            "max_connections": self.max_connections,
            "max_metadata_size": self.max_metadata_mib * 1024 * 1024,
            "use_dht": self.use_dht,
            "use_trackers": self.use_trackers,
            "trackers": self.trackers,
            "encryption": self.encryption,
            "allow_private": self.allow_private,
            "piece_layers": self.piece_layers,
            "transport": self.transport,
        }


async def _resolve_one(
    link: MagnetLink,
    output: str | None,
    routers: list[Addr] | None,
    json_out: bool,
    opts: ResolveOptions,
) -> int:
    import json

    from dht.addresses import format_hostport
    from magnet.io.output import error_record, human_size, output_path, result_record, write_atomic
    from magnet.io.resolve import ResolveError
    from magnet.io.resolve import resolve as resolve_link

    show = _ProgressLine() if not json_out and sys.stderr.isatty() else None
    try:
        result = await resolve_link(
            link,
            bootstrap=routers,
            on_progress=show.update if show else None,
            **opts.resolve_options(),
        )
    except ResolveError as exc:
        if show:
            show.stop()
        if json_out:
            typer.echo(json.dumps(error_record(str(link), exc)))
        else:
            typer.echo(f"magnetar: {exc.reason}", err=True)
        return EXIT_NOT_FOUND
    finally:
        if show:
            show.stop()
    path = output_path(result, output)
    try:
        write_atomic(path, result.torrent())
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}", EXIT_NOT_FOUND)
    if json_out:
        typer.echo(json.dumps(result_record(result, path)))
    else:
        files = len(result.meta.files)
        typer.echo(
            f"wrote {path} ({result.meta.name}: {files} file{'s' if files != 1 else ''}, "
            f"{human_size(result.meta.total_size)}) in {result.seconds:.2f} s "
            f"from {format_hostport(result.peer)} ({result.source})"
            + (f", with {len(result.piece_layers)} piece layers" if result.piece_layers else "")
        )
    return _incomplete(result)


def _incomplete(result: ResolveResult) -> int:
    """0, or warn that the .torrent lacks its piece layers and return EXIT_INCOMPLETE."""
    if result.complete:
        return 0
    typer.echo(
        f"magnetar: {result.link.info_hash_hex}: the piece layers (BEP 52) could not all be"
        " fetched in time; the .torrent holds the verified info dict without them",
        err=True,
    )
    return EXIT_INCOMPLETE


async def _resolve_bulk(
    links: list[str],
    output: str | None,
    routers: list[Addr] | None,
    json_out: bool,
    concurrency: int,
    opts: ResolveOptions,
) -> int:
    import json

    from magnet.io.bulk import resolve_many
    from magnet.io.output import (
        error_record,
        output_path,
        result_record,
        unique_path,
        write_atomic,
    )
    from magnet.io.resolve import ResolveError

    failed = 0
    incomplete = 0
    written: set[Path] = set()  # by this run: a second torrent of one name gets another
    results = resolve_many(
        links, bootstrap=routers, concurrency=concurrency, **opts.resolve_options()
    )
    async for link, result in results:
        if isinstance(result, ResolveError):
            failed += 1
            if json_out:
                typer.echo(json.dumps(error_record(link, result)))
            else:
                typer.echo(f"FAILED {link}: {result.reason}")
            continue
        first_choice = output_path(result, output, directory=True)
        path = unique_path(first_choice, result.link.info_hash_hex, written)
        if path != first_choice:
            typer.echo(
                f"magnetar: {first_choice} was written for another link; this one is {path}",
                err=True,
            )
        try:
            write_atomic(path, result.torrent())
        except OSError as exc:
            failed += 1
            typer.echo(f"FAILED {link}: cannot write {path}: {exc.strerror or exc}")
            continue
        written.add(path)
        if json_out:
            typer.echo(json.dumps(result_record(result, path)))
        else:
            typer.echo(f"{result.link.info_hash_hex} {path} ({result.seconds:.2f} s)")
        incomplete += _incomplete(result) != 0
    if failed:
        return EXIT_NOT_FOUND
    return EXIT_INCOMPLETE if incomplete else 0


class _ProgressLine:
    """A live status line on stderr while resolving (only on a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.status import Status

        self._status = Status("resolving: starting", console=Console(stderr=True))
        self._status.start()
        self._stopped = False

    def update(self, p: Progress) -> None:
        if self._stopped:
            return
        self._status.update(
            f"resolving: {p.nodes_answered}/{p.nodes_asked} DHT nodes answered, "
            f"{p.peers_found} peers found, {p.peers_tried} tried, {p.peers_connected} connected, "
            f"{p.metadata_bytes} metadata bytes"
        )

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._status.stop()
