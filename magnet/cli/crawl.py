"""``magnetar crawl``: the typer sub-app over ``crawl`` (mounted by ``magnet.cli.app``).

Parse, call the library, print. Exit codes (``magnet.cli.options``): 0 ok, 1 the crawl could
not run (no bootstrap node resolved or answered, cannot bind), 2 bad input. Heavy modules
(asyncio, sqlite3, rich, the DHT) are imported inside the commands so that the CLI starts fast.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from magnet.cli.options import EXIT_NOT_FOUND, BootstrapOption, fail, parse_bootstrap

__all__ = ["crawl_app"]

crawl_app = typer.Typer(
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode=None,
    no_args_is_help=False,
    help="""Crawl the DHT for info-hashes (BEP 51 sample_infohashes, plus the get_peers and
announce_peer queries other nodes send us) into an SQLite database.

\b
Examples:
  magnetar crawl --db crawl.sqlite --duration 3600
  magnetar crawl --db lab.sqlite --host 127.0.0.1 -b 127.0.0.1:7000 --metadata
  magnetar crawl --db crawl.sqlite --ids 4 --qps 200 --json
  magnetar crawl --db crawl.sqlite export --format jsonl > hashes.jsonl

The database stays readable while the crawl runs (WAL mode); see crawl/io/store.py for
its schema.""",
)


@crawl_app.callback()
def crawl(
    ctx: typer.Context,
    db: Annotated[str, typer.Option("--db", help="SQLite database to write (and export from).")] = (
        "crawl.sqlite"
    ),
    host: Annotated[str, typer.Option(help="Address our DHT nodes bind.")] = "0.0.0.0",
    port: Annotated[
        int,
        typer.Option(
            help="UDP port of the first node; node i uses port+i (0: any).", min=0, max=65535
        ),
    ] = 6881,
    bootstrap: BootstrapOption = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    qps: Annotated[
        float, typer.Option(help="Queries per second, all node ids together.", min=0.1)
    ] = 50.0,
    max_lookups: Annotated[
        int, typer.Option(help="Queries in flight at once.", min=1, max=4096)
    ] = 32,
    bandwidth: Annotated[
        float,
        typer.Option(help="KiB per second, queries and answers (estimated).", min=1.0),
    ] = 128.0,
    ids: Annotated[
        int, typer.Option(help="Node ids to crawl from (one node and port each).", min=1, max=64)
    ] = 1,
    metadata: Annotated[
        bool, typer.Option("--metadata", help="Resolve names and files of new info-hashes.")
    ] = False,
    metadata_concurrency: Annotated[
        int, typer.Option(help="Metadata resolutions at once.", min=1, max=256)
    ] = 8,
    metadata_timeout: Annotated[
        float, typer.Option(help="Seconds to spend on one info-hash's metadata.", min=0.5)
    ] = 30.0,
    scrape: Annotated[
        bool,
        typer.Option(
            "--scrape", help="Estimate seeds and peers of new info-hashes (BEP 33) into 'scrapes'."
        ),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Health summaries as JSON lines on stdout.")
    ] = False,
    allow_private: Annotated[
        bool,
        typer.Option(
            "--allow-private",
            help="Also send to private and loopback addresses learned from the DHT (a lab"
            " network). Binding --host to a loopback or private address implies it for"
            " that kind.",
        ),
    ] = False,
    stats_interval: Annotated[
        float, typer.Option(help="Seconds between health summaries.", min=0.5)
    ] = 60.0,
    startup_timeout: Annotated[
        float, typer.Option(help="Fail (exit 1) if no DHT node answered by then.", min=0.1)
    ] = 20.0,
    seed: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Crawl the DHT for info-hashes into an SQLite database (see the examples above)."""
    from magnet.cli.paths import check_file_target

    check_file_target(db, "--db")  # never a device or a directory (sqlite would write there)
    if port and port + ids - 1 > 65535:
        fail(f"--port {port} leaves no room for {ids} node ids (node i uses port+i, up to 65535)")
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"db": db}
        return
    if duration is not None and duration <= 0:
        fail("--duration must be positive")
    routers = parse_bootstrap(bootstrap)

    from crawl.io.crawler import CrawlConfig
    from crawl.scheduler import SchedulerConfig

    config = CrawlConfig(
        host=host,
        port=port,
        ids=ids,
        bootstrap=routers,
        schedule=SchedulerConfig(qps=qps, bandwidth=bandwidth * 1024, max_in_flight=max_lookups),
        allow_private=allow_private,
        metadata=metadata,
        metadata_concurrency=metadata_concurrency,
        metadata_timeout_s=metadata_timeout,
        scrape=scrape,
        stats_interval_s=stats_interval,
        startup_timeout_s=startup_timeout,
        seed=seed,
    )
    code = _run_crawl(db, config, duration, json_out)
    raise typer.Exit(code)


