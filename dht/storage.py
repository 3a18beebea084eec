"""The peer store: which peers announced which info-hash (BEP 5 announce_peer / get_peers).

Bounded in every direction so that a flood of announces cannot grow memory without limit: at
most ``max_hashes`` info-hashes (least recently announced evicted first), ``max_peers`` peers
per info-hash (oldest announce evicted first) and ``max_total`` peers in all (whole swarms,
least recently announced first, make room). A peer is keyed by its IP (BEP 33: one entry per
IP and info-hash; a new announce from the same IP updates port and lifetime). Entries expire
``ttl_s`` after their last announce. Peers are kept in compact form, ready for ``values``.
"""

from __future__ import annotations

import random
from collections import OrderedDict

from dht.wire import Addr, pack_addr, unpack_addr

__all__ = ["PEER_TTL_S", "PeerStore"]

PEER_TTL_S = 45 * 60.0  # libtorrent keeps announces for 45 minutes; BEP 5 leaves it open


class PeerStore:
    def __init__(
        self,
        *,
        max_hashes: int = 20_000,
        max_peers: int = 500,
        ttl_s: float = PEER_TTL_S,
        max_total: int = 200_000,
    ) -> None:
        self.max_hashes = max_hashes
        self.max_peers = max_peers
        self.max_total = max_total
        self.ttl_s = ttl_s
        # info_hash -> (ip -> (compact peer, expiry)); both ordered oldest first.
        self._swarms: OrderedDict[bytes, OrderedDict[str, tuple[bytes, float]]] = OrderedDict()
        self.peer_count = 0

    def __len__(self) -> int:
        return len(self._swarms)

    def __contains__(self, info_hash: object) -> bool:
        return info_hash in self._swarms

    def add(self, info_hash: bytes, peer: Addr, now: float) -> None:
        compact = pack_addr(peer)
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            if len(self._swarms) >= self.max_hashes:
                _, evicted = self._swarms.popitem(last=False)
                self.peer_count -= len(evicted)
            swarm = self._swarms[info_hash] = OrderedDict()
        else:
            self._swarms.move_to_end(info_hash)
        ip = peer[0]
        if ip in swarm:
            del swarm[ip]
            self.peer_count -= 1
        elif len(swarm) >= self.max_peers:
            swarm.popitem(last=False)
            self.peer_count -= 1
        swarm[ip] = (compact, now + self.ttl_s)
        self.peer_count += 1
        while self.peer_count > self.max_total and len(self._swarms) > 1:
            oldest = next(iter(self._swarms))
            if oldest == info_hash:
                break
            self.peer_count -= len(self._swarms.pop(oldest))

    def values(self, info_hash: bytes, now: float, limit: int, rng: random.Random) -> list[bytes]:
        """Up to ``limit`` live peers in compact form, a random pick when there are more."""
        swarm = self._swarms.get(info_hash)
        if not swarm:
            return []
        live = [compact for compact, expires in swarm.values() if expires > now]
        if len(live) > limit:
            live = rng.sample(live, limit)
        return live

    def get(self, info_hash: bytes, now: float, limit: int, rng: random.Random) -> list[Addr]:
        return [unpack_addr(c) for c in self.values(info_hash, now, limit, rng)]

    def sample(self, count: int, rng: random.Random) -> list[bytes]:
        """Up to ``count`` random stored info-hashes (BEP 51 sample_infohashes)."""
        if len(self._swarms) <= count:
            return list(self._swarms)
        return rng.sample(list(self._swarms), count)

    def info_hashes(self) -> list[bytes]:
        return list(self._swarms)

    def expire(self, now: float) -> int:
        """Drop expired peers and empty swarms. Returns how many peers were dropped."""
        dropped = 0
        for info_hash in list(self._swarms):
            swarm = self._swarms[info_hash]
            dead = [ip for ip, (_, expires) in swarm.items() if expires <= now]
            for ip in dead:
                del swarm[ip]
            dropped += len(dead)
            if not swarm:
                del self._swarms[info_hash]
        self.peer_count -= dropped
        return dropped
