"""``magnetar get``, ``put`` and ``keygen``: BEP 44 items through ``dht.io.itemclient``.

VALUE on the command line is stored as a bencoded byte string (its bytes as the shell gave
them); ``--bencoded`` takes it as raw bencode instead (a number, list or dict). ``get``
prints a byte string's bytes as they are, anything else as its bencoding (``--bencoded``
prints the bencoding always); ``--json`` gives the value, its bencoding in hex and, for a
mutable item, the key, seq and signature. Exit codes: 0 found or stored, 1 nothing found,
nobody stored it, or no node answered in time, 2 bad input.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from magnet.cli.options import (
    EXIT_NOT_FOUND,
    BootstrapOption,
    JsonOption,
    fail,
    parse_bootstrap,
    run,
)

if TYPE_CHECKING:
    from dht.items import Item

__all__ = ["describe_item", "get", "keygen", "print_scrape", "put"]

TimeoutOption = Annotated[float, typer.Option(help="Give up after this many seconds.", min=0.1)]
SaltOption = Annotated[
    str | None, typer.Option("--salt", help="Salt of a mutable item (up to 64 bytes).")
]
BencodedOption = Annotated[
    bool, typer.Option("--bencoded", help="VALUE is (print the value as) raw bencode.")
]

log = logging.getLogger("magnetar")
STDIN_LIMIT = 1000  # the largest raw value that could fit BEP 44's 1000 bencoded bytes


def get(
    target: Annotated[
        str | None, typer.Argument(help="40-hex target (SHA-1 of the item), or use --key.")
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="64-hex public key of a mutable item.")
    ] = None,
    salt: SaltOption = None,
    bootstrap: BootstrapOption = None,
    timeout: TimeoutOption = 30.0,
    bencoded: BencodedOption = False,
    json_out: JsonOption = False,
) -> None:
    """Get a BEP 44 item from the DHT: immutable by target, mutable by key and salt.

    Examples:

      magnetar get e5f96f6f38320f0f33959cb4d3d656452117aadb -b 127.0.0.1:6881

      magnetar get --key 77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548
      --salt foobar --json

    Exit code 0 when found, 1 when not (or no node answered), 2 for bad input.
    """
    from dht.io.client import ClientError
    from dht.io.itemclient import get_item
    from dht.items import mutable_target

    salt_bytes = _salt(salt)
    if (target is None) == (key is None):
        fail("give a TARGET or --key PUBKEY (one of them)")
    if key is not None:
        target_bytes = mutable_target(_hex(key, 32, "--key"), salt_bytes)
    else:
        assert target is not None
        if salt is not None:
            fail("--salt goes with --key (a target already includes the salt)")
        target_bytes = _hex(target, 20, "TARGET")
    routers = parse_bootstrap(bootstrap)
    started = time.monotonic()
    try:
        item = run(get_item(target_bytes, salt=salt_bytes, bootstrap=routers, timeout=timeout))
    except ClientError as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    seconds = time.monotonic() - started
    if item is None:
        fail(f"no item found for {target_bytes.hex()} in {seconds:.1f} s", EXIT_NOT_FOUND)
    if json_out:
        import json

        typer.echo(json.dumps({**describe_item(item), "seconds": round(seconds, 3)}))
        return
    value = item.value()
    data = value if isinstance(value, bytes) and not bencoded else item.v
    out = sys.stdout.buffer
    out.write(data + (b"" if data.endswith(b"\n") else b"\n"))
    out.flush()
    seq = getattr(item, "seq", None)
    log.info("got %s%s in %.2f s", target_bytes.hex(), f" (seq {seq})" * (seq is not None), seconds)


def put(
    value: Annotated[str, typer.Argument(help="The value to store ('-' reads it from stdin).")],
    key_file: Annotated[
        str | None,
        typer.Option("--key-file", help="Private key (from magnetar keygen): a mutable item."),
    ] = None,
    salt: SaltOption = None,
    seq: Annotated[
        int | None,
        typer.Option(help="Sequence number (default: one more than the DHT has).", min=0),
    ] = None,
    cas: Annotated[
        int | None, typer.Option(help="Only replace the item whose seq is this.", min=0)
    ] = None,
    bencoded: BencodedOption = False,
    bootstrap: BootstrapOption = None,
    timeout: TimeoutOption = 30.0,
    json_out: JsonOption = False,
) -> None:
    """Put a BEP 44 item: immutable, or mutable and signed with --key-file.

    VALUE is stored as a byte string; with --bencoded it is raw bencode (a number, list
    or dict). A mutable item's seq defaults to one more than the highest the DHT holds.

    Examples:

      magnetar put 'Hello World!' -b 127.0.0.1:6881

      magnetar put 'new address' --key-file my.key --salt home

      magnetar put 'd1:ai1ee' --bencoded --key-file my.key --seq 7 --cas 6

    Exit code 0 when at least one node stored it, 1 when none did, 2 for bad input.
    """
    from dht.io.client import ClientError
    from dht.io.itemclient import load_key, put_item

    raw = sys.stdin.buffer.read(STDIN_LIMIT + 1) if value == "-" else os.fsencode(value)
    if len(raw) > STDIN_LIMIT:  # never read a whole pipe for a value that cannot fit
        fail(f"the value on stdin is over {STDIN_LIMIT} bytes (BEP 44 allows 1000 bencoded)")
    if bencoded:
        import bencode2

        try:
            obj: Any = bencode2.bdecode(raw)
        except Exception as exc:  # bencode2 raises its own error, and TypeError on odd input
            fail(f"VALUE is not valid bencode: {exc}")
    else:
        obj = raw
    key = None
    if key_file is not None:
        try:
            key = load_key(key_file)
        except (OSError, ValueError) as exc:
            fail(f"cannot read the key: {exc}")
    elif salt is not None or seq is not None or cas is not None:
        fail("--salt, --seq and --cas are for mutable items (give --key-file)")
    routers = parse_bootstrap(bootstrap)
    started = time.monotonic()
    try:
        result = run(
            put_item(
                obj,
                key=key,
                salt=_salt(salt),
                seq=seq,
                cas=cas,
                bootstrap=routers,
                timeout=timeout,
            )
        )
    except ValueError as exc:
        fail(str(exc))
    except ClientError as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    except TimeoutError:
        fail(f"the put did not finish in {timeout:g} s", EXIT_NOT_FOUND)
    seconds = time.monotonic() - started
    if json_out:
        import json

        record = {
            **describe_item(result.item),
            "stored": result.stored,
            "asked": result.asked,
            "errors": dict(result.errors),
            "seconds": round(seconds, 3),
        }
        typer.echo(json.dumps(record))
    else:
        seq_text = f" seq {result.item.seq}" if hasattr(result.item, "seq") else ""
        typer.echo(
            f"{result.target.hex()}{seq_text}: stored on {result.stored} of"
            f" {result.asked} nodes in {seconds:.2f} s"
        )
    if result.stored == 0:
        why = "; ".join(f"{reason} ({n})" for reason, n in result.errors) or "no node gave a token"
        fail(f"no node stored the item: {why}", EXIT_NOT_FOUND)


def keygen(
    out: Annotated[str, typer.Option("--out", "-o", help="Where to write the private key.")],
    force: Annotated[bool, typer.Option(help="Replace an existing key file.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Make an ed25519 key for mutable items; print its public key.

    The file (mode 0600) holds the private key seed as 64 hex digits: keep it secret.

    Example: magnetar keygen --out my.key && magnetar put hello --key-file my.key
    """
    from dht.io.itemclient import new_key
    from dht.items import public_key

    try:
        seed = new_key(out, overwrite=force)
    except FileExistsError:
        fail(f"{out} exists (--force replaces it)")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    k = public_key(seed).hex()
    if json_out:
        import json

        typer.echo(json.dumps({"public_key": k, "key_file": out}))
    else:
        typer.echo(k)


