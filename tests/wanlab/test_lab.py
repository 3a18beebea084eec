"""The WAN lab for real: each test re-runs a check of ``tests.wanlab.inside`` under
``unshare -n`` (a private network namespace, so nothing here touches the host's network) and
asserts on what it measured. Skipped, with the reason, unless root with ``unshare`` and TUN.

Bounds are loose on purpose (other jobs share the CPU): round trips are checked against the
emulated delay from below, which no scheduling hiccup can break, and only loosely from above.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CHECK_TIMEOUT_S = 90
# Each test builds a namespace, a TUN device and an emulator process: slow.
pytestmark = pytest.mark.slow


@cache
def lab_unavailable() -> str | None:
    """Why the lab cannot run on this machine, or ``None``."""
    if os.geteuid() != 0:
        return "the WAN lab needs root (unshare -n, a TUN device, policy routing)"
    if shutil.which("unshare") is None:
        return "the WAN lab needs the unshare command (util-linux)"
    if shutil.which("ip") is None:
        return "the WAN lab needs the ip command (iproute2)"
    if not Path("/dev/net/tun").exists():
        return "the WAN lab needs /dev/net/tun"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"unshare -n does not work here: {probe.stderr.strip()}"
    return None


@pytest.fixture(autouse=True)
def _need_lab() -> None:
    reason = lab_unavailable()
    if reason is not None:
        pytest.skip(reason)


def unshared(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a fresh network namespace, from the repository root, time-bounded."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), WANLAB_UNSHARED="1", **env)
    return subprocess.run(
        ["timeout", str(CHECK_TIMEOUT_S), "unshare", "-n", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full_env,
        timeout=CHECK_TIMEOUT_S + 10,
    )


def inside(check: str) -> dict[str, Any]:
    result = unshared([sys.executable, "-m", "tests.wanlab.inside", check])
    assert result.returncode == 0, result.stderr
    measured: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return measured


@pytest.mark.timeout(120)
def test_round_trip_is_twice_the_pairs_delay_plus_jitter() -> None:
    measured = inside("rtt")
    jitter = measured["jitter_s"]
    bases = [pair["base_s"] for pair in measured["pairs"]]
    assert bases[0] != bases[1]  # two pairs, two delays drawn
    for pair in measured["pairs"]:
        base, rtts = pair["base_s"], pair["rtts"]
        assert 0.020 <= base <= 0.040
        assert min(rtts) >= 2 * base  # never faster than the emulated path
        # Loose: a loaded machine adds scheduling delay, never removes any.
        assert sorted(rtts)[len(rtts) // 2] < 2 * (base + jitter) + 0.5
    assert measured["stats"]["lost"] == 0


@pytest.mark.timeout(120)
def test_loss_is_close_to_the_configured_rate() -> None:
    measured = inside("loss")
    sent, received, lost = measured["sent"], measured["received"], measured["stats"]["lost"]
    # 2% of 3000 is 60 (sd 7.7): 15..150 is six deviations below and eleven above.
    assert 15 <= sent - received <= 150
    assert 15 <= lost <= 150
    assert received <= sent - lost  # what the emulator dropped never arrived


@pytest.mark.timeout(120)
def test_jitter_never_reorders_a_flow() -> None:
    measured = inside("fifo")
    arrivals = [tuple(pair) for pair in measured["arrivals"]]
    per_flow = measured["per_flow"]
    for flow in (0, 1):
        numbers = [n for f, n in arrivals if f == flow]
        assert numbers == list(range(per_flow))
    # The jitter was there: across the two flows, packets did overtake one another.
    sent_order = sorted(arrivals, key=lambda pair: (pair[1], pair[0]))
    assert arrivals != sent_order


@pytest.mark.timeout(120)
def test_tcp_transfers_data_intact_through_delay_and_loss() -> None:
    measured = inside("tcp")
    assert measured["received_bytes"] == 2 << 20
    assert measured["received_sha256"] == measured["sent_sha256"]
    assert measured["peer"] == measured["client"]  # the source address was the lab's
    assert measured["stats"]["lost"] > 0  # segments were lost and TCP recovered them


@pytest.mark.timeout(120)
def test_a_dead_port_stays_silent() -> None:
    measured = inside("dead_port")
    assert measured["outcomes"] == ["timeout", "timeout"]
    assert measured["stats"]["port_unreachable_dropped"] >= 1  # the kernel did answer: eaten


@pytest.mark.timeout(120)
def test_teardown_leaves_no_device_rule_route_or_setting() -> None:
    measured = inside("teardown")
    before, during = measured["before"], measured["during"]
    assert "wantest0" in during["links"]
    assert during["rules"] != before["rules"]
    assert any("198.18.0.0/15" in route for route in during["routes_local"])
    assert any("198.18.0.0/15" in route for route in during["routes_lab_table"])
    assert during["rp_filter_all"] == "0"
    assert measured["after"] == before
    assert measured["error"] == "the code under test failed"
    assert measured["after_error"] == before
    assert "the emulator exited with status -9" in measured["emulator_death"]
    assert measured["after_emulator_death"] == before


@pytest.mark.timeout(120)
def test_an_emulator_whose_parent_is_killed_stops_and_the_device_goes() -> None:
    measured = inside("orphan")
    assert measured["crash_status"] == -9
    assert not measured["emulator_alive"]
    assert "wancrash0" not in measured["links"]


@pytest.mark.interop
@pytest.mark.timeout(120)
def test_libtorrent_traffic_passes_through_the_emulator() -> None:
    # libtorrent binds each socket to the device holding its address: with the addresses on
    # the TUN device, its packets reach the emulator (on lo they would not).
    pytest.importorskip("libtorrent", reason="libtorrent==2.1.1 (test extras) is not importable")
    measured = inside("libtorrent")
    assert measured["dht_nodes"] >= 1
    assert measured["seconds"] >= 0.100  # a query and its answer, 50 ms each way
    assert measured["stats"]["released"] >= 2


@pytest.mark.timeout(120)
def test_run_command_sees_the_lab_and_its_status_passes_through() -> None:
    script = (
        "import os, socket, sys, time\n"
        "a, b = os.environ['WANLAB_HOSTS'].split()[:2]\n"
        "s, r = socket.socket(2, 2), socket.socket(2, 2)\n"
        "s.bind((a, 0)); r.bind((b, 0)); r.settimeout(5)\n"
        "t = time.monotonic(); s.sendto(b'x', r.getsockname()); r.recv(8)\n"
        "print(os.environ['WANLAB_PREFIX'], a, b, time.monotonic() - t)\n"
        "sys.exit(7)\n"
    )
    argv = [sys.executable, "-m", "wanlab", "run", "--prefix", "10.77.0.0/16", "--hosts", "3"]
    argv += ["--delay", "30", "--", sys.executable, "-c", script]
    result = unshared(argv)
    assert result.returncode == 7, result.stderr
    prefix, a, b, one_way = result.stdout.split()
    assert (prefix, a, b) == ("10.77.0.0/16", "10.77.0.1", "10.77.0.2")
    assert float(one_way) >= 0.030
    assert "wanlab: received" in result.stderr


@pytest.mark.timeout(120)
def test_run_unshare_enters_a_namespace_of_its_own() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("WANLAB_UNSHARED", None)
    script = "import os, sys; print(os.stat('/proc/self/ns/net').st_ino); sys.exit(3)"
    argv = [sys.executable, "-m", "wanlab", "run", "--unshare", "--hosts", "2", "--"]
    result = subprocess.run(
        ["timeout", "60", *argv, sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=70,
    )
    assert result.returncode == 3, result.stderr
    assert int(result.stdout.split()[0]) != os.stat("/proc/self/ns/net").st_ino


@pytest.mark.timeout(120)
def test_run_refuses_a_namespace_with_other_interfaces_and_changes_nothing() -> None:
    script = (
        "ip tuntap add dev decoy0 mode tun && ip rule > before && "
        f"{sys.executable} -m wanlab run -- true; echo status $?; ip rule > after && "
        "cmp -s before after && echo rules unchanged; rm -f before after"
    )
    # A private temp directory for the two files: never write into the repository.
    tmp = subprocess.run(["mktemp", "-d"], capture_output=True, text=True).stdout.strip()
    try:
        result = unshared(["sh", "-c", f"cd {tmp} && {script}"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert "status 2" in result.stdout, result.stderr
    assert "rules unchanged" in result.stdout
    assert "interfaces besides lo (decoy0)" in result.stderr


@pytest.mark.timeout(120)
def test_run_refuses_without_proof_of_a_private_namespace() -> None:
    # In a fresh namespace with only lo, but PID 1's namespace unreadable and no wrapper flag,
    # the lab cannot tell this is not the host: it must refuse. Where PID 1's namespace is
    # readable, the comparison proves privacy and the command runs.
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("WANLAB_UNSHARED", None)
    result = subprocess.run(
        ["timeout", "60", "unshare", "-n", sys.executable, "-m", "wanlab", "run", "--", "true"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=70,
    )
    try:
        os.stat("/proc/1/ns/net")
        pid1_readable = True
    except OSError:
        pid1_readable = False
    if pid1_readable:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 2
        assert "cannot compare this network namespace" in result.stderr