def _run_crawl(db: str, config: Any, duration: float | None, json_out: bool) -> int:
    import json

    from crawl import run
    from crawl.health import format_health
    from crawl.io.crawler import CrawlError, DatabaseError

    display = _Display(json_out)

    def on_health(h: dict[str, object]) -> None:
        if json_out:
            typer.echo(json.dumps(h))
        else:
            display.note(format_health(h))

    try:
        report = run(db, config, duration=duration, on_health=on_health, on_progress=display.update)
    except DatabaseError as exc:
        display.stop()
        fail(str(exc))
    except CrawlError as exc:
        display.stop()
        typer.echo(f"magnetar: {exc}", err=True)
        return EXIT_NOT_FOUND
    finally:
        display.stop()
    final = dict(report.health)
    final["done"] = True
    final["db"] = db
    if json_out:
        typer.echo(json.dumps(final))
    else:
        typer.echo(format_health(final) + f"; database {db}", err=True)
    return 0


class _Display:
    """A live progress line with rich, only when stderr is a terminal (and not --json)."""

    def __init__(self, json_out: bool) -> None:
        self.live: Any = None
        self._last = 0.0
        if json_out or not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self.live = Live("", console=self.console, refresh_per_second=4, transient=True)
        self.live.start()

    def update(self, p: dict[str, object]) -> None:
        if self.live is None:
            return
        self.live.update(
            f"{p['elapsed_s']:.0f}s  nodes {p['nodes_met']}  BEP 51 nodes {p['bep51_nodes']}  "
            f"samples {p['samples']}  unique {p['unique']}  passive {p['passive']}  "
            f"metadata {p['metadata']}  {p['rate']:.1f} q/s"
        )

    def note(self, line: str) -> None:
        if self.live is not None:
            self.live.console.print(line, highlight=False, markup=False)
        else:
            typer.echo(line, err=True)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


@crawl_app.command("export")
def export_cmd(
    ctx: typer.Context,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="jsonl (one record per info-hash, with files) or csv (without files).",
        ),
    ] = "jsonl",
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    since: Annotated[
        float | None, typer.Option(help="Only info-hashes first seen at or after this Unix time.")
    ] = None,
) -> None:
    """Export the crawl database's info-hashes (with metadata when resolved).

    Example: magnetar crawl --db crawl.sqlite export --format csv -o hashes.csv
    """
    import os
    import sqlite3

    from crawl.io.store import export

    if fmt not in ("jsonl", "csv"):
        fail(f"--format must be jsonl or csv, not {fmt!r}")
    db = (ctx.obj or {}).get("db", "crawl.sqlite")
    if not os.path.exists(db):
        fail(f"no database at {db}")
    try:
        if output is None:
            count = export(db, sys.stdout, fmt, since=since)
        else:
            with open(output, "w", newline="", encoding="utf-8") as f:
                count = export(db, f, fmt, since=since)
    except sqlite3.Error as exc:
        fail(f"cannot read {db}: {exc}")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    if output is not None:
        typer.echo(f"{count} info-hashes written to {output}", err=True)
