"""The import contract that keeps the design visible: cores stay sans-IO, drivers stay apart.

A *core* is every module of ``dht``, ``magnet`` and ``crawl`` outside their ``io`` packages
and the CLI. Cores take bytes, addresses and ``now`` in and hand datagrams, timers and events
out, so the simulator can run them on a virtual clock; they must not reach for the network,
the clock, threads, the file system or the event loop. ``socket`` is allowed only for its
pure address conversions (``inet_pton`` and friends), which touch no socket.

The check reads the source (no imports are executed), so it also sees imports inside
functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dht", "magnet", "crawl")
FORBIDDEN_IN_CORES = frozenset(
    {"asyncio", "socket", "time", "threading", "os", "sqlite3", "typer", "aiohttp", "uvloop"}
)
# Pure functions and constants of ``socket``: conversions between text and packed addresses.
PURE_SOCKET_NAMES = frozenset(
    {"inet_pton", "inet_ntop", "inet_aton", "inet_ntoa", "AF_INET", "AF_INET6"}
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_driver(name: str) -> bool:
    parts = name.split(".")
    return "io" in parts or parts[:2] == ["magnet", "cli"]


def is_facade(name: str) -> bool:
    """A package's front (``import dht; dht.Node``) and ``python -m`` entry re-export drivers."""
    return name in PACKAGES or name.endswith(".__main__")


def all_modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found.append((module_name(path), path))
    return found


def core_modules() -> list[tuple[str, Path]]:
    return [
        (name, path) for name, path in all_modules() if not is_driver(name) and not is_facade(name)
    ]


def imports(tree: ast.AST, name: str) -> Iterator[tuple[str, tuple[str, ...], int]]:
    """(module, names imported from it, line) for every import statement in ``tree``."""
    package = name if name.count(".") == 0 else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, tuple(a.name for a in node.names), node.lineno


def socket_attributes(tree: ast.AST) -> set[str]:
    """Attributes used as ``socket.<name>`` anywhere in the module."""
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "socket"
    }


def core_violations(name: str, path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    problems: list[str] = []
    for module, names, line in imports(tree, name):
        top = module.split(".")[0]
        where = f"{path.name}:{line}"
        if top == "socket":
            impure = set(names or socket_attributes(tree)) - PURE_SOCKET_NAMES
            if impure:
                problems.append(f"{where}: socket.{', socket.'.join(sorted(impure))}")
        elif top in FORBIDDEN_IN_CORES:
            problems.append(f"{where}: imports {module}")
        elif top in PACKAGES and is_driver(module):
            problems.append(f"{where}: imports the driver {module}")
        elif top in PACKAGES:
            # ``from dht import io`` names a driver package through its parent
            for n in names:
                if is_driver(f"{module}.{n}"):
                    problems.append(f"{where}: imports the driver {module}.{n}")
    return problems


@pytest.mark.parametrize("name", [name for name, _ in core_modules()])
def test_cores_import_no_io(name: str) -> None:
    assert core_violations(name, dict(core_modules())[name]) == []


@pytest.mark.parametrize("name", [name for name, _ in all_modules() if name.startswith("dht")])
def test_dht_stands_alone(name: str) -> None:
    """dht is the foundation: it never imports the resolver or the crawler."""
    path = dict(all_modules())[name]
    tree = ast.parse(path.read_text(), str(path))
    bad = [m for m, _, _ in imports(tree, name) if m.split(".")[0] in ("magnet", "crawl")]
    assert bad == []


def test_the_check_catches_what_it_forbids(tmp_path: Path) -> None:
    """The contract must be able to fail: a fake core with each kind of forbidden import."""
    fake = ROOT / "dht" / "_contract_probe.py"
    assert not fake.exists()
    source = (
        "import time\n"
        "import socket\n"
        "x = socket.socket()\n"
        "from dht.io.node import Node\n"
        "from dht import io\n"
        "def f():\n"
        "    import asyncio\n"
        "y = socket.inet_pton\n"
    )
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    problems = core_violations("dht._contract_probe", probe)
    joined = "\n".join(problems)
    assert "imports time" in joined
    assert "socket.socket" in joined and "inet_pton" not in joined
    assert "imports the driver dht.io.node" in joined
    assert "imports the driver dht.io" in joined
    assert "imports asyncio" in joined


def test_layout_has_cores_and_drivers() -> None:
    names = {name for name, _ in all_modules()}
    assert {"dht.io", "magnet.io", "crawl.io", "magnet.cli"} <= names
    assert len(core_modules()) > 20
