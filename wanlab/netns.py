"""The namespace side of the WAN lab: TUN device, addresses, policy routing, sysctls, undone.

Linux delivers traffic between two local addresses through the ``local`` routing table without
touching any device, so nothing could delay it. The lab turns that around (driver; root only):

- a TUN device (opened through ``/dev/net/tun``, ``IFF_TUN | IFF_NO_PI``) holds the lab's host
  addresses as /32s, plus a ``local`` route for the whole prefix so that any lab address is
  local (libtorrent binds each socket to the device that holds its address: on ``lo`` the
  traffic would skip the emulator);
- policy rules, in order: ``iif TUN lookup local`` (packets the emulator writes back are
  delivered), ``to PREFIX lookup T`` (table T: ``PREFIX dev TUN src FIRST``, so locally sent
  lab traffic leaves through the TUN, to the emulator), then the ``local`` rule moved from
  priority 0 to after them;
- ``rp_filter`` off and ``accept_local=1`` on the TUN (the packets that come back carry a
  local source address), IPv6 off on it (no neighbour discovery chatter).

All of it is undone on exit: rules restored, sysctls put back, the device closed (it is not
persistent, so it vanishes with its addresses and routes). ``private_namespace_problem`` is
the guard: the lab only ever changes a network namespace that is not the host's.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = [
    "UNSHARED_ENV",
    "LabNetwork",
    "NetnsError",
    "interface_names",
    "lab_hosts",
    "open_tun",
    "private_namespace_problem",
    "validate_prefix",
]

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_IFNAMSIZ = 16
# Priorities of the lab's rules; the kernel's own ``local`` rule sits at 0 and moves to the last.
_PREF_FROM_TUN = 100
_PREF_TO_LAB = 200
_PREF_LOCAL = 300
_ROUTE_TABLE = 177
_IP_TIMEOUT_S = 30
UNSHARED_ENV = "WANLAB_UNSHARED"  # set to 1 by a wrapper that created this namespace
_TXQUEUELEN = 10000  # the emulator drains in bursts: do not let the device drop on a backlog


class NetnsError(RuntimeError):
    """The lab cannot be set up here (not a private namespace, bad prefix, an ``ip`` failure)."""


def validate_prefix(prefix: str, hosts: int) -> ipaddress.IPv4Network:
    """Parse the lab prefix; refuse routable space, loopback and a prefix too small for hosts."""
    try:
        network = ipaddress.ip_network(prefix, strict=True)
    except ValueError as exc:
        raise NetnsError(f"bad lab prefix {prefix!r}: {exc}") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise NetnsError(f"the lab is IPv4 only, got {prefix}")
    if network.is_global or network.is_loopback or network.is_multicast:
        raise NetnsError(
            f"{prefix} is not a private, documentation or benchmarking prefix "
            "(use e.g. 198.18.0.0/15, RFC 2544)"
        )
    if hosts < 1 or hosts > network.num_addresses - 2:
        raise NetnsError(f"{prefix} has room for {network.num_addresses - 2} hosts, not {hosts}")
    return network


def lab_hosts(network: ipaddress.IPv4Network, hosts: int) -> list[str]:
    """The first ``hosts`` addresses after the network address: ``.1``, ``.2``, ..."""
    first = int(network.network_address) + 1
    return [str(ipaddress.IPv4Address(first + i)) for i in range(hosts)]


def interface_names() -> list[str]:
    """The names of this process's namespace's interfaces.

    Read from ``/proc/self/net/dev``, which follows the reader's namespace; ``/sys/class/net``
    shows the namespace that mounted ``/sys``, the host's after a bare ``unshare -n``.
    """
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


def _netns_inode(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:  # PermissionError for PID 1 inside some containers
        return None


def private_namespace_problem(
    interfaces: list[str], own_netns: int | None, init_netns: int | None, unshared_flag: bool
) -> str | None:
    """Why this is not a private namespace the lab may rewire, or ``None`` when it is.

    It must hold no interface but ``lo`` (a host has its uplinks), and it must be known to
    differ from the host's: either it differs from PID 1's namespace, or, where PID 1's cannot
    be read (as in some containers), a wrapper that ran ``unshare -n`` says so by setting
    ``WANLAB_UNSHARED=1``. PID 1's namespace, when it can be read, wins over the flag.
    """
    others = [name for name in interfaces if name != "lo"]
    if others:
        return (
            f"this network namespace has interfaces besides lo ({', '.join(others)}); "
            "run the lab inside a fresh one: unshare -n (or --unshare)"
        )
    if own_netns is not None and init_netns is not None:
        if own_netns == init_netns:
            return "this is PID 1's network namespace; run the lab inside unshare -n (or --unshare)"
        return None
    if unshared_flag:
        return None
    return (
        "cannot compare this network namespace with PID 1's; run the lab with --unshare, or set "
        f"{UNSHARED_ENV}=1 in a wrapper that ran unshare -n"
    )


def current_namespace_problem() -> str | None:
    """``private_namespace_problem`` for the namespace this process runs in."""
    return private_namespace_problem(
        interface_names(),
        _netns_inode("self"),
        _netns_inode("1"),
        os.environ.get(UNSHARED_ENV) == "1",
    )


def open_tun(name: str) -> int:
    """Create TUN device ``name`` (raw IP packets, no prefix); its non-blocking fd."""
    if len(name.encode()) >= _IFNAMSIZ:
        raise NetnsError(f"interface name {name!r} is longer than {_IFNAMSIZ - 1} bytes")
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        request = struct.pack("16sH22x", name.encode(), _IFF_TUN | _IFF_NO_PI)
        fcntl.ioctl(fd, _TUNSETIFF, request)
    except OSError:
        os.close(fd)
        raise
    return fd


def _ip_batch(commands: list[str]) -> None:
    """Run ``ip -batch -``: one process for any number of address, route and rule commands."""
    result = subprocess.run(
        ["ip", "-batch", "-"],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=_IP_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise NetnsError(f"ip failed: {result.stderr.strip() or result.stdout.strip()}")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


@dataclass(slots=True)
class LabNetwork:
    """The lab's addresses and routes on a TUN device, in this (private) namespace.

    A context manager: ``__enter__`` checks the namespace, creates the device and rewires the
    routing; ``__exit__`` (or ``close``) restores everything. ``tun_fd`` is what the emulator
    reads and writes; pass it on, then call ``release_fd`` so this object does not keep the
    device alive.
    """

    prefix: str = "198.18.0.0/15"
    hosts: int = 40
    tun_name: str = "wanlab0"
    addresses: list[str] = field(default_factory=list, init=False)
    tun_fd: int | None = field(default=None, init=False)
    _undo_rules: list[str] = field(default_factory=list, init=False, repr=False)
    _undo_sysctls: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _lo_was_up: bool = field(default=True, init=False, repr=False)

    def __enter__(self) -> LabNetwork:
        network = validate_prefix(self.prefix, self.hosts)
        problem = current_namespace_problem()
        if problem is not None:
            raise NetnsError(problem)
        self.addresses = lab_hosts(network, self.hosts)
        try:
            self._set_up(str(network))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _set_up(self, prefix: str) -> None:
        tun = self.tun_name
        self.tun_fd = open_tun(tun)
        self._lo_was_up = _is_up("lo")
        self._set_sysctl(f"net.ipv6.conf.{tun}.disable_ipv6", "1")
        # The kernel applies the larger of "all" and the device's own value: both go to 0.
        for scope in ("all", tun):
            self._set_sysctl(f"net.ipv4.conf.{scope}.rp_filter", "0")
        self._set_sysctl(f"net.ipv4.conf.{tun}.accept_local", "1")
        first = self.addresses[0]
        commands = [
            "link set dev lo up",
            f"link set dev {tun} mtu 1500 txqueuelen {_TXQUEUELEN} up",
            *(f"address add {host}/32 dev {tun}" for host in self.addresses),
            f"route add local {prefix} dev {tun} table local",
            f"route add {prefix} dev {tun} src {first} table {_ROUTE_TABLE}",
        ]
        _ip_batch(commands)
        # Each rule is recorded with its undo before the next one goes in, so a failure half
        # way leaves nothing behind. The kernel's local rule is removed only once its
        # replacement is in place, so local delivery never lapses.
        for add, undo in (
            (
                f"rule add pref {_PREF_FROM_TUN} iif {tun} lookup local",
                f"rule del pref {_PREF_FROM_TUN}",
            ),
            (
                f"rule add pref {_PREF_TO_LAB} to {prefix} lookup {_ROUTE_TABLE}",
                f"rule del pref {_PREF_TO_LAB}",
            ),
            (f"rule add pref {_PREF_LOCAL} lookup local", f"rule del pref {_PREF_LOCAL}"),
            ("rule del pref 0 lookup local", "rule add pref 0 lookup local"),
        ):
            _ip_batch([add])
            self._undo_rules.append(undo)

    def _set_sysctl(self, name: str, value: str) -> None:
        path = _sysctl_path(name)
        old = path.read_text().strip()
        path.write_text(value)
        # Settings of the TUN itself vanish with it; only the namespace-wide ones need undoing.
        if f".{self.tun_name}." not in name:
            self._undo_sysctls.setdefault(name, old)

    def release_fd(self) -> None:
        """Forget the TUN fd (another process now holds it; the device lives while it does)."""
        if self.tun_fd is not None:
            os.close(self.tun_fd)
            self.tun_fd = None

    def close(self) -> None:
        """Undo everything, in reverse order; safe to call twice or after a partial set-up."""
        errors: list[str] = []
        while self._undo_rules:
            undo = self._undo_rules.pop()
            try:
                _ip_batch([undo])
            except (NetnsError, subprocess.TimeoutExpired) as exc:
                errors.append(str(exc))
        self.release_fd()
        for name, old in reversed(list(self._undo_sysctls.items())):
            try:
                _sysctl_path(name).write_text(old)
            except OSError as exc:
                errors.append(f"{name}: {exc}")
        self._undo_sysctls.clear()
        if not self._lo_was_up:
            self._lo_was_up = True
            try:
                # Down again, lo keeps its local routes; a fresh namespace's down lo has none.
                _ip_batch(["link set dev lo down", "route flush table local dev lo"])
            except (NetnsError, subprocess.TimeoutExpired) as exc:
                errors.append(str(exc))
        if errors:
            raise NetnsError("teardown incomplete: " + "; ".join(errors))


def _is_up(name: str) -> bool:
    result = subprocess.run(
        ["ip", "-o", "link", "show", "dev", name],
        capture_output=True,
        text=True,
        timeout=_IP_TIMEOUT_S,
    )
    flags = result.stdout.partition("<")[2].partition(">")[0].split(",")
    return "UP" in flags
