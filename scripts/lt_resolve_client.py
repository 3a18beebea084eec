#!/usr/bin/env python3
"""Resolve magnets with libtorrent 2.1.1 and write the .torrent files: the libtorrent side of
``scripts/bench_resolve.py``.

A separate process on purpose: the benchmark times it from process start (Python start-up and
``import libtorrent`` included) to exit, like ``magnetar resolve``. It imports nothing but the
standard library and libtorrent, so that its start-up is a fair baseline.

What it does, the way a well-tuned libtorrent client would on a private loopback DHT (its
``PRIVATE_LOOPBACK_SETTINGS`` are what ``tests/interop/ltswarm.py`` builds on too):

* one session on its own loopback address (``--ip``), DHT nodes added with ``add_dht_node``
  *before* the DHT is switched on, so libtorrent bootstraps from them at once;
* the magnet added in upload mode (metadata only), ``force_dht_announce`` at once, again on
  ``dht_bootstrap_alert`` and every ``--kick`` seconds until ``metadata_received_alert``
  (libtorrent on its own waits for its announce timer: seconds);
* the .torrent written as ``d4:info<info dict as received>e`` (byte-exact), then one JSON line
  on stdout with in-process timings, then exit. ``--teardown exit`` (default) leaves without
  destroying the session (``os._exit`` once the file is on disk and stdout flushed), as a
  resolver that is done would; ``--teardown destroy`` pauses and destroys it first;
* several magnets (the bulk benchmark): all added at once to the one session, each announced
  as above until its metadata arrives; ``-o`` is then a directory and each .torrent is written
  as ``<info-hash>.torrent`` the moment its metadata arrives. The JSON line comes once all are
  written; ``--timeout`` bounds the whole run.

Exit codes: 0 all resolved, 1 timed out or failed, 2 bad arguments.
"""

from __future__ import annotations

import time

T0 = time.monotonic()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import Any, cast  # noqa: E402

#: force_dht_announce every --kick seconds at first, doubling up to this.
MAX_KICK_S = 1.0
#: Watch the routing table (and announce again whenever it grows) until it holds this many.
FULL_TABLE = 8


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Resolve magnets with libtorrent (loopback only).")
    p.add_argument("magnets", nargs="+", metavar="MAGNET")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="the .torrent to write; with several magnets, a directory",
    )
    p.add_argument("--ip", required=True, help="own address, e.g. 127.0.5.2 (or a lab one)")
    p.add_argument(
        "--dht-node", action="append", default=[], metavar="HOST:PORT", help="repeatable"
    )
    p.add_argument("--no-dht", action="store_true", help="DHT off (trackers only)")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--kick", type=float, default=0.5, help="seconds between DHT announces")
    p.add_argument("--teardown", choices=("exit", "destroy"), default="exit")
    p.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra libtorrent setting (repeatable; ints and true/false converted)",
    )
    args = p.parse_args(argv)
    if not _contained(args.ip):
        p.error("--ip must be a 127.x.y.z or WAN lab (198.18.0.0/15) address")
    nodes = []
    for item in args.dht_node:
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit() or not _contained(host):
            p.error(f"--dht-node wants 127.x.y.z:PORT or a WAN lab address, got {item!r}")
        nodes.append((host, int(port)))
    args.dht_nodes = nodes
    extra: dict[str, Any] = {}
    for item in args.setting:
        name, sep, value = item.partition("=")
        if not sep:
            p.error(f"--setting wants NAME=VALUE, got {item!r}")
        extra[name] = setting_value(value)
    args.extra = extra
    return args


#: Where the client may talk: loopback, and the WAN lab's prefix (wanlab; RFC 2544's
#: benchmarking range, which exists only inside the lab's private network namespace).
ALLOWED_NETS = ("127.0.0.0/8", "198.18.0.0/15")


def _contained(host: str) -> bool:
    import ipaddress

    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net) for net in ALLOWED_NETS)


