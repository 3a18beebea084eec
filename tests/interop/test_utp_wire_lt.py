"""uTP on the wire with libtorrent 2.1.1 on loopback: `magnetar resolve` against seeds that
accept only uTP, and libtorrent clients with default settings (uTP dialled first) against
what `magnetar serve` runs.

The harness's default settings switch libtorrent's uTP off (`PRIVATE_LOOPBACK_SETTINGS`:
session teardown is slower with it); the sessions here switch it back on, or turn TCP off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from magnet.torrentfile import info_span, parse_torrent
from tests.interop.conftest import require_libtorrent
from tests.interop.magnetar_cli import run_resolve
from tests.interop.ports import free_tcp_udp_port

if TYPE_CHECKING:
    from tests.interop.ltswarm import LtNode, LtSwarm, TorrentSpec

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

#: libtorrent's own defaults for peer connections: uTP and TCP, both ways.
DEFAULT_TRANSPORTS: dict[str, Any] = {"enable_outgoing_utp": True, "enable_incoming_utp": True}
#: A seed that takes no TCP at all: reachable over uTP only.
UTP_ONLY: dict[str, Any] = {
    **DEFAULT_TRANSPORTS,
    "enable_incoming_tcp": False,
    "enable_outgoing_tcp": False,
}


@pytest.fixture(scope="module")
def utp_seed(lt_swarm: LtSwarm) -> LtNode:
    """A uTP-only libtorrent node joined to the module's swarm."""
    return lt_swarm.add_node(**UTP_ONLY)


def magnetar_resolve(
    magnet: str, boot: tuple[str, int], out: Path, *extra: str, timeout: float = 30
) -> tuple[int, dict[str, Any], str]:
    """`magnetar resolve --json` as a user runs it: (exit code, JSON record, stderr)."""
    return run_resolve(magnet, out, *extra, boot=boot, timeout=timeout)


@pytest.mark.parametrize("kind", ["single", "multi", "big"])
def test_resolve_from_a_utp_only_libtorrent_seed_is_byte_identical(
    lt_swarm: LtSwarm,
    utp_seed: LtNode,
    make_lt_torrent: Callable[..., TorrentSpec],
    tmp_path: Path,
    kind: str,
) -> None:
    spec = make_lt_torrent(kind)
    if kind == "big":
        assert len(spec.info) > 1024 * 1024
    lt_swarm.seed(spec, node=utp_seed)
    out = tmp_path / "resolved.torrent"
    code, record, err = magnetar_resolve(spec.magnet, lt_swarm.bootstrap_addrs()[0], out)
    assert code == 0, (record, err)
    data = out.read_bytes()
    assert data[info_span(data)] == spec.info
    peer = f"{utp_seed.ip}:{utp_seed.port}"
    assert record["peer"] == peer and record["transport"] == "utp"
    assert record["connections"][peer] == "utp"


def test_tcp_only_resolve_of_a_utp_only_seed_fails_clearly(
    lt_swarm: LtSwarm,
    utp_seed: LtNode,
    make_lt_torrent: Callable[..., TorrentSpec],
    tmp_path: Path,
) -> None:
    spec = make_lt_torrent("single", name="tcp-misses-utp")
    lt_swarm.seed(spec, node=utp_seed)
    code, record, _ = magnetar_resolve(
        spec.magnet,
        lt_swarm.bootstrap_addrs()[0],
        tmp_path / "x",
        "--transport",
        "tcp",
        timeout=8,
    )
    assert code == 1 and record["ok"] is False
    # libtorrent with TCP off accepts a TCP connection and hangs up at once.
    assert "closed during handshake" in record["error"], record
    assert "over TCP only: peers that accept only uTP are missed" in record["error"]


