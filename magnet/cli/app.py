"""The ``magnetar`` command line: a thin typer layer over the ``dht`` and ``magnet`` libraries.

Commands parse their arguments, call the library and print. Exit codes: 0 success, 1 nothing
found or timed out, 2 bad input. Heavy modules are imported inside the commands so that
``magnetar resolve`` starts fast.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from collections.abc import Sequence

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
        help="DHT node to join through (repeatable, or comma-separated); replaces the public"
        " bootstrap routers.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON lines for scripts.")]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print one line to stderr and exit."""
    typer.echo(f"magnetar: {message}", err=True)
    raise typer.Exit(code)


def parse_bootstrap(values: list[str] | None) -> list[Addr] | None:
    from dht.addresses import parse_hostport

    if not values:
        return None
    try:
        return [parse_hostport(v) for value in values for v in value.split(",") if v.strip()]
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
    host: Annotated[str, typer.Option(help="Address to bind; '::' for IPv4 and IPv6.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="UDP port to bind.", min=0, max=65535)] = 6881,
    bootstrap: BootstrapOption = None,
    state: Annotated[
        str | None,
        typer.Option(help="File keeping the node id and routing table across restarts."),
    ] = None,
    status_interval: Annotated[
        float, typer.Option(help="Seconds between status log lines.", min=0.1)
    ] = 60.0,
    stats_interval: Annotated[
        float | None,
        typer.Option(help="Print a JSON stats line on stdout every this many seconds."),
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT", help="Serve Prometheus metrics (needs prometheus-client)."
        ),
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="BEP 43: answer no queries (ro=1).")
    ] = False,
    bootstrap_mode: Annotated[
        bool,
        typer.Option(
            "--bootstrap-mode",
            help="Run as a bootstrap router: a large pool of verified nodes, no peer storage.",
        ),
    ] = False,
    pool_size: Annotated[
        int, typer.Option(help="Bootstrap mode: nodes in the pool.", min=8)
    ] = 100_000,
    enforce_node_id: Annotated[
        bool,
        typer.Option("--enforce-node-id", help="BEP 42: keep nodes with non-conforming ids out."),
    ] = False,
    rate_limit: Annotated[
        float, typer.Option(help="Queries/s one source IP may send (0: no limit).", min=0)
    ] = 50.0,
    rate_burst: Annotated[float, typer.Option(help="Burst allowed per source IP.", min=1)] = 200.0,
    max_query_rate: Annotated[
        float, typer.Option(help="Queries/s answered in all (0: no limit).", min=0)
    ] = 0.0,
    max_out_rate: Annotated[
        float, typer.Option(help="Queries/s this node sends in all (0: no limit).", min=0)
    ] = 500.0,
    max_pending: Annotated[int, typer.Option(help="Queries of ours in flight.", min=16)] = 4096,
    max_info_hashes: Annotated[int, typer.Option(help="Info-hashes stored.", min=1)] = 20_000,
    max_peers: Annotated[int, typer.Option(help="Peers stored in all.", min=1)] = 200_000,
) -> None:
    """Run a DHT node until SIGINT/SIGTERM, logging a status line periodically.

    Examples:

      magnetar node --port 6881 --state ~/.magnetar/node.state --stats-interval 60

      magnetar node --host :: --bootstrap-mode --metrics 127.0.0.1:9100
    """
    from dht.addresses import parse_hostport
    from dht.io.daemon import NodeService, serve_node
    from dht.io.node import run
    from dht.protocol import DhtConfig

    routers = parse_bootstrap(bootstrap)
    metrics_addr = None
    if metrics:
        try:
            metrics_addr = parse_hostport(metrics)
        except ValueError as exc:
            fail(f"bad --metrics {exc}")
    if stats_interval is not None and stats_interval <= 0:
        fail("--stats-interval must be positive")
    config = DhtConfig(
        read_only=read_only,
        bootstrap_mode=bootstrap_mode,
        pool_size=pool_size,
        enforce_node_id=enforce_node_id,
        secure_id=True,
        rate_per_ip=rate_limit,
        rate_burst=rate_burst,
        max_query_rate=max_query_rate,
        max_out_rate=max_out_rate,
        max_pending=max_pending,
        max_peer_hashes=max_info_hashes,
        max_total_peers=max_peers,
    )
    service = NodeService(
        host=host,
        port=port,
        routers=routers,
        config=config,
        status_interval=status_interval,
        stats_interval=stats_interval,
        state_path=state,
        metrics=metrics_addr,
    )
    try:
        run(serve_node(service))
    except ImportError as exc:
        fail(f"--metrics needs prometheus-client ({exc})", EXIT_NOT_FOUND)
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

    from dht.addresses import parse_hostport
    from dht.io.node import DhtQueryError, Node, run
    from dht.io.routers import resolve_routers
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

    from dht.addresses import format_hostport
    from dht.ids import parse_info_hash
    from dht.io.node import Node, run
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