def setting_value(text: str) -> int | bool | str:
    """A libtorrent setting's value from the command line: bool, int, else the string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


#: What every libtorrent session in a private DHT on loopback needs, for the benchmark's client
#: and the test harness alike (tests/interop/ltswarm.py builds on it). Kept in this stdlib-only
#: module so that the client imports nothing to get it.
PRIVATE_LOOPBACK_SETTINGS: dict[str, Any] = {
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_ip_notifier": False,
    "dht_bootstrap_nodes": "",
    # Loopback nodes share an IP and have arbitrary ids: libtorrent's public-DHT hygiene
    # would keep every one of them out.
    "dht_restrict_routing_ips": False,
    "dht_restrict_search_ips": False,
    "dht_enforce_node_id": False,
    "dht_prefer_verified_node_ids": False,
    "dht_ignore_dark_internet": False,
    # In a small swarm every node carries all traffic: the 8000 B/s and 5 queries/s per IP
    # defaults drop replies and block our querier (see shared/README.md).
    "dht_upload_rate_limit": 1_000_000,
    "dht_block_ratelimit": 10_000,
    "dht_block_timeout": 5,
    # Peer connections over TCP only: a session with (even closed) uTP connections takes
    # ~0.1-3 s to destroy, holding the GIL all along; with TCP only it takes ~2 ms.
    "enable_outgoing_utp": False,
    "enable_incoming_utp": False,
    # Nothing should wait on a tracker, at start or at shutdown.
    "stop_tracker_timeout": 1,
    "alert_queue_size": 10_000,
}


def loopback_settings(lt: Any, ip: str) -> dict[str, Any]:
    """The client's session: private loopback DHT, switched on once the nodes are added."""
    cat = lt.alert.category_t
    return {
        **PRIVATE_LOOPBACK_SETTINGS,
        "listen_interfaces": f"{ip}:0",
        "outgoing_interfaces": ip,
        "enable_dht": False,  # switched on once the nodes are added
        "alert_mask": (
            cat.error_notification
            | cat.status_notification
            | cat.dht_notification
            | cat.dht_operation_notification
            | cat.tracker_notification
        ),
        "user_agent": "magnetar-bench-lt",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = round(time.monotonic() - T0, 4)

    import libtorrent as lt

    mark("imported")
    pack = loopback_settings(lt, args.ip)
    pack.update(args.extra)
    ses: Any = lt.session(cast(Any, pack))  # the stubs omit the dict form
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1)
    f.add_rule("127.0.0.0", "127.255.255.255", 0)
    f.add_rule("198.18.0.0", "198.19.255.255", 0)  # the WAN lab (ALLOWED_NETS)
    f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    f.add_rule("::1", "::1", 0)
    ses.set_ip_filter(f)
    if not args.no_dht:
        for node in args.dht_nodes:
            ses.add_dht_node(node)
        ses.apply_settings({"enable_dht": True})
    mark("session")
    bulk = len(args.magnets) > 1
    if bulk:
        os.makedirs(args.output, exist_ok=True)
    save_path = args.output if bulk else os.path.dirname(os.path.abspath(args.output)) or "."
    outputs: dict[bytes, str] = {}  # info-hash (as libtorrent keys it) -> file to write
    pending: dict[bytes, Any] = {}  # info-hash -> handle, until its metadata is written
    for magnet in args.magnets:
        atp = lt.parse_magnet_uri(magnet)
        atp.save_path = save_path
        atp.flags = (atp.flags | lt.torrent_flags.upload_mode) & ~(
            lt.torrent_flags.paused | lt.torrent_flags.auto_managed
        )
        h = ses.add_torrent(atp)
        key = _key(h)
        outputs[key] = os.path.join(args.output, f"{key.hex()}.torrent") if bulk else args.output
        pending[key] = h
    first = next(iter(pending.values()))
    mark("added")
    deadline = T0 + args.timeout
    next_kick = 0.0
    interval = args.kick
    live_nodes = 0  # the DHT routing table's size, as last reported
    stats_asked = False
    errors: list[str] = []
    written = 0
    while pending:
        now = time.monotonic()
        if now >= deadline:
            break
        if not args.no_dht:
            if now >= next_kick:
                for h in pending.values():
                    h.force_dht_announce()
                next_kick, interval = now + interval, min(interval * 2, MAX_KICK_S)
            if live_nodes < FULL_TABLE and not stats_asked:
                ses.post_dht_stats()
                stats_asked = True
        wait = min(deadline - now, next_kick - now, 0.05)
        ses.wait_for_alert(max(1, int(wait * 1000)))
        for a in ses.pop_alerts():
            if isinstance(a, lt.metadata_received_alert):
                ti = a.handle.torrent_file()
                key = _key(a.handle)
                if ti is not None and pending.pop(key, None) is not None:
                    if "metadata received" not in marks:
                        mark("metadata received")
                    # Written at once, as magnetar writes each link as it finishes.
                    write_torrent(outputs[key], bytes(ti.info_section()))
                    written += 1
            elif isinstance(a, lt.dht_stats_alert):
                stats_asked = False
                n = sum(b["num_nodes"] for b in a.routing_table)
                if n > live_nodes:
                    # The table grew: look up again at once. The first announces go out
                    # before any node has answered and find nothing; dht_bootstrap_alert
                    # and listen_succeeded_alert come too early to be useful signals.
                    if live_nodes == 0:
                        mark("dht nodes")
                    live_nodes, next_kick, interval = n, 0.0, args.kick
            elif isinstance(a, lt.dht_bootstrap_alert):
                mark("dht bootstrapped")
            elif isinstance(a, lt.dht_reply_alert) and "dht peers" not in marks:
                mark("dht peers")
            elif isinstance(a, lt.tracker_reply_alert) and "tracker reply" not in marks:
                mark("tracker reply")
            elif isinstance(a, (lt.torrent_error_alert, lt.metadata_failed_alert)):
                errors.append(a.message())
    ok = not pending
    if ok:
        mark("written")
    peer: str | None = None
    encryption: str | None = None
    if ok and not bulk:
        for p in first.get_peer_info():
            if not p.flags & (lt.peer_info.connecting | lt.peer_info.handshake):
                peer = f"{p.ip[0]}:{p.ip[1]}"
                encryption = (
                    "rc4"
                    if p.flags & lt.peer_info.rc4_encrypted
                    else "plaintext-mse"
                    if p.flags & lt.peer_info.plaintext_encrypted
                    else "none"
                )
                break
    record = {
        "ok": ok,
        "seconds": round(time.monotonic() - T0, 4),
        "marks": marks,
        "peer": peer,
        "peer_encryption": encryption,
        "errors": errors[-3:],
        "resolved": written,
        "magnets": len(args.magnets),
        "out_enc_policy": ses.get_settings()["out_enc_policy"],
        "in_enc_policy": ses.get_settings()["in_enc_policy"],
    }
    if args.teardown == "destroy":
        t = time.monotonic()
        ses.pause()
        del ses
        record["teardown_seconds"] = round(time.monotonic() - t, 4)
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    if args.teardown == "exit":
        os._exit(0 if ok else 1)
    return 0 if ok else 1


def _key(h: Any) -> bytes:
    """A torrent's identity across its handle and its alerts' handles."""
    return bytes(h.info_hashes().get_best().to_bytes())


def write_torrent(path: str, info: bytes) -> None:
    """``d4:info<info>e``, byte-exact, written atomically and synced (as magnetar does)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as out:
        out.write(b"d4:info" + info + b"e")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
