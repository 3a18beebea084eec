import subprocess
import sys


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "magnet", "version"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert out.stdout.startswith("magnetar ")


def test_fast_exit_keeps_exit_codes_and_flushes_output() -> None:
    # main() leaves with os._exit: codes must survive it and buffered output must be out.
    bad = subprocess.run(
        [sys.executable, "-m", "magnet", "resolve", "magnet:?xt=urn:btih:zz"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "bad magnet link" in bad.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "magnet", "crawl", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0
    # The help ends with its command list: all of it arrived.
    assert "export" in helped.stdout.rpartition("Commands:")[2]
