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
        int | None,
        typer.Option(help="UDP port of the DHT node (default: --port).", min=0, max=65535),
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
    no_utp: Annotated[
        bool,
        typer.Option("--no-utp", help="Accept TCP only (no uTP on the port's UDP number)."),
    ] = False,
) -> None:
    """Publish torrents: announce them on the DHT and serve their metadata (no file data).

    Peers connect over TCP or uTP (BEP 29) on --port; the DHT node shares that UDP port
    unless --dht-port says otherwise. Prints each torrent's magnet link, then runs until
    Ctrl-C.

    Example: magnetar serve ubuntu.torrent --port 6881
    """
    from magnet.io.serve import SERVE_ENCRYPTION
    from magnet.io.serve import run as publish
    from magnet.torrentfile import TorrentError, parse_torrent
    from magnet.uri import format as format_magnet

    metas = []
    for name in torrents:
        try:
            if Path(name).exists() and not Path(name).is_file():
                # /dev/zero would be read until memory runs out; a FIFO would block.
                fail(f"cannot read {name}: not a regular file")
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
                utp=not no_utp,
                on_ready=print_links,
            )
        )
    except OSError as exc:
        where = _unbindable(host, port, dht_port, utp=not no_utp)
        fail(f"cannot bind {where}: {exc.strerror or exc}", EXIT_NOT_FOUND)


def _unbindable(host: str, tcp_port: int, dht_port: int | None, *, utp: bool = False) -> str:
    """Which of our two ports could not be bound, found by trying each again now (the
    library's OSError does not say; naming --port for a taken --dht-port misleads)."""
    import socket

    from dht.addresses import format_hostport

    def free(kind: int, port: int) -> bool:
        if port == 0:
            return True  # any port: never the one that was taken
        hosts = ["::", "0.0.0.0"] if host == "::" else [host]
        for h in hosts:
            family = socket.AF_INET6 if ":" in h else socket.AF_INET
            try:
                with socket.socket(family, kind) as sock:
                    if kind == socket.SOCK_STREAM:  # as asyncio's server does
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.bind((h, port))
            except OSError:
                return False
        return True

    udp_port, udp_option = (tcp_port, "--port") if dht_port is None else (dht_port, "--dht-port")
    udp = f"{format_hostport((host, udp_port))} (UDP, {udp_option})"
    tcp = f"{format_hostport((host, tcp_port))} (TCP, --port)"
    if not free(socket.SOCK_DGRAM, udp_port):
        return udp
    if not free(socket.SOCK_STREAM, tcp_port):
        return tcp
    if utp and dht_port is not None and not free(socket.SOCK_DGRAM, tcp_port):
        return f"{format_hostport((host, tcp_port))} (UDP for uTP, --port; --no-utp goes without)"
    return f"{tcp} or {udp}"