def _read_links(args: list[str]) -> list[str]:
    """Magnet links from arguments; ``-`` reads stdin, an existing file is read a link a line."""
    from pathlib import Path

    links: list[str] = []
    for arg in args:
        if arg == "-":
            lines = sys.stdin.read().splitlines()
        elif not arg.startswith("magnet:") and len(arg) not in (32, 40, 64) and Path(arg).is_file():
            lines = Path(arg).read_text(errors="replace").splitlines()
        else:
            lines = [arg]
        links.extend(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    return links


@app.command()
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
) -> None:
    """Resolve magnet links into verified .torrent files, using the DHT (no tracker needed).

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
    opts = _ResolveOptions(
        timeout=timeout,
        max_connections=max_connections,
        max_metadata_mib=max_metadata_size,
        use_dht=not no_dht,
        use_trackers=not no_trackers,
        trackers=tuple(tracker or ()),
        encryption=encryption,
    )
    routers = parse_bootstrap(bootstrap)
    from magnet.uri import MagnetError, parse_info_hash_or_magnet

    if len(links) == 1:
        try:
            link = parse_info_hash_or_magnet(links[0])
        except MagnetError as exc:
            fail(f"bad magnet link: {exc}")
        _preload_http_client(opts, link.trackers)
        from dht.io.node import run

        code = run(_resolve_one(link, output, routers, json_out, opts))
    else:
        # Percent-encoding leaves letters alone: "tr=http" finds http and https trackers.
        _preload_http_client(opts, ["http"] if any("tr=http" in s.lower() for s in links) else [])
        from dht.io.node import run

        code = run(_resolve_bulk(links, output, routers, json_out, concurrency, opts))
    raise typer.Exit(code)


def _preload_http_client(opts: _ResolveOptions, link_trackers: Sequence[str]) -> None:
    """Start importing the HTTP client now if an HTTP tracker will be asked: it then loads
    alongside the DHT and resolver modules instead of after them (~0.05 s sooner here)."""
    if opts.use_trackers and any(
        url.lower().startswith("http") for url in (*link_trackers, *opts.trackers)
    ):
        from magnet.io.trackers import preload_http_client

        preload_http_client()


@dataclass(frozen=True, slots=True)
class _ResolveOptions:
    timeout: float
    max_connections: int
    max_metadata_mib: int
    use_dht: bool
    use_trackers: bool
    trackers: tuple[str, ...]
    encryption: str

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
        }


async def _resolve_one(
    link: object,
    output: str | None,
    routers: list[Addr] | None,
    json_out: bool,
    opts: _ResolveOptions,
) -> int:
    import json

    from magnet.io.output import error_record, human_size, output_path, result_record, write_atomic
    from magnet.io.resolve import ResolveError, resolve
    from magnet.uri import MagnetLink

    assert isinstance(link, MagnetLink)
    show = _progress_display(json_out)
    try:
        result = await resolve(
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
            f"from {result.peer[0]}:{result.peer[1]} ({result.source})"
        )
    return 0


async def _resolve_bulk(
    links: list[str],
    output: str | None,
    routers: list[Addr] | None,
    json_out: bool,
    concurrency: int,
    opts: _ResolveOptions,
) -> int:
    import json

    from dht.io.node import Node
    from dht.protocol import DhtConfig
    from magnet.io.bulk import resolve_many
    from magnet.io.output import error_record, output_path, result_record, write_atomic
    from magnet.io.resolve import ResolveError

    failed = 0
    async with Node(
        "0.0.0.0", 0, bootstrap_routers=routers, config=DhtConfig(read_only=True)
    ) as node:
        if await node.bootstrap() == 0:
            logging.getLogger("magnetar").warning(
                "no DHT node answered the bootstrap; trying anyway"
            )
        async for link, result in resolve_many(
            links,
            node=node,
            concurrency=concurrency,
            **opts.resolve_options(),
        ):
            if isinstance(result, ResolveError):
                failed += 1
                if json_out:
                    typer.echo(json.dumps(error_record(link, result)))
                else:
                    typer.echo(f"FAILED {link}: {result.reason}")
                continue
            path = output_path(result, output, directory=True)
            try:
                write_atomic(path, result.torrent())
            except OSError as exc:
                failed += 1
                typer.echo(f"FAILED {link}: cannot write {path}: {exc.strerror or exc}")
                continue
            if json_out:
                typer.echo(json.dumps(result_record(result, path)))
            else:
                typer.echo(f"{result.link.info_hash_hex} {path} ({result.seconds:.2f} s)")
    return EXIT_NOT_FOUND if failed else 0


class _ProgressLine:
    """A live status line on stderr while resolving (only on a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.status import Status

        self._status = Status("resolving: starting", console=Console(stderr=True))
        self._status.start()
        self._stopped = False

    def update(self, p: object) -> None:
        from magnet.io.resolve import Progress

        assert isinstance(p, Progress)
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


def _progress_display(json_out: bool) -> _ProgressLine | None:
    if json_out or not sys.stderr.isatty():
        return None
    return _ProgressLine()


@app.command()
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
    import asyncio
    from pathlib import Path

    from dht.io.daemon import stop_on_signals
    from dht.io.node import Node, run
    from magnet.io.serve import SERVE_ENCRYPTION, serve_torrents
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

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        udp_port = port if dht_port is None else dht_port
        with stop_on_signals(stop):
            await publish(stop, loop, udp_port)

    async def publish(stop: asyncio.Event, loop: asyncio.AbstractEventLoop, udp_port: int) -> None:
        async with Node(host, udp_port, bootstrap_routers=routers) as node:
            size = await node.bootstrap()
            logging.getLogger("magnetar").info("joined the DHT: %d nodes", size)
            ready: asyncio.Future[int] = loop.create_future()
            job = asyncio.create_task(
                serve_torrents(
                    metas,
                    node=node,
                    host=host,
                    port=port,
                    stop=stop,
                    ready=ready,
                    encryption=encryption,
                    trackers=tuple(tracker or ()),
                    use_trackers=not no_trackers,
                )
            )
            tcp_port = await ready
            for meta in metas:
                typer.echo(format_magnet(meta.magnet()))
            sys.stdout.flush()
            logging.getLogger("magnetar").info(
                "serving %d torrents on TCP port %d, DHT on UDP port %d",
                len(metas),
                tcp_port,
                node.addr[1],
            )
            await job

    try:
        run(main())
    except OSError as exc:
        fail(f"cannot bind {host}:{port}: {exc.strerror or exc}", EXIT_NOT_FOUND)


@app.command()
def scrape(
    tracker: Annotated[
        str, typer.Argument(metavar="URL", help="udp://, http:// or https:// tracker.")
    ],
    info_hashes: Annotated[
        list[str], typer.Argument(metavar="INFOHASH...", help="Info-hashes or magnet links.")
    ],
    timeout: Annotated[
        float, typer.Option(help="Give up after this many seconds.", min=0.1)
    ] = 15.0,
    json_out: JsonOption = False,
) -> None:
    """Ask a tracker how many seeders and leechers it knows for each info-hash.

    Example: magnetar scrape udp://tracker.example:6969/announce 0123...4567
    """
    import asyncio
    import json

    from magnet.io.trackers import TrackerError
    from magnet.io.trackers import scrape as tracker_scrape
    from magnet.uri import MagnetError, parse_info_hash_or_magnet

    keys = []
    for text in info_hashes:
        try:
            keys.append(parse_info_hash_or_magnet(text).dht_key)
        except MagnetError as exc:
            fail(f"bad info-hash {text!r}: {exc}")

    async def main() -> None:
        try:
            stats = await asyncio.wait_for(
                tracker_scrape(tracker, keys, timeout=timeout), timeout + 1
            )
        except TrackerError as exc:
            fail(f"{tracker}: {exc.reason}", EXIT_NOT_FOUND)
        except TimeoutError:
            fail(f"{tracker}: no answer in {timeout:g} s", EXIT_NOT_FOUND)
        for key in keys:
            st = stats.get(key)
            if json_out:
                record = {"info_hash": key.hex(), "known": st is not None}
                if st is not None:
                    record.update(seeders=st.seeders, leechers=st.leechers, completed=st.completed)
                typer.echo(json.dumps(record))
            elif st is None:
                typer.echo(f"{key.hex()} not known to the tracker")
            else:
                counts = f"seeders {st.seeders} leechers {st.leechers} completed {st.completed}"
                typer.echo(f"{key.hex()} {counts}")

    from dht.io.node import run

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

    from dht.io.daemon import stop_on_signals
    from dht.io.node import run
    from dht.io.testnet import Testnet

    async def main() -> None:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            await run_testnet(stop)

    async def run_testnet(stop: asyncio.Event) -> None:
        async with Testnet(nodes, host=host, port=port) as net:
            typer.echo(json.dumps(net.describe()), nl=True)
            sys.stdout.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)

    try:
        run(main())
    except OSError as exc:
        fail(f"cannot start the testnet on {host}: {exc.strerror or exc}", EXIT_NOT_FOUND)


def _mount_crawl() -> None:
    # The crawl commands live in their own module (their options are many); typer needs the
    # sub-app object, which is cheap: the crawler itself is imported when a crawl starts.
    from magnet.cli.crawl import crawl_app

    app.add_typer(crawl_app, name="crawl")


_mount_crawl()


def main() -> NoReturn:
    """The ``magnetar`` entry point: run the command, then leave without tearing down.

    Everything a command owns (files, sockets, state saves) is closed by the time it returns,
    so the interpreter's own shutdown (collecting every object, unloading every module) only
    costs time: ~20 ms after a resolve that took 5. Flush what is buffered and exit at once.
    """
    code: int | str | None
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # stdout closed or a broken pipe: nothing more to say
        code = code or 1
    logging.shutdown()
    os._exit(code or 0)
