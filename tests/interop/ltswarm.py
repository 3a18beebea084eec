"""libtorrent 2.1.1 as DHT nodes, seeders and magnet clients on loopback.

This harness runs real libtorrent sessions as peers for interop tests and benchmarks. It has no
pytest dependency: ``scripts/`` import it too (with the repository root on ``sys.path``).

The settings are the ones ``shared/README.md`` found to work on a private loopback DHT:

* every node listens on its own ``127.0.0.N:port`` (never a wildcard: libtorrent runs no DHT on
  a socket it marks as local network) and sends from that address only;
* ``dht_bootstrap_nodes`` is empty, LSD/UPnP/NAT-PMP/IP notifier are off and an IP filter lets
  only 127.0.0.0/8 and ::1 through, so no packet leaves the machine;
* ``dht_restrict_routing_ips``/``dht_restrict_search_ips`` are off (all of 127.0.0.x is one
  /24, which would otherwise leave one node per table), DHT rate limits are raised;
* nodes learn each other through ``add_dht_node``: nodes given as *bootstrap* nodes count as
  routers and never enter routing tables.

Ports are chosen by the OS (``127.0.0.N:0``), so swarms of several processes or worktrees can run
at once on the same addresses. libtorrent binds its TCP listen socket and its UDP (uTP + DHT)
socket to the same port.

Typical use::

    with LtSwarm(8) as swarm:
        spec = make_torrent(tmp, "single")
        swarm.seed(spec)
        client = swarm.add_node()
        got = client.resolve_magnet(spec.magnet, timeout=10)
        assert got.info == spec.info

Objects here are not thread-safe: drive each node (and a swarm) from one thread. Waiting
methods pump the node's alert queue; alerts are dispatched into per-node state (incoming
announces, get_peers results, metadata) so no alert is lost to another waiter.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import libtorrent as lt

from scripts.lt_resolve_client import PRIVATE_LOOPBACK_SETTINGS

Addr = tuple[str, int]

__all__ = [
    "DEFAULT_ALERT_MASK",
    "LOAD_TEST_SETTINGS",
    "QUIET_ALERT_MASK",
    "Addr",
    "LtNode",
    "LtSwarm",
    "Resolved",
    "TorrentKind",
    "TorrentSpec",
    "TorrentVersion",
    "close_all",
    "loopback_settings",
    "make_torrent",
]

_cat = lt.alert.category_t
#: Alerts the harness needs: errors, listen/metadata status, DHT events (bootstrap, incoming
#: announces) and DHT operations (``dht_get_peers_reply_alert``). ``dht_live_nodes_alert`` and
#: ``dht_stats_alert`` are posted on request whatever the mask.
DEFAULT_ALERT_MASK: int = (
    _cat.error_notification
    | _cat.status_notification
    | _cat.dht_notification
    | _cat.dht_operation_notification
)
#: For load targets: with ``dht_notification`` every incoming get_peers posts an alert.
QUIET_ALERT_MASK: int = _cat.error_notification | _cat.status_notification

#: DHT rate limits raised so that a benchmark flood is not silently dropped (see
#: shared/README.md). ``dht_upload_rate_limit`` must stay in 1..715,827,882: libtorrent caps its
#: send quota at ``3 * limit`` in a 32-bit int (dht_tracker::has_quota), so 2**30 overflows to a
#: negative quota and every query is dropped; 0 drops every query too. 10 MB/s would cap a
#: sustained flood at ~43k replies/s (replies to the ping/find_node/get_peers mix average ~230
#: bytes) once its 3 s burst allowance is spent, hence 100 MB/s.
LOAD_TEST_SETTINGS: dict[str, Any] = {
    "dht_upload_rate_limit": 100_000_000,
    "dht_block_ratelimit": 1_000_000,
    "dht_block_timeout": 1,
    "alert_mask": QUIET_ALERT_MASK,
}


def loopback_settings(ip: str, port: int = 0, **overrides: Any) -> dict[str, Any]:
    """The settings pack (as a dict) of a private-loopback DHT node at ``ip:port``.

    Args:
        ip: the node's own loopback address, e.g. ``"127.0.0.5"`` (or ``"::1"``).
        port: TCP and UDP port; 0 lets the OS choose one.
        overrides: any libtorrent setting by name, applied last.
    """
    listen = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    settings: dict[str, Any] = {
        **PRIVATE_LOOPBACK_SETTINGS,
        "listen_interfaces": listen,
        "outgoing_interfaces": ip,
        "enable_dht": True,
        "alert_mask": DEFAULT_ALERT_MASK,
        "user_agent": "magnetar-ltswarm",
    }
    settings.update(overrides)
    return settings


def _loopback_ip_filter() -> Any:
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1)
    f.add_rule("127.0.0.0", "127.255.255.255", 0)
    f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    f.add_rule("::1", "::1", 0)
    return f


def _endpoint(ep: Any) -> Addr:
    host, port = ep[0], ep[1]
    return (str(host), int(port))


# --------------------------------------------------------------------------------------------
# Torrents


@dataclass(frozen=True, slots=True)
class TorrentSpec:
    """A torrent made by :func:`make_torrent`, with its data on disk.

    Attributes:
        torrent: the whole ``.torrent`` file, bencoded.
        info: the exact bencoded info dict (what ut_metadata transfers).
        info_hash: the 20-byte DHT key: v1 info-hash (SHA-1 of ``info``); for a v2-only torrent
            the v2 info-hash truncated to 20 bytes.
        info_hash_v2: the 32-byte v2 info-hash (SHA-256 of ``info``) of hybrid/v2 torrents.
        name: the torrent's name (file or top directory name).
        path: the data on disk: the file (single) or the top directory (multi).
        save_path: the directory to give libtorrent as ``save_path`` (``path``'s parent).
        magnet: a bare magnet: ``magnet:?xt=urn:btih:<hex>`` (``urn:btmh`` for v2-only).
        piece_length, total_size, num_files: as in the info dict.
    """

    torrent: bytes
    info: bytes
    info_hash: bytes
    info_hash_v2: bytes | None
    name: str
    path: Path
    save_path: Path
    magnet: str
    piece_length: int
    total_size: int
    num_files: int

    @property
    def magnet_full(self) -> str:
        """A magnet naming every hash (``btih`` and ``btmh`` for hybrids) and ``dn``."""
        parts = []
        if self.info_hash_v2 is None or hashlib.sha1(self.info).digest() == self.info_hash:
            parts.append(f"xt=urn:btih:{self.info_hash.hex()}")
        if self.info_hash_v2 is not None:
            parts.append(f"xt=urn:btmh:1220{self.info_hash_v2.hex()}")
        parts.append(f"dn={self.name}")
        return "magnet:?" + "&".join(parts)

    def torrent_info(self) -> Any:
        """A fresh ``lt.torrent_info`` of this torrent."""
        return lt.torrent_info(self.torrent)


TorrentKind = Literal["single", "multi", "big"]
TorrentVersion = Literal["v1", "hybrid", "v2"]

#: Smallest piece length libtorrent accepts; also the ut_metadata block size.
PIECE_16K = 16 * 1024


def make_torrent(
    workdir: Path,
    kind: TorrentKind = "single",
    *,
    name: str | None = None,
    version: TorrentVersion = "v1",
    seed: int | None = None,
    piece_length: int = PIECE_16K,
    big_info_size: int = 1024 * 1024 + 4096,
) -> TorrentSpec:
    """Write a torrent's data under ``workdir`` and make the torrent.

    Kinds:
        ``single``: one file of ~200 KiB random bytes.
        ``multi``: five files (one in a subdirectory) of random bytes, ~150 KiB in all.
        ``big``: one sparse file of zeros with enough 16 KiB pieces that the bencoded info dict
            exceeds ``big_info_size`` (default just over 1 MiB, i.e. ~66 ut_metadata blocks).
            The data (~850 MiB) takes no disk space and is not read: all pieces have the same
            hash, computed once. v1 only.

    Args:
        workdir: an existing directory (e.g. pytest's ``tmp_path``); data goes in a fresh
            subdirectory, so several torrents can share it.
        name: torrent name; default a unique ``<kind>-<random hex>``.
        version: ``v1`` (default), ``hybrid`` (v1+v2) or ``v2``.
        seed: seeds the file contents (and default name) for reproducible info-hashes; default
            random, so every call gives a new info-hash.
        piece_length: piece length in bytes (power of two >= 16 KiB).
    """
    rng = random.Random(seed) if seed is not None else random.Random(os.urandom(16))
    name = name or f"{kind}-{rng.randbytes(4).hex()}"
    save_path = Path(tempfile.mkdtemp(prefix="torrent-", dir=workdir))
    root = save_path / name
    if kind == "big":
        if version != "v1":
            raise ValueError("big torrents are v1 only")
        return _make_big(root, save_path, name, piece_length, big_info_size)
    if kind == "single":
        root.write_bytes(rng.randbytes(200 * 1024 + 123))
    elif kind == "multi":
        (root / "sub").mkdir(parents=True)
        sizes = {
            "a.bin": 64 * 1024,
            "b.txt": 1000,
            "c.dat": 40 * 1024 + 7,
            "sub/d.bin": 33 * 1024,
            "sub/e": 12 * 1024 + 1,
        }
        for rel, size in sizes.items():
            (root / rel).write_bytes(rng.randbytes(size))
    else:
        raise ValueError(f"unknown torrent kind {kind!r}")
    flags = {"v1": lt.create_torrent.v1_only, "hybrid": 0, "v2": lt.create_torrent.v2_only}
    ct = lt.create_torrent(lt.list_files(str(root)), piece_length, flags[version])
    ct.set_creator("magnetar ltswarm")
    lt.set_piece_hashes(ct, str(save_path))
    return _spec(lt.bencode(ct.generate()), name, root, save_path)


def _make_big(
    root: Path, save_path: Path, name: str, piece_length: int, info_size: int
) -> TorrentSpec:
    num_pieces = info_size // 20 + 1
    size = num_pieces * piece_length
    with root.open("wb") as f:
        f.truncate(size)  # sparse: no blocks written
    entry = lt.create_file_entry(name, size)
    ct = lt.create_torrent([entry], piece_length, lt.create_torrent.v1_only)
    ct.set_creator("magnetar ltswarm")
    zero_hash = hashlib.sha1(bytes(piece_length)).digest()
    for i in range(num_pieces):
        ct.set_hash(i, zero_hash)
    spec = _spec(lt.bencode(ct.generate()), name, root, save_path)
    assert len(spec.info) > info_size
    return spec


def _spec(torrent: bytes, name: str, root: Path, save_path: Path) -> TorrentSpec:
    ti = lt.torrent_info(torrent)
    info = bytes(ti.info_section())
    hashes = ti.info_hashes()
    v2 = hashes.v2.to_bytes() if hashes.has_v2() else None
    if hashes.has_v1():
        ih = hashes.v1.to_bytes()
        assert ih == hashlib.sha1(info).digest()
        magnet = f"magnet:?xt=urn:btih:{ih.hex()}"
    else:
        assert v2 is not None
        ih = v2[:20]
        magnet = f"magnet:?xt=urn:btmh:1220{v2.hex()}"
    if v2 is not None:
        assert v2 == hashlib.sha256(info).digest()
    return TorrentSpec(
        torrent=torrent,
        info=info,
        info_hash=ih,
        info_hash_v2=v2,
        name=name,
        path=root,
        save_path=save_path,
        magnet=magnet,
        piece_length=ti.piece_length(),
        total_size=ti.total_size(),
        num_files=ti.num_files(),
    )


# --------------------------------------------------------------------------------------------
# One node


@dataclass(frozen=True, slots=True)
class Resolved:
    """A magnet resolved by a libtorrent client.

    Attributes:
        info: the exact bencoded info dict received.
        info_hash: the DHT key that was looked up.
        elapsed: seconds from adding the magnet to ``metadata_received_alert``.
    """

    info: bytes
    info_hash: bytes
    elapsed: float


@dataclass(slots=True)
class _NodeState:
    """What the alert pump has seen so far."""

    bootstrapped: bool = False
    live_nodes: list[tuple[bytes, Addr]] | None = None
    live_nodes_seq: int = 0
    buckets: list[tuple[int, int]] | None = None
    buckets_seq: int = 0
    #: info-hash -> peers returned by our own get_peers lookups
    peers: dict[bytes, set[Addr]] = field(default_factory=dict)
    #: info-hash -> (ip, port) of incoming announce_peer requests this node stored
    announces: dict[bytes, set[Addr]] = field(default_factory=dict)
    #: info-hash -> metadata arrived (torrent handle)
    metadata: dict[bytes, Any] = field(default_factory=dict)
    #: info-hash -> last torrent error message
    errors: dict[bytes, str] = field(default_factory=dict)
    #: recent alert messages with their ``time.monotonic()``, for failure reports
    log: deque[str] = field(default_factory=lambda: deque(maxlen=200))


class LtNode:
    """One libtorrent session: a DHT node on its own loopback address, able to seed and resolve.

    Args:
        ip: the node's loopback address (``127.0.0.N``; a distinct N per node).
        port: TCP/UDP port; 0 (default) lets the OS choose.
        workdir: where magnets resolved by this node are "saved" (nothing is written in upload
            mode); default a temporary directory removed by :meth:`close`.
        dht_nodes: DHT nodes to bootstrap from: added (``add_dht_node``) before the DHT starts,
            so libtorrent posts ``dht_bootstrap_alert`` once it has looked itself up.
        start_timeout: bound on waiting for the listen sockets.
        settings: libtorrent settings by name, applied over :func:`loopback_settings`
            (e.g. :data:`LOAD_TEST_SETTINGS`, ``out_enc_policy``).
    """

    def __init__(
        self,
        ip: str,
        *,
        port: int = 0,
        workdir: Path | None = None,
        dht_nodes: Iterable[Addr] = (),
        start_timeout: float = 5.0,
        **settings: Any,
    ) -> None:
        self.ip = ip
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"ltnode-{ip}-"))
        self._state = _NodeState()
        pack = loopback_settings(ip, port, **settings)
        dht_nodes = list(dht_nodes)
        if dht_nodes:
            pack["enable_dht"] = False
        self._ses: Any = lt.session(cast(Any, pack))  # the stubs omit the dict form
        self._ses.set_ip_filter(_loopback_ip_filter())
        self.port = 0
        if dht_nodes:
            for addr in dht_nodes:
                self._ses.add_dht_node(addr)
            self._ses.apply_settings({"enable_dht": settings.get("enable_dht", True)})
        tcp = False
        deadline = time.monotonic() + start_timeout
        while not (self.port and tcp):
            for a in self._pop(deadline - time.monotonic()):
                if isinstance(a, lt.listen_succeeded_alert):
                    if a.socket_type == lt.socket_type_t.udp:
                        self.port = int(a.port)
                    elif a.socket_type == lt.socket_type_t.tcp:
                        tcp = True
                elif isinstance(a, lt.listen_failed_alert):
                    self.close()
                    raise OSError(f"libtorrent could not listen on {ip}:{port}: {a.message()}")
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError(f"libtorrent on {ip}: no listen socket after {start_timeout}s")

    def __repr__(self) -> str:
        return f"LtNode({self.ip}:{self.port})"

    def __enter__(self) -> LtNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def session(self) -> Any:
        """The underlying ``lt.session`` (for anything the harness does not wrap)."""
        return self._ses

    @property
    def addr(self) -> Addr:
        """The node's DHT (UDP) endpoint; its BitTorrent TCP port is the same."""
        return (self.ip, self.port)

    def apply_settings(self, **settings: Any) -> None:
        """Change libtorrent settings at run time."""
        self._ses.apply_settings(settings)

    # -- alert pump ----------------------------------------------------------------------------

    def _pop(self, wait: float) -> list[Any]:
        if wait > 0:
            self._ses.wait_for_alert(max(1, int(wait * 1000)))
        alerts: list[Any] = self._ses.pop_alerts()
        for a in alerts:
            self._dispatch(a)
        return alerts

    def _dispatch(self, a: Any) -> None:
        st = self._state
        st.log.append(f"{time.monotonic():.3f} {type(a).__name__}: {a.message()}")
        if isinstance(a, lt.dht_live_nodes_alert):
            st.live_nodes = [(n["nid"].to_bytes(), _endpoint(n["endpoint"])) for n in a.nodes]
            st.live_nodes_seq += 1
        elif isinstance(a, lt.dht_stats_alert):
            st.buckets = [(b["num_nodes"], b["num_replacements"]) for b in a.routing_table]
            st.buckets_seq += 1
        elif isinstance(a, lt.dht_get_peers_reply_alert):
            ih = a.info_hash.to_bytes()
            st.peers.setdefault(ih, set()).update(_endpoint(ep) for ep in a.peers())
        elif isinstance(a, lt.dht_announce_alert):
            st.announces.setdefault(a.info_hash.to_bytes(), set()).add((str(a.ip), int(a.port)))
        elif isinstance(a, lt.dht_bootstrap_alert):
            st.bootstrapped = True
        elif isinstance(a, lt.metadata_received_alert):
            st.metadata[_handle_key(a.handle)] = a.handle
        elif isinstance(a, (lt.torrent_error_alert, lt.metadata_failed_alert)):
            with contextlib.suppress(Exception):
                st.errors[_handle_key(a.handle)] = a.message()

    def pump(self, wait: float = 0.0) -> None:
        """Process pending alerts, waiting up to ``wait`` seconds for the first one."""
        self._pop(wait)

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str = "condition") -> None:
        """Pump alerts until ``cond()`` holds; :class:`TimeoutError` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self}: no {what} after {timeout}s; recent: {self.recent()}")
            self._pop(min(left, 0.05))

    def recent(self, n: int = 12) -> list[str]:
        """The last ``n`` alert messages (for error reports)."""
        return list(self._state.log)[-n:]

    # -- DHT -----------------------------------------------------------------------------------

    def node_id(self) -> bytes:
        """The node's current 20-byte DHT node id."""
        state = lt.write_session_params(self._ses.session_state())
        ids: list[bytes] = state[b"dht state"][b"node-id"]
        return bytes(ids[0][:20])

    def add_dht_node(self, addr: Addr) -> None:
        """Ping ``addr`` and add it to the routing table if it answers (not as a router)."""
        self._ses.add_dht_node(addr)

    @property
    def bootstrapped(self) -> bool:
        """Whether libtorrent has posted its ``dht_bootstrap_alert``."""
        self.pump()
        return self._state.bootstrapped

    def routing_table(self, timeout: float = 2.0) -> list[tuple[bytes, Addr]]:
        """The live nodes of the routing table: ``(node id, (ip, port))``."""
        seq = self._state.live_nodes_seq
        self._ses.dht_live_nodes(lt.sha1_hash(self.node_id()))
        self.wait_for(lambda: self._state.live_nodes_seq > seq, timeout, "dht_live_nodes_alert")
        assert self._state.live_nodes is not None
        return list(self._state.live_nodes)

    def buckets(self, timeout: float = 2.0) -> list[tuple[int, int]]:
        """Per routing-table bucket: ``(live nodes, replacement-cache nodes)``.

        Replacements include nodes only heard of (e.g. queriers not yet confirmed), which
        :meth:`routing_table` does not list.
        """
        seq = self._state.buckets_seq
        self._ses.post_dht_stats()
        self.wait_for(lambda: self._state.buckets_seq > seq, timeout, "dht_stats_alert")
        assert self._state.buckets is not None
        return list(self._state.buckets)

    def get_peers(
        self, info_hash: bytes, timeout: float = 5.0, *, min_peers: int | None = 1
    ) -> set[Addr]:
        """Run a DHT get_peers lookup; return the peers found.

        libtorrent reports peers per reply and posts nothing when the lookup ends, so this
        returns as soon as ``min_peers`` distinct peers are known, else after ``timeout``
        seconds with what it has (``min_peers=None``: always wait the whole ``timeout``).
        """
        found = self._state.peers[info_hash] = set()
        self._ses.dht_get_peers(lt.sha1_hash(info_hash))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if min_peers is not None and len(found) >= min_peers:
                break
            self._pop(min(left, 0.05))
        return set(found)

    def announce(self, info_hash: bytes, port: int = 0) -> None:
        """Announce ``port`` (0: this node's listen port) for ``info_hash`` on the DHT."""
        self._ses.dht_announce(lt.sha1_hash(info_hash), port, 0)

    def announces_seen(self, info_hash: bytes) -> set[Addr]:
        """Peers whose ``announce_peer`` for ``info_hash`` this node has stored."""
        self.pump()
        return set(self._state.announces.get(info_hash, ()))

    # -- torrents ------------------------------------------------------------------------------

    def seed(self, torrent: TorrentSpec, *, timeout: float = 5.0) -> Any:
        """Seed ``torrent`` (its data must be at ``torrent.save_path``); return the handle.

        The torrent is added in seed mode (no re-hashing) and announced to the DHT at once.
        Returns when libtorrent has added it; :meth:`LtSwarm.seed` also waits until other
        nodes have stored the announce.
        """
        atp = lt.add_torrent_params()
        atp.ti = torrent.torrent_info()
        atp.save_path = str(torrent.save_path)
        atp.flags = (atp.flags | lt.torrent_flags.seed_mode) & ~(
            lt.torrent_flags.paused | lt.torrent_flags.auto_managed
        )
        h = self._ses.add_torrent(atp)
        self.wait_for(lambda: h.status().is_seeding, timeout, "seeding state")
        h.force_dht_announce()
        return h

    def resolve_magnet(
        self, uri: str, timeout: float = 10.0, *, keep: bool = False, kick_interval: float = 0.5
    ) -> Resolved:
        """Fetch a magnet's metadata with libtorrent as the client.

        The magnet is added in upload mode (metadata only) and announced at once, again when
        the DHT has bootstrapped and every ``kick_interval`` seconds until the metadata arrives
        (libtorrent on its own waits for its announce timer: seconds). Like any libtorrent
        client, this node thereby announces itself as a peer of the torrent.

        Args:
            uri: a magnet URI.
            timeout: bound in seconds; :class:`TimeoutError` after it.
            keep: keep the torrent in the session afterwards (default: removed).
        """
        atp = lt.parse_magnet_uri(uri)
        atp.save_path = str(self.workdir)
        atp.flags = (atp.flags | lt.torrent_flags.upload_mode) & ~(
            lt.torrent_flags.paused | lt.torrent_flags.auto_managed
        )
        start = time.monotonic()
        h = self._ses.add_torrent(atp)
        key = _handle_key(h)
        try:
            deadline = start + timeout
            next_kick = 0.0
            bootstrapped = self._state.bootstrapped
            while key not in self._state.metadata:
                now = time.monotonic()
                if now >= deadline:
                    raise TimeoutError(
                        f"{self}: no metadata for {key.hex()} after {timeout}s"
                        f" (error: {self._state.errors.get(key)}); recent: {self.recent()}"
                    )
                if bootstrapped != self._state.bootstrapped:
                    bootstrapped, next_kick = True, now  # look up again as soon as bootstrapped
                if now >= next_kick:
                    next_kick = now + kick_interval
                    h.force_dht_announce()
                self._pop(min(deadline - now, 0.02))
            elapsed = time.monotonic() - start
            info = bytes(h.torrent_file().info_section())
        finally:
            self._state.metadata.pop(key, None)
            if not keep:
                self._ses.remove_torrent(h)
        return Resolved(info=info, info_hash=key, elapsed=elapsed)

    # -- teardown ------------------------------------------------------------------------------

    def close(self) -> float:
        """Pause and destroy the session; return the seconds it took. Idempotent.

        libtorrent's session destructor holds the GIL until its network thread has stopped, so
        destroying it in another thread would not bound anything. It is fast with the default
        settings (~2-5 ms, measured with lookups outstanding and peers connected) because uTP
        is off: with uTP connections a destructor took 0.1-3 s.
        """
        if self._ses is None:
            return 0.0
        start = time.monotonic()
        ses, self._ses = self._ses, None
        with contextlib.suppress(Exception):
            ses.pause()
        del ses
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return time.monotonic() - start

    @property
    def closed(self) -> bool:
        return self._ses is None


def _handle_key(h: Any) -> bytes:
    hashes = h.info_hashes()
    return bytes(hashes.v1.to_bytes() if hashes.has_v1() else hashes.v2.to_bytes()[:20])


def close_all(nodes: Iterable[LtNode]) -> float:
    """Close several nodes; return the seconds it took."""
    return sum(n.close() for n in nodes)


# --------------------------------------------------------------------------------------------
# A swarm


class LtSwarm:
    """``n`` libtorrent DHT nodes on 127.0.0.2, 127.0.0.3, ... that know each other.

    Each node ``add_dht_node``-s the others (``degree=None``: all of them, else the next
    ``degree`` nodes on a ring); the constructor returns once every routing table holds at
    least ``min(n - 1, degree)`` nodes. Use as a context manager, or call :meth:`close`.

    Args:
        n: number of nodes (keep it <= 12 on a 2-core machine).
        first_ip: the first node's address; the others follow (``127.0.0.2`` -> ``.3``...).
        degree: how many other nodes each node is told about (None: all).
        start_timeout: bound on start-up (listen + table population), seconds.
        settings: libtorrent settings for every node, over :func:`loopback_settings`.
    """

    def __init__(
        self,
        n: int = 8,
        *,
        first_ip: str = "127.0.0.2",
        degree: int | None = None,
        start_timeout: float = 10.0,
        **settings: Any,
    ) -> None:
        if not 1 <= n <= 250:
            raise ValueError("n must be in 1..250")
        self._settings = settings
        prefix, _, last = first_ip.rpartition(".")
        self._prefix, self._next_host = prefix, int(last)
        self.nodes: list[LtNode] = []
        try:
            for _ in range(n):
                self.nodes.append(self._new_node())
            addrs = self.bootstrap_addrs()
            k = n - 1 if degree is None else min(degree, n - 1)
            for i, node in enumerate(self.nodes):
                for j in range(1, k + 1):
                    node.add_dht_node(addrs[(i + j) % n])
            self.wait_populated(k, start_timeout)
        except BaseException:
            self.close()
            raise

    def _new_node(self, **settings: Any) -> LtNode:
        ip = f"{self._prefix}.{self._next_host}"
        self._next_host += 1
        return LtNode(ip, **{**self._settings, **settings})

    def __enter__(self) -> LtSwarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[LtNode]:
        return iter(self.nodes)

    def __getitem__(self, i: int) -> LtNode:
        return self.nodes[i]

    def bootstrap_addrs(self) -> list[Addr]:
        """The DHT endpoints of all nodes (give them to a node joining the swarm)."""
        return [n.addr for n in self.nodes]

    def pump(self) -> None:
        """Process pending alerts of every node."""
        for n in self.nodes:
            n.pump()

    def wait_populated(self, min_nodes: int, timeout: float = 10.0) -> None:
        """Wait until every node's routing table holds at least ``min_nodes`` live nodes."""
        deadline = time.monotonic() + timeout
        pending = list(self.nodes)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                sizes = {str(n): len(n.routing_table()) for n in pending}
                raise TimeoutError(f"routing tables still below {min_nodes} nodes: {sizes}")
            pending = [n for n in pending if len(n.routing_table(left)) < min_nodes]
            if pending:
                time.sleep(0.05)

    def add_node(self, *, join: bool = True, **settings: Any) -> LtNode:
        """Start one more node on the next address (closed with the swarm).

        ``join``: tell it about every swarm node (``add_dht_node``) and wait until its DHT has
        bootstrapped, so a magnet added next is looked up at once.
        """
        node = self._new_node(dht_nodes=self.bootstrap_addrs() if join else (), **settings)
        self.nodes.append(node)
        if join:
            node.wait_for(lambda: node._state.bootstrapped, 5.0, "dht_bootstrap_alert")
        return node

    def add_external_node(self, addr: Addr) -> None:
        """Make every libtorrent node ``add_dht_node(addr)`` (e.g. a magnetar node)."""
        for n in self.nodes:
            n.add_dht_node(addr)

    def announces_seen(self, info_hash: bytes) -> dict[LtNode, set[Addr]]:
        """Per node, the announces for ``info_hash`` it has stored (nodes with none omitted)."""
        self.pump()
        return {n: s for n in self.nodes if (s := n.announces_seen(info_hash))}

    def wait_announced(
        self, info_hash: bytes, min_nodes: int = 3, timeout: float = 5.0, peer: Addr | None = None
    ) -> None:
        """Wait until ``min_nodes`` swarm nodes have stored an announce for ``info_hash``
        (from ``peer`` if given; the node at ``peer`` itself does not count: libtorrent
        stores its own announces too)."""

        def enough() -> bool:
            seen = self.announces_seen(info_hash)
            n = sum(1 for nd, s in seen.items() if peer is None or (peer in s and nd.addr != peer))
            return n >= min_nodes

        deadline = time.monotonic() + timeout
        while not enough():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{info_hash.hex()} stored by {len(self.announces_seen(info_hash))} nodes,"
                    f" wanted {min_nodes} within {timeout}s"
                )
            time.sleep(0.02)

    def seed(
        self,
        torrent: TorrentSpec,
        node: int | LtNode = 0,
        *,
        min_announces: int | None = None,
        timeout: float = 10.0,
    ) -> LtNode:
        """Seed ``torrent`` on a node (index or node) and wait until announced; return it.

        ``min_announces``: how many other swarm nodes must have stored the announce (default
        ``min(3, n - 1)``; 0: don't wait).
        """
        seeder = node if isinstance(node, LtNode) else self.nodes[node]
        start = time.monotonic()
        seeder.seed(torrent, timeout=timeout)
        want = min(3, len(self.nodes) - 1) if min_announces is None else min_announces
        if want > 0:
            left = max(0.1, timeout - (time.monotonic() - start))
            self.wait_announced(torrent.info_hash, want, left, peer=seeder.addr)
        return seeder

    def close(self) -> float:
        """Tear every node down; return the seconds it took (~2-5 ms per node)."""
        return close_all(self.nodes)
