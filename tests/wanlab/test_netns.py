"""wanlab.netns and the CLI without root: prefix rules, host addresses, the namespace guard.

Nothing here changes any network: the guard is tested as a pure function, and the CLI only on
inputs it refuses before it would look at the namespace.
"""

from __future__ import annotations

import ipaddress
import shutil

import pytest

from wanlab.__main__ import build_parser, main, unshared_argv
from wanlab.netns import NetnsError, lab_hosts, private_namespace_problem, validate_prefix


def test_reserved_and_private_prefixes_are_accepted() -> None:
    assert validate_prefix("198.18.0.0/15", 40) == ipaddress.IPv4Network("198.18.0.0/15")
    assert validate_prefix("10.77.0.0/16", 40).num_addresses == 65536
    assert validate_prefix("192.0.2.0/24", 254).prefixlen == 24


@pytest.mark.parametrize(
    ("prefix", "hosts", "why"),
    [
        ("8.8.8.0/24", 10, "not a private"),
        ("127.0.0.0/8", 10, "not a private"),
        ("224.0.0.0/24", 10, "not a private"),
        ("2001:2::/48", 10, "IPv4 only"),
        ("198.18.0.1/15", 10, "bad lab prefix"),
        ("192.0.2.0/24", 255, "room for 254"),
        ("192.0.2.0/24", 0, "room for 254"),
    ],
)
def test_bad_prefixes_are_refused(prefix: str, hosts: int, why: str) -> None:
    with pytest.raises(NetnsError, match=why):
        validate_prefix(prefix, hosts)


def test_hosts_start_after_the_network_address() -> None:
    network = ipaddress.IPv4Network("198.18.0.0/15")
    hosts = lab_hosts(network, 300)
    assert hosts[:2] == ["198.18.0.1", "198.18.0.2"]
    assert hosts[-1] == "198.18.1.44"
    assert len(set(hosts)) == 300


def test_guard_accepts_a_fresh_namespace_proven_either_way() -> None:
    assert private_namespace_problem(["lo"], 11, 22, unshared_flag=False) is None
    assert private_namespace_problem(["lo"], None, None, unshared_flag=True) is None
    assert private_namespace_problem(["lo"], 11, None, unshared_flag=True) is None


def test_guard_refuses_the_host_whatever_the_flag_says() -> None:
    uplinks = private_namespace_problem(["eth0", "lo"], 11, 22, unshared_flag=True)
    assert uplinks is not None and "eth0" in uplinks
    same = private_namespace_problem(["lo"], 33, 33, unshared_flag=True)
    assert same is not None and "PID 1" in same
    unproven = private_namespace_problem(["lo"], 11, None, unshared_flag=False)
    assert unproven is not None and "WANLAB_UNSHARED" in unproven


def test_cli_refuses_bad_input_before_touching_anything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--delay", "fast", "--", "true"]) == 2
    assert "delay must be" in capsys.readouterr().err
    assert main(["run", "--loss", "1.5", "--", "true"]) == 2
    assert "loss must be" in capsys.readouterr().err
    assert main(["run"]) == 2
    assert "no COMMAND" in capsys.readouterr().err


def test_cli_parses_the_documented_example() -> None:
    example = "run --prefix 10.77.0.0/16 --hosts 40 --delay 10-150 --jitter 5 --loss 0.02"
    args = build_parser().parse_args([*example.split(" "), "--", "a", "-b", "c"])
    assert (args.prefix, args.hosts, args.delay, args.jitter, args.loss) == (
        "10.77.0.0/16",
        40,
        "10-150",
        5.0,
        0.02,
    )
    assert args.argv == ["--", "a", "-b", "c"]


def test_help_says_how_to_use_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--unshare" in out
    assert "WANLAB_HOSTS" in out or "COMMAND" in out


def test_unshare_reexec_keeps_the_commands_own_flags() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("the unshare command (util-linux) is missing")
    argv = unshared_argv(["run", "--unshare", "--hosts", "3", "--", "tool", "--unshare"])
    assert argv[1:2] == ["-n"]
    assert argv[-6:] == ["run", "--hosts", "3", "--", "tool", "--unshare"]