def describe_item(item: Item) -> dict[str, Any]:
    """An item as JSON: target, kind, the value (text if it is UTF-8 text), its bencoding
    in hex and, when mutable, key, seq and signature in hex."""
    from dht.items import MutableItem

    value = item.value()
    record: dict[str, Any] = {"target": item.target.hex(), "kind": "immutable"}
    if isinstance(value, bytes):
        try:
            record["value"] = value.decode("utf-8")
        except UnicodeDecodeError:
            record["value"] = None
    record["bencoded"] = item.v.hex()
    if isinstance(item, MutableItem):
        record.update(kind="mutable", key=item.k.hex(), seq=item.seq, sig=item.sig.hex())
        if item.salt:
            record["salt"] = item.salt.decode("utf-8", "replace")
    return record


def _salt(salt: str | None) -> bytes:
    data = os.fsencode(salt) if salt is not None else b""
    if len(data) > 64:
        fail(f"--salt is {len(data)} bytes, BEP 44 allows 64")
    return data


def _hex(text: str, size: int, name: str) -> bytes:
    try:
        data = bytes.fromhex(text)
    except ValueError:
        data = b""
    if len(data) != size:
        fail(f"{name} must be {2 * size} hex digits")
    return data


def print_scrape(
    info_hash: bytes, bootstrap: list[Any] | None, timeout: float, json_out: bool
) -> None:
    """``magnetar peers --scrape``: estimated seeds and peers of a swarm (BEP 33)."""
    from dht.io.client import ClientError
    from dht.io.itemclient import scrape_swarm

    started = time.monotonic()
    try:
        seeds, peers = run(scrape_swarm(info_hash, bootstrap=bootstrap, timeout=timeout))
    except ClientError as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    except TimeoutError:
        fail(f"the scrape did not finish in {timeout:g} s", EXIT_NOT_FOUND)
    seconds = time.monotonic() - started
    if json_out:
        import json

        record = {
            "info_hash": info_hash.hex(),
            "seeds": round(seeds, 1),
            "peers": round(peers, 1),
            "seconds": round(seconds, 3),
        }
        typer.echo(json.dumps(record))
    else:
        typer.echo(f"{info_hash.hex()}: ~{seeds:.0f} seeds, ~{peers:.0f} peers (BEP 33 estimate)")
    if not seeds and not peers:
        fail(f"no node knows of seeds or peers for {info_hash.hex()}", EXIT_NOT_FOUND)
