"""Measurements taken inside a private network namespace, for ``tests/wanlab/test_lab.py``.

Run as ``unshare -n python -m tests.wanlab.inside CHECK`` (the test module does that, with
``WANLAB_UNSHARED=1``); each check sets up a ``WanLab``, sends traffic between lab addresses
only, and prints one JSON object of what it saw. The assertions live in the test module, so a
failure shows the numbers. Root only; never run it in the host's namespace (the lab refuses).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wanlab import Profile, WanLab
from wanlab.netns import NetnsError

__all__ = ["CHECKS"]

RECV_TIMEOUT_S = 5.0


def _udp(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(RECV_TIMEOUT_S)
    return sock


def check_rtt() -> dict[str, Any]:
    """Ping-pong between two pairs of lab hosts: round trips against the pairs' base delays."""
    profile = Profile(delay_ms=(20.0, 40.0), jitter_ms=5.0, seed=3)
    result: dict[str, Any] = {"jitter_s": profile.jitter_ms / 1000.0, "pairs": []}
    with WanLab(profile, hosts=3) as lab:
        a, b, c = lab.addresses
        for x, y in ((a, b), (a, c)):
            client, server = _udp(x), _udp(y)
            rtts = []
            for i in range(10):
                start = time.monotonic()
                client.sendto(i.to_bytes(4, "big"), server.getsockname())
                data, peer = server.recvfrom(64)
                server.sendto(data, peer)
                client.recvfrom(64)
                rtts.append(time.monotonic() - start)
            result["pairs"].append({"base_s": profile.pair_delay_s(x, y), "rtts": rtts})
            client.close()
            server.close()
    result["stats"] = lab.stats
    return result


def check_loss() -> dict[str, Any]:
    """Numbered datagrams one way under 2% loss: how many arrived, and the emulator's count."""
    profile = Profile(delay_ms=(5.0, 5.0), loss=0.02, seed=8)
    sent = 3000
    seen: set[int] = set()
    with WanLab(profile, hosts=2) as lab:
        a, b = lab.addresses
        sender, receiver = _udp(a), _udp(b)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        receiver.settimeout(1.0)

        def receive() -> None:
            try:
                while True:
                    seen.add(int.from_bytes(receiver.recv(64), "big"))
            except TimeoutError:
                pass  # one quiet second after the last packet: all that will come has come

        reader = threading.Thread(target=receive)
        reader.start()
        for i in range(sent):
            sender.sendto(i.to_bytes(4, "big"), receiver.getsockname())
            if i % 100 == 99:
                time.sleep(0.005)  # pace, so no socket or device queue overflows
        reader.join(timeout=30)
        sender.close()
        receiver.close()
    return {"sent": sent, "received": len(seen), "stats": lab.stats}


def check_fifo() -> dict[str, Any]:
    """Two interleaved flows under jitter eight times the gap between their packets."""
    profile = Profile(delay_ms=(10.0, 10.0), jitter_ms=40.0, seed=5)
    per_flow = 500
    arrivals: list[tuple[int, int]] = []
    with WanLab(profile, hosts=2) as lab:
        a, b = lab.addresses
        senders = [_udp(a), _udp(a)]
        receiver = _udp(b)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        receiver.settimeout(1.0)

        def receive() -> None:
            try:
                while True:
                    data = receiver.recv(64)
                    arrivals.append((data[0], int.from_bytes(data[1:5], "big")))
            except TimeoutError:
                pass

        reader = threading.Thread(target=receive)
        reader.start()
        for i in range(per_flow):
            for flow, sender in enumerate(senders):
                sender.sendto(bytes((flow,)) + i.to_bytes(4, "big"), receiver.getsockname())
            time.sleep(0.0005)
        reader.join(timeout=30)
        for sock in (*senders, receiver):
            sock.close()
    return {"per_flow": per_flow, "arrivals": arrivals, "stats": lab.stats}


def check_tcp() -> dict[str, Any]:
    """Two MiB over TCP between two lab hosts with 1% loss: digests on both ends."""
    profile = Profile(delay_ms=(5.0, 15.0), jitter_ms=2.0, loss=0.01, seed=4)
    payload = random.Random(1).randbytes(2 << 20)
    received = hashlib.sha256()
    count = 0
    with WanLab(profile, hosts=2) as lab:
        a, b = lab.addresses
        listener = socket.socket()
        listener.bind((b, 0))
        listener.listen()
        listener.settimeout(RECV_TIMEOUT_S)
        start = time.monotonic()
        client = socket.create_connection(
            listener.getsockname(), timeout=RECV_TIMEOUT_S, source_address=(a, 0)
        )
        conn, peer = listener.accept()
        conn.settimeout(30.0)

        def write() -> None:
            with client:
                client.sendall(payload)

        writer = threading.Thread(target=write)
        writer.start()
        while chunk := conn.recv(1 << 16):
            received.update(chunk)
            count += len(chunk)
        writer.join(timeout=30)
        conn.close()
        listener.close()
        seconds = time.monotonic() - start
    return {
        "peer": peer[0],
        "client": a,
        "sent_sha256": hashlib.sha256(payload).hexdigest(),
        "received_sha256": received.hexdigest(),
        "received_bytes": count,
        "seconds": seconds,
        "stats": lab.stats,
    }


