"""wanlab: an emulated internet for tests and benchmarks (per-pair delay, jitter, loss).

This kernel has no ``netem``, so the lab shapes traffic in user space: inside a private network
namespace, the lab's addresses live on a TUN device and policy routing sends every packet
between two of them through an emulator process, which holds it for the pair's one-way delay
plus jitter, drops a share of them, keeps each flow in order, swallows ICMP port unreachable
(dead hosts stay silent, as behind a NAT), and writes it back. UDP and TCP both pass.

Command line (root; ``--unshare`` enters a fresh ``unshare -n`` namespace first)::

    python -m wanlab run --unshare --prefix 198.18.0.0/15 --hosts 40 \\
        --delay 10-150 --jitter 5 --loss 0.02 -- COMMAND...

COMMAND sees ``WANLAB_HOSTS`` (the addresses, space-separated) and ``WANLAB_PREFIX``.

Library (inside a namespace made by ``unshare -n``)::

    from wanlab import Profile, WanLab
    with WanLab(Profile(delay_ms=(10, 150), jitter_ms=5, loss=0.02), hosts=40) as lab:
        a, b = lab.addresses[:2]     # bind to them; traffic between them is shaped
    print(lab.stats)                 # the emulator's counters

Modules: ``profiles`` (the profile, per-pair delays), ``packets`` (IPv4 fields) and
``schedule`` (release time or drop, given a packet and ``now``) are sans-IO cores;
``netns`` (TUN, addresses, rules, sysctls), ``emulator`` (the select loop) and ``lab`` (the
context manager) are the drivers.
"""

from __future__ import annotations

from wanlab.lab import WanLab
from wanlab.profiles import Profile, ProfileError
from wanlab.schedule import WanSchedule, WanStats

__all__ = ["Profile", "ProfileError", "WanLab", "WanSchedule", "WanStats"]