def test_utp_only_resolve_of_a_tcp_only_seed_fails_clearly(
    lt_swarm: LtSwarm,
    make_lt_torrent: Callable[..., TorrentSpec],
    tmp_path: Path,
) -> None:
    spec = make_lt_torrent("single", name="utp-misses-tcp")
    seeder = lt_swarm.seed(spec, node=3)  # the harness's settings: uTP off
    code, record, _ = magnetar_resolve(
        spec.magnet,
        lt_swarm.bootstrap_addrs()[0],
        tmp_path / "x",
        "--transport",
        "utp",
        timeout=8,
    )
    assert code == 1 and record["ok"] is False, seeder
    assert "utp: no answer" in record["error"] or "utp: uTP peer reset" in record["error"]
    assert "over UTP only: peers that accept only TCP are missed" in record["error"]


# --- libtorrent clients against what `magnetar serve` runs ---------------------------------


@pytest.fixture
def transports_served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The transport of every connection `magnet.io.serve` accepts, in order."""
    import magnet.io.serve as serve_mod

    seen: list[str] = []
    original = serve_mod._ServeProtocol.connection_made

    def spy(self: Any, transport: Any) -> None:
        # A TCP transport has a socket of its own; a uTP one rides the shared UDP socket.
        seen.append("tcp" if transport.get_extra_info("socket") is not None else "utp")
        original(self, transport)

    monkeypatch.setattr(serve_mod._ServeProtocol, "connection_made", spy)
    return seen


def serve_and_fetch(
    swarm: LtSwarm, spec: TorrentSpec, client_ips: list[str], deadline_s: float = 30.0
) -> list[float]:
    """Run what `magnetar serve --port P` runs (DHT and TCP and uTP on one port number),
    joined to ``swarm``; once it has announced, libtorrent clients with default transport
    settings on ``client_ips``, one after another, resolve the bare magnet. Their times."""
    require_libtorrent()
    from magnet.io.serve import run
    from tests.interop.ltswarm import LtNode

    meta = parse_torrent(spec.torrent)
    port = free_tcp_udp_port()

    async def main() -> list[float]:
        stop = asyncio.Event()
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(
            run(
                [meta],
                host="127.0.0.1",
                port=port,
                bootstrap=swarm.bootstrap_addrs()[:4],
                use_trackers=False,
                on_ready=ready.set_result,
                stop=stop,
            )
        )
        try:
            assert await asyncio.wait_for(ready, 20) == port
            await asyncio.to_thread(
                swarm.wait_announced, spec.info_hash, 2, 20.0, ("127.0.0.1", port)
            )

            def fetch(ip: str) -> float:
                with LtNode(ip, dht_nodes=swarm.bootstrap_addrs(), **DEFAULT_TRANSPORTS) as c:
                    c.wait_for(lambda: c._state.bootstrapped, 5.0, "dht_bootstrap_alert")
                    got = c.resolve_magnet(spec.magnet, timeout=deadline_s)
                    assert got.info == spec.info
                    return got.elapsed

            return [await asyncio.to_thread(fetch, ip) for ip in client_ips]
        finally:
            stop.set()
            await asyncio.wait_for(server, 20)

    return asyncio.run(main())


def test_a_default_libtorrent_client_gets_metadata_from_serve_over_utp(
    lt_swarm: LtSwarm,
    make_lt_torrent: Callable[..., TorrentSpec],
    transports_served: list[str],
) -> None:
    spec = make_lt_torrent("multi", name="serve-to-default-lt")
    (elapsed,) = serve_and_fetch(lt_swarm, spec, ["127.0.6.2"])
    # libtorrent dials uTP first; before serve answered uTP it waited ~4.5 s for that to
    # time out and then used TCP. Now the first connection is uTP and it is the one used.
    assert transports_served and transports_served[0] == "utp", transports_served
    assert elapsed < 30.0


def test_several_libtorrent_clients_one_after_another_all_get_metadata(
    lt_swarm: LtSwarm,
    make_lt_torrent: Callable[..., TorrentSpec],
    transports_served: list[str],
) -> None:
    spec = make_lt_torrent("single", name="serve-to-several")
    clients = [f"127.0.6.{i}" for i in range(3, 7)]
    times = serve_and_fetch(lt_swarm, spec, clients)
    assert len(times) == len(clients)
    assert transports_served.count("utp") >= len(clients), transports_served
