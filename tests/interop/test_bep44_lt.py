"""BEP 44 items and BEP 33 scrapes between magnetar and libtorrent 2.1.1 on loopback.

Both ways, byte for byte: items libtorrent puts (immutable; mutable with and without salt)
are got by ``magnetar get``, and items ``magnetar put`` stores are got by libtorrent's
``dht_get_immutable_item`` / ``dht_get_mutable_item``; ``magnetar peers --scrape`` counts a
libtorrent swarm of known seeds and peers within the bloom filter's error.

The module has a swarm of its own: libtorrent puts every node that put or announced with a
valid token into its table, and a short-lived ``magnetar`` process is then a dead entry
that would slow other modules' lookups.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from dht.items import public_key

if TYPE_CHECKING:
    from tests.interop.ltswarm import LtNode, LtSwarm

pytestmark = pytest.mark.interop

# Any seed will do: libtorrent's expanded key and our public key are derived from it.
SEED = hashlib.sha256(b"magnetar bep44 interop").digest()


@pytest.fixture(scope="module")
def swarm() -> Iterator[LtSwarm]:
    pytest.importorskip("libtorrent")
    from tests.interop.ltswarm import LtSwarm

    with LtSwarm(8, first_ip="127.0.3.2") as s:
        yield s


def lt_keypair(seed: bytes) -> tuple[bytes, bytes]:
    """libtorrent's key pair for an RFC 8032 seed: the 64-byte *expanded* secret key
    (SHA-512 of the seed, clamped) and the public key, which ``cryptography`` derives."""
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return bytes(h), public_key(seed)


def magnetar(swarm: LtSwarm, *args: str) -> subprocess.CompletedProcess[bytes]:
    boot = swarm[0].addr
    return subprocess.run(
        [sys.executable, "-m", "magnet", *args, "-b", f"{boot[0]}:{boot[1]}", "--timeout", "20"],
        capture_output=True,
        timeout=60,
    )


def wait_alert(node: LtNode, match: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    """Pump ``node``'s alerts until one matches; TimeoutError with its recent log if none."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for alert in node._pop(0.05):
            if match(alert):
                return alert
    raise TimeoutError(f"{node}: no matching alert in {timeout} s; recent: {node.recent()}")


def test_magnetar_scrape_counts_a_libtorrent_swarm(swarm: LtSwarm) -> None:
    # First in the module: later tests leave dead magnetar entries in libtorrent's tables,
    # which make its announce lookups wait out timeouts.
    import libtorrent as lt

    info_hash = os.urandom(20)
    seeds, peers = swarm.nodes[:3], swarm.nodes[3:7]
    for n in seeds:
        n.session.dht_announce(lt.sha1_hash(info_hash), 6000, 1)  # flag 1: seed (BEP 33)
    for n in peers:
        n.announce(info_hash, 6000)
    swarm.wait_announced(info_hash, 3, timeout=10.0)
    time.sleep(1.0)  # the last announces reach their nodes
    out = magnetar(swarm, "peers", info_hash.hex(), "--scrape", "--json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    # 2048-bit filters with a handful of IPs: the estimate is within one of the truth.
    assert abs(record["seeds"] - len(seeds)) <= 1, record
    assert abs(record["peers"] - len(peers)) <= 1, record


def test_libtorrent_immutable_put_is_got_by_magnetar(swarm: LtSwarm) -> None:
    import libtorrent as lt

    value: Any = {b"interop": [b"libtorrent", 2, {b"x": b"\x00\xff"}]}
    target = swarm[2].session.dht_put_immutable_item(value).to_bytes()
    wait_alert(swarm[2], lambda a: isinstance(a, lt.dht_put_alert))
    out = magnetar(swarm, "get", target.hex(), "--json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert bytes.fromhex(record["bencoded"]) == lt.bencode(value)
    assert hashlib.sha1(lt.bencode(value)).digest() == target


@pytest.mark.parametrize("salt", [b"", b"interop salt"])
def test_libtorrent_mutable_put_is_got_by_magnetar(swarm: LtSwarm, salt: bytes) -> None:
    import libtorrent as lt

    sk, pk = lt_keypair(SEED)
    node = swarm[4]
    data = b"from libtorrent " + salt
    node.session.dht_put_mutable_item(sk, pk, data, salt)
    wait_alert(node, lambda a: isinstance(a, lt.dht_put_alert) and a.num_success > 0)
    args = ["get", "--key", pk.hex(), "--json"]
    out = magnetar(swarm, *args, *(["--salt", salt.decode()] if salt else []))
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert bytes.fromhex(record["bencoded"]) == lt.bencode(data)
    assert record["key"] == pk.hex() and record["seq"] >= 1


def test_magnetar_immutable_put_is_got_by_libtorrent(swarm: LtSwarm) -> None:
    import libtorrent as lt

    out = magnetar(swarm, "put", "d1:ai1e1:bl2:xyi-3eee", "--bencoded", "--json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["stored"] >= 5
    target = bytes.fromhex(record["target"])
    node = swarm[6]
    node.session.dht_get_immutable_item(lt.sha1_hash(target))
    alert = wait_alert(node, lambda a: isinstance(a, lt.dht_immutable_item_alert))
    assert alert.target.to_bytes() == target
    assert lt.bencode(alert.item) == b"d1:ai1e1:bl2:xyi-3eee"


@pytest.mark.parametrize("salt", [b"", b"from magnetar"])
def test_magnetar_mutable_put_is_got_by_libtorrent(
    swarm: LtSwarm, salt: bytes, tmp_path: Any
) -> None:
    import libtorrent as lt

    key_file = tmp_path / "key"
    key_file.write_text(SEED.hex() + "\n")
    pk = public_key(SEED)
    salt_args = ["--salt", salt.decode()] if salt else []
    seqs = []
    for value in (b"first", b"second"):
        put = ["put", value.decode(), "--key-file", str(key_file), "--json", *salt_args]
        out = magnetar(swarm, *put)
        assert out.returncode == 0, out.stderr
        seqs.append(json.loads(out.stdout)["seq"])
    assert seqs[1] == seqs[0] + 1  # the next seq after the highest the DHT held
    node = swarm[7]
    node.session.dht_get_mutable_item(pk, salt)
    alert = wait_alert(
        node, lambda a: isinstance(a, lt.dht_mutable_item_alert) and a.seq == seqs[1]
    )
    assert lt.bencode(alert.item) == b"6:second"
    assert bytes(alert.key) == pk and bytes(alert.salt) == salt
