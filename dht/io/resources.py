"""What the node's process costs the host: resident memory and CPU time.

Read at status-line and scrape time, never per packet. Linux answers from ``/proc``; other
systems fall back to ``resource``/``os.times`` where they can, and report 0 where they cannot,
so callers never need to care which platform they run on.
"""

from __future__ import annotations

import os
import sys

__all__ = ["cpu_seconds", "rss_bytes"]


def rss_bytes() -> int:
    """Resident set size of this process in bytes; 0 when the platform cannot tell.

    Off Linux this is the *peak* resident size (``ru_maxrss``), the best ``resource`` offers.
    """
    try:
        with open("/proc/self/statm", "rb") as f:
            resident_pages = int(f.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in bytes on macOS and in KiB on the BSDs and Linux.
    return int(peak if sys.platform == "darwin" else peak * 1024)


def cpu_seconds() -> float:
    """User plus system CPU time this process has used."""
    t = os.times()
    return t.user + t.system
