"""``python -m wanlab``: run a command inside an emulated internet (see ``wanlab`` for usage).

``run`` sets up the lab in the current network namespace (which must be a private one: see
``wanlab.netns.private_namespace_problem``; ``--unshare`` makes one with ``unshare -n``), runs
the command with ``WANLAB_PREFIX`` and ``WANLAB_HOSTS`` (space-separated addresses) in its
environment, tears the lab down, prints the emulator's counters on stderr and exits with the
command's status (2 when the lab cannot be set up). ``_loop`` is the emulator process itself,
started by ``wanlab.lab.WanLab`` with the TUN device's descriptor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from wanlab.lab import WanLab
from wanlab.netns import UNSHARED_ENV, NetnsError
from wanlab.profiles import Profile, ProfileError

EPILOG = """\
COMMAND gets WANLAB_HOSTS (the lab's addresses, space-separated) and WANLAB_PREFIX.
Jitter never reorders a flow; ICMP port unreachable is dropped (dead hosts stay silent).

example (as root):
  python -m wanlab run --unshare --hosts 40 --delay 10-150 --jitter 5 --loss 0.02 -- \\
      sh -c 'echo $WANLAB_HOSTS'
Traffic between lab addresses passes the emulator; nothing leaves the namespace."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wanlab",
        description="An emulated internet (delay, jitter, loss) inside a private netns.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run}")
    run = commands.add_parser(
        "run",
        help="run COMMAND with the lab's addresses available",
        description="Set up the lab, run COMMAND, tear the lab down; exit with its status.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--prefix",
        default="198.18.0.0/15",
        help="lab prefix, private or reserved IPv4 (default %(default)s, RFC 2544)",
    )
    run.add_argument(
        "--hosts", type=int, default=40, help="addresses .1 to .N of the prefix (default 40)"
    )
    run.add_argument(
        "--delay",
        default="10-150",
        help="one-way delay of each pair in ms, MS or MIN-MAX, drawn once (default 10-150)",
    )
    run.add_argument(
        "--jitter", type=float, default=0.0, help="extra delay per packet, uniform in [0, MS]"
    )
    run.add_argument(
        "--loss", type=float, default=0.0, help="loss probability per packet (e.g. 0.02)"
    )
    run.add_argument("--seed", type=int, default=0, help="seed of delays, jitter and loss")
    run.add_argument("--tun", default="wanlab0", help="TUN device name (default wanlab0)")
    run.add_argument(
        "--unshare", action="store_true", help="re-run this command inside `unshare -n` first"
    )
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND...")
    loop = commands.add_parser("_loop")  # the emulator process, started by WanLab
    loop.add_argument("--fd", type=int, required=True)
    loop.add_argument("profile_json")
    return parser


def unshared_argv(argv: list[str]) -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise NetnsError("--unshare needs the unshare command (util-linux)")
    # Options come before COMMAND, so the first --unshare is ours; COMMAND's stay as they are.
    inner = list(argv)
    inner.remove("--unshare")
    return [unshare, "-n", sys.executable, "-m", "wanlab", *inner]


def run_command(args: argparse.Namespace, raw_argv: list[str]) -> int:
    command = list(args.argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("wanlab: no COMMAND given (put it after --)", file=sys.stderr)
        return 2
    try:
        profile = Profile(
            delay_ms=Profile.parse_delay(args.delay),
            jitter_ms=args.jitter,
            loss=args.loss,
            seed=args.seed,
        )
        if args.unshare and os.environ.get(UNSHARED_ENV) != "1":
            env = dict(os.environ, **{UNSHARED_ENV: "1"})
            return subprocess.run(unshared_argv(raw_argv), env=env).returncode
        with WanLab(profile, prefix=args.prefix, hosts=args.hosts, tun_name=args.tun) as lab:
            env = dict(os.environ)
            env["WANLAB_PREFIX"] = args.prefix
            env["WANLAB_HOSTS"] = " ".join(lab.addresses)
            try:
                status = subprocess.run(command, env=env).returncode
            except OSError as exc:
                print(f"wanlab: cannot run {command[0]}: {exc}", file=sys.stderr)
                status = 127
            except KeyboardInterrupt:
                status = 130  # the command had its SIGINT too; the lab still comes down
    except (NetnsError, ProfileError, PermissionError) as exc:
        print(f"wanlab: {exc}", file=sys.stderr)
        return 2
    counters = ", ".join(f"{key} {value}" for key, value in lab.stats.items())
    print(f"wanlab: {counters}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    raw_argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(raw_argv)
    if args.command == "_loop":
        from wanlab.emulator import main as loop_main

        return loop_main(args.fd, args.profile_json)
    return run_command(args, raw_argv)


if __name__ == "__main__":
    sys.exit(main())
