"""Answers no bigger than their queries allow: the DHT must not amplify spoofed traffic.

A query's source address can be forged, so whatever we answer lands on whoever the forger
chose. ``fit_answer`` trims an answer's lists until the encoded datagram fits a byte budget
(the core allows ``max(answer_floor, answer_ratio * query size)``): first the second DHT's
``nodes6`` a BEP 32 ``want`` added, then ``values`` (BEP 5 peers), then BEP 51 ``samples``,
and ``nodes`` last, since a querier that gets nothing else still needs them to go on.
Answers to this host (loopback) are not capped: they cannot be aimed at anyone else.

Two answers carry a part that is never trimmed, since it is what was asked for: a BEP 44
``get`` answer's ``v`` (with ``k``/``sig``, at most ~1.15 KB) and BEP 33's two 256-byte
``BFsd``/``BFpe``. Their lists go first, so such an answer is at most ~1.2 KB to a ~90-byte
query: about the ratio the floor already allows a 60-byte ping (768 bytes, ~13x), and a
spoofer cannot make it bigger, since putting an item there needs a token sent to a real IP.
"""

from __future__ import annotations

from typing import Any

from dht.wire import encode_response

__all__ = ["fit_answer"]

# Key, and the size of one entry of a compact string (None: a list of strings).
_TRIM_ORDER: tuple[tuple[bytes, int | None], ...] = (
    (b"nodes6", 38),
    (b"values", None),
    (b"samples", 20),
    (b"nodes", 26),
)


def fit_answer(
    t: bytes, r: dict[bytes, Any], ip: bytes, version: bytes | None, budget: int
) -> bytes:
    """The encoded answer ``r`` (changed in place) with lists trimmed to fit ``budget`` bytes,
    or as small as trimming makes it."""
    data = encode_response(t, r, ip=ip, version=version)
    for key, step in _TRIM_ORDER:
        over = len(data) - budget
        if over <= 0:
            return data
        value = r.get(key)
        if not value:
            continue
        if step is None:
            kept = list(value)
            while kept and over > 0:
                peer = kept.pop()
                over -= len(peer) + len(str(len(peer))) + 1
            if kept:
                r[key] = kept
            else:
                del r[key]
        else:
            drop = -(-over // step)  # whole entries, rounded up
            r[key] = value[: max(0, len(value) - drop * step)]
        data = encode_response(t, r, ip=ip, version=version)
    return data
