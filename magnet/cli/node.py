"""``magnetar node``: run a DHT node as a long-lived service (``dht.io.daemon.serve_node``)."""

from __future__ import annotations

from typing import Annotated

import typer

from magnet.cli.options import EXIT_NOT_FOUND, BootstrapOption, fail, parse_bootstrap, run

__all__ = ["node", "parse_keep"]


def parse_keep(value: str) -> tuple[bytes, bytes]:
    """``--keep TARGET[:SALT_HEX]`` as (target, salt); a bad one fails with exit code 2."""
    from dht.items import MAX_SALT_BYTES

    target_hex, _, salt_hex = value.partition(":")
    try:
        target = bytes.fromhex(target_hex)
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        fail(f"bad --keep {value!r}: TARGET[:SALT_HEX] in hex")
    if len(target) != 20:
        fail(f"bad --keep {value!r}: the target is 40 hex digits")
    if len(salt) > MAX_SALT_BYTES:
        fail(f"bad --keep {value!r}: the salt is at most {MAX_SALT_BYTES} bytes")
    return target, salt


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
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep",
            metavar="TARGET[:SALT_HEX]",
            help="BEP 44: keep this item alive (put it again hourly, following its newer "
            "seq); repeatable. A mutable item's salt is given in hex.",
        ),
    ] = None,
) -> None:
    """Run a DHT node until SIGINT/SIGTERM, logging a status line periodically.

    Examples:

      magnetar node --port 6881 --state ~/.magnetar/node.state --stats-interval 60

      magnetar node --host :: --bootstrap-mode --metrics 127.0.0.1:9100

      magnetar node --keep 4a5b...e2f0:686f6d65
    """
    from dht.addresses import format_hostport, parse_hostport
    from dht.io.daemon import BindError, NodeService, serve_node
    from dht.protocol import DhtConfig

    routers = parse_bootstrap(bootstrap)
    kept = [parse_keep(value) for value in keep or ()]
    if state is not None:
        # Before anything binds: a device or a directory given as the state file is a
        # mistake to refuse (saving would replace it), not a file to move aside.
        from magnet.cli.paths import check_file_target

        check_file_target(state, "--state")
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
        keep=kept,
    )
    try:
        run(serve_node(service))
    except ImportError as exc:
        fail(f"--metrics needs prometheus-client ({exc})", EXIT_NOT_FOUND)
    except BindError as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    except OSError as exc:
        fail(f"cannot bind {format_hostport((host, port))}: {exc.strerror or exc}", EXIT_NOT_FOUND)
