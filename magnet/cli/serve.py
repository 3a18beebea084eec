"""``magnetar serve``: publish torrents on the DHT, serve their metadata (``magnet.io.serve``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from magnet.cli.options import EXIT_NOT_FOUND, BootstrapOption, fail, parse_bootstrap, run

__all__ = ["serve"]


def serve(
    torrents: Annotated[
        list[str], typer.Argument(metavar="FILE.torrent...", help="Torrents to publish.")
    ],
    host: Annotated[str, typer.Option(help="Address to bind (TCP and UDP).")] = "0.0.0.0",
    port: Annotated[
        int, typer.Option(help="TCP port for metadata (0: any).", min=0, max=65535)
    ] = 6881,
    dht_port: Annotated[
        int | None, typer.Option(help="UDP port of the DHT node (default: --port).")
    ] = None,
    bootstrap: BootstrapOption = None,
    tracker: Annotated[
        list[str] | None,
        typer.Option(
            "--tracker", metavar="URL", help="Also announce to this tracker (repeatable)."
        ),
    ] = None,
    no_trackers: Annotated[
        bool, typer.Option("--no-trackers", help="Do not announce to the torrents' trackers.")
    ] = False,
    encryption: Annotated[
        str,
        typer.Option(help="Incoming peer encryption (MSE/PE): prefer (accept both), require, off."),
    ] = "prefer",
) -> None:
    """Publish torrents: announce them on the DHT and serve their metadata (no file data).

    Prints each torrent's magnet link, then runs until Ctrl-C.

    Example: magnetar serve ubuntu.torrent --port 6881
    """
    from dht.addresses import format_hostport
    from magnet.io.serve import SERVE_ENCRYPTION
    from magnet.io.serve import run as publish
    from magnet.torrentfile import TorrentError, parse_torrent
    from magnet.uri import format as format_magnet

    metas = []
    for name in torrents:
        try:
            metas.append(parse_torrent(Path(name).read_bytes()))
        except OSError as exc:
            fail(f"cannot read {name}: {exc.strerror or exc}")
        except TorrentError as exc:
            fail(f"{name} is not a valid torrent: {exc}")
    routers = parse_bootstrap(bootstrap)
    if encryption not in SERVE_ENCRYPTION:
        fail(f"--encryption must be one of {', '.join(SERVE_ENCRYPTION)}")

    def print_links(tcp_port: int) -> None:
        for meta in metas:
            typer.echo(format_magnet(meta.magnet()))
        sys.stdout.flush()

    try:
        run(
            publish(
                metas,
                host=host,
                port=port,
                dht_port=dht_port,
                bootstrap=routers,
                encryption=encryption,
                trackers=tuple(tracker or ()),
                use_trackers=not no_trackers,
                on_ready=print_links,
            )
        )
    except OSError as exc:
        fail(f"cannot bind {format_hostport((host, port))}: {exc.strerror or exc}", EXIT_NOT_FOUND)
