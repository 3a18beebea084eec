import subprocess
import sys


def magnetar(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "magnet", *args], capture_output=True, text=True, timeout=60
    )


def test_python_dash_m_runs_the_cli() -> None:
    out = magnetar("version")
    assert out.returncode == 0
    assert out.stdout.startswith("magnetar ")


def test_fast_exit_keeps_exit_codes_and_flushes_output() -> None:
    # main() leaves with os._exit: codes must survive it and buffered output must be out.
    bad = magnetar("resolve", "magnet:?xt=urn:btih:zz")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "bad magnet link" in bad.stderr
    helped = magnetar("crawl", "--help")
    assert helped.returncode == 0
    # The help ends with its command list: all of it arrived.
    assert "export" in helped.stdout.rpartition("Commands:")[2]
