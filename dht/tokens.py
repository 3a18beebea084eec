"""Write tokens for announce_peer (BEP 5).

A get_peers answer carries a token; an announce_peer must bring it back from the same IP, for
the same info-hash (as libtorrent does: a token got for X cannot announce Y, so one get_peers
does not buy announces into every swarm). The token is a keyed hash of the querier's IP
address and the info-hash under a secret that rotates every five
minutes; tokens made with the previous secret are still accepted, so a token lives between
five and ten minutes. Rotation is driven by the ``now`` the caller passes, not by a clock.
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["TOKEN_LEN", "TOKEN_ROTATE_S", "TokenIssuer"]

TOKEN_ROTATE_S = 300.0
TOKEN_LEN = 8


class TokenIssuer:
    def __init__(self, rng: random.Random, now: float, rotate_s: float = TOKEN_ROTATE_S) -> None:
        self._rng = rng
        self._rotate_s = rotate_s
        self._current = rng.randbytes(16)
        self._previous = rng.randbytes(16)
        self._rotate_at = now + rotate_s
        self._keyed = hashlib.sha1(self._current)  # copied per token: skips the name lookup

    def _maybe_rotate(self, now: float) -> None:
        if now >= self._rotate_at:
            # More than two periods idle: both secrets are stale, so replace both.
            stale = now >= self._rotate_at + self._rotate_s
            self._previous = self._rng.randbytes(16) if stale else self._current
            self._current = self._rng.randbytes(16)
            self._keyed = hashlib.sha1(self._current)
            self._rotate_at = now + self._rotate_s

    def issue(self, ip: str, now: float, target: bytes = b"") -> bytes:
        """The token for ``ip`` to announce into ``target`` (the info-hash)."""
        if now >= self._rotate_at:
            self._maybe_rotate(now)
        h = self._keyed.copy()
        h.update(ip.encode())
        h.update(target)
        return h.digest()[:TOKEN_LEN]

    def check(self, token: bytes, ip: str, now: float, target: bytes = b"") -> bool:
        self._maybe_rotate(now)
        if len(token) != TOKEN_LEN:
            return False
        key = ip.encode() + target
        return (
            token == hashlib.sha1(self._current + key).digest()[:TOKEN_LEN]
            or token == hashlib.sha1(self._previous + key).digest()[:TOKEN_LEN]
        )
