"""The ``magnetar`` command line: a thin typer layer over the library."""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="magnetar: a BitTorrent DHT toolkit."
)


@app.callback()
def _root() -> None:
    """magnetar: resolve magnet links, run DHT nodes, crawl the DHT."""


@app.command()
def version() -> None:
    """Print magnetar's version."""
    typer.echo("magnetar 0.1.0")


def main() -> None:
    app()
