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


def test_version_option_and_command_print_the_one_version() -> None:
    from dht.version import CLIENT_NAME, KRPC_VERSION, PEER_ID_PREFIX, __version__

    major, minor, _ = (int(part) for part in __version__.split("."))
    assert CLIENT_NAME.split() == ["magnetar", __version__]
    assert (KRPC_VERSION[:2], list(KRPC_VERSION[2:])) == (b"MR", [major, minor])
    assert PEER_ID_PREFIX.startswith(b"-MR") and len(PEER_ID_PREFIX) == 8
    for args in (["--version"], ["version"]):
        out = magnetar(*args)
        assert out.returncode == 0, out.stderr
        assert out.stdout == CLIENT_NAME + "\n"


def test_starting_the_cli_imports_no_command_library() -> None:
    # magnetar resolve is timed from process start: the root app and every command module
    # load typer and nothing of what the commands call.
    probe = (
        "import sys, magnet.cli.app; "
        "print('\\n'.join(m for m in sys.modules if m.split('.')[0] in ('dht', 'magnet', 'crawl')"
        " or m in ('asyncio', 'sqlite3', 'aiohttp', 'rich')))"
    )
    loaded = _modules_printed_by(probe)
    assert "magnet.cli.resolve" in loaded  # the probe does see our modules
    heavy = {
        m
        for m in loaded
        if m.startswith(("dht", "magnet.io", "crawl"))
        or m in ("asyncio", "sqlite3", "aiohttp", "rich")
    }
    assert heavy == set()


def test_the_resolve_path_loads_no_item_or_layer_modules() -> None:
    # A resolve's DHT client node never gets or puts a BEP 44 item, and a v1 link needs no
    # BEP 52 piece layers: those modules (and ed25519) are imported on first use, not with
    # dht.Node or magnet.resolve, since resolve is timed from process start.
    probe = (
        "import sys, dht.io.node, dht.io.client, magnet.io.resolve; "
        "print('\\n'.join(m for m in sys.modules"
        " if m.startswith(('dht', 'magnet', 'cryptography'))))"
    )
    loaded = _modules_printed_by(probe)
    assert "dht.io.node" in loaded  # the probe does see our modules
    item_modules = {"dht.items", "dht.itemstore", "dht.itemlookups", "dht.keeper"}
    assert loaded & item_modules == set()
    assert "magnet.layers" not in loaded
    assert not any(m.startswith("cryptography") for m in loaded)


def _modules_printed_by(probe: str) -> set[str]:
    """Run ``probe`` in a fresh interpreter: the module names it prints, one a line."""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(out.stdout.split())