def check_dead_port() -> dict[str, Any]:
    """A connected UDP socket sends to a port nobody listens on, waits, and sends again."""
    profile = Profile(delay_ms=(10.0, 10.0), seed=1)
    with WanLab(profile, hosts=2) as lab:
        a, b = lab.addresses
        probe = _udp(b)
        dead_port = probe.getsockname()[1]
        probe.close()  # the port is now closed: the kernel would answer port unreachable
        sock = _udp(a)
        sock.settimeout(1.0)
        sock.connect((b, dead_port))
        outcomes = []
        for _ in range(2):
            try:
                sock.send(b"anyone?")
                sock.recv(64)
                outcomes.append("answer")
            except ConnectionRefusedError:
                outcomes.append("refused")
            except TimeoutError:
                outcomes.append("timeout")
        sock.close()
    return {"outcomes": outcomes, "stats": lab.stats}


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30).stdout


def _network_state() -> dict[str, Any]:
    return {
        "links": sorted(line.split(":")[1].strip() for line in _ip("-o", "link").splitlines()),
        "rules": _ip("rule").splitlines(),
        "routes_local": _ip("route", "show", "table", "local").splitlines(),
        "routes_lab_table": _ip("route", "show", "table", "177").splitlines(),
        "rp_filter_all": Path("/proc/sys/net/ipv4/conf/all/rp_filter").read_text().strip(),
    }


def check_teardown() -> dict[str, Any]:
    """The network state before, during and after a lab: left cleanly, by an error in the
    code under test, and with its emulator killed under it (which must be reported)."""
    Path("/proc/sys/net/ipv4/conf/all/rp_filter").write_text("2")  # the lab must restore it
    before = _network_state()
    profile = Profile(delay_ms=(10.0, 10.0))
    with WanLab(profile, hosts=5, tun_name="wantest0"):
        during = _network_state()
    after = _network_state()
    error = ""
    try:
        with WanLab(profile, hosts=5, tun_name="wantest0"):
            raise RuntimeError("the code under test failed")
    except RuntimeError as exc:
        error = str(exc)
    after_error = _network_state()
    emulator_death = ""
    try:
        with WanLab(profile, hosts=5, tun_name="wantest0") as lab:
            assert lab.emulator_pid is not None
            os.kill(lab.emulator_pid, signal.SIGKILL)
            time.sleep(0.2)
    except NetnsError as exc:
        emulator_death = str(exc)
    after_emulator_death = _network_state()
    return {
        "before": before,
        "during": during,
        "after": after,
        "after_error": after_error,
        "error": error,
        "emulator_death": emulator_death,
        "after_emulator_death": after_emulator_death,
    }


def check_orphan() -> dict[str, Any]:
    """A process holding a lab dies by SIGKILL: does its emulator (and so the TUN) go too?"""
    crash = (
        "import os, signal\n"
        "from wanlab import Profile, WanLab\n"
        "lab = WanLab(Profile(delay_ms=(10.0, 10.0)), hosts=2, tun_name='wancrash0')\n"
        "lab.__enter__()\n"
        "print(lab.emulator_pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    # stderr not captured: an orphan emulator would inherit the pipe and hold run() open.
    result = subprocess.run(
        [sys.executable, "-c", crash],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=60,
    )
    emulator = int(result.stdout.split()[0])
    deadline = time.monotonic() + 10.0
    alive = True
    while alive and time.monotonic() < deadline:
        # The emulator is our grandchild, reparented to init: gone once /proc forgets it.
        alive = Path(f"/proc/{emulator}").exists() and "wanlab" in _cmdline(emulator)
        time.sleep(0.05)
    links = sorted(line.split(":")[1].strip() for line in _ip("-o", "link").splitlines())
    if alive:
        os.kill(emulator, signal.SIGKILL)  # report the failure, but leave no orphan behind
    return {"crash_status": result.returncode, "emulator_alive": alive, "links": links}


def check_libtorrent() -> dict[str, Any]:
    """Two libtorrent DHT nodes on lab addresses: one learns of the other across the lab."""
    import libtorrent as lt

    def session(ip: str) -> Any:
        return lt.session(
            {
                "listen_interfaces": f"{ip}:6881",
                "enable_dht": True,
                "enable_lsd": False,
                "enable_upnp": False,
                "enable_natpmp": False,
                "dht_bootstrap_nodes": "",
                "dht_restrict_routing_ips": False,
                "dht_restrict_search_ips": False,
            }
        )

    profile = Profile(delay_ms=(50.0, 50.0), seed=1)
    with WanLab(profile, hosts=2) as lab:
        a, b = lab.addresses
        first, second = session(a), session(b)
        start = time.monotonic()
        second.add_dht_node((a, 6881))
        nodes = 0
        while time.monotonic() - start < 20 and nodes == 0:
            nodes = second.status().dht_nodes
            time.sleep(0.005)
        seconds = time.monotonic() - start
        del first, second  # sessions close before the lab does
    return {"dht_nodes": nodes, "seconds": seconds, "stats": lab.stats}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "rtt": check_rtt,
    "loss": check_loss,
    "fifo": check_fifo,
    "tcp": check_tcp,
    "dead_port": check_dead_port,
    "teardown": check_teardown,
    "orphan": check_orphan,
    "libtorrent": check_libtorrent,
}


def main(argv: list[str]) -> int:
    print(json.dumps(CHECKS[argv[0]]()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
