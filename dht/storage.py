"""The peer store: which peers announced which info-hash (BEP 5 announce_peer / get_peers).

Bounded in every direction so that a flood of announces cannot grow memory without limit: at
most ``max_hashes`` info-hashes (least recently announced evicted first), ``max_peers`` peers
per info-hash (oldest announce evicted first) and ``max_total`` peers in all (whole swarms,
least recently announced first, make room). A peer is keyed by its IP (BEP 33: one entry per
IP and info-hash; a new announce from the same IP updates port and lifetime). Entries expire
``ttl_s`` after their last announce. Peers are kept in compact form, ready for ``values``.

Per info-hash, one host (``dht.subnets``: an IPv6 /64) holds at most ``per_host`` entries and
one /24 (IPv6 /48) at most ``per_subnet``: announces past that are refused, so a single host
or network cannot push an honest swarm out.

BEP 33: each entry says whether the peer announced as a seed (``seed=1``); ``scrape`` gives
the two bloom filters of a swarm's seeds and other peers, cached per swarm until it changes
(a few hundred SHA-1s per swarm, not per scrape query).

BEP 51 ``sample`` draws from a list of the info-hashes kept beside the ordered dict (swap
with the last and pop to remove), so a sample costs its size, not the store's.
"""

from __future__ import annotations

import random
from collections import OrderedDict

from dht.bloom import ScrapeFilter
from dht.subnets import host_key, subnet_key
from dht.wire import Addr, pack_addr, unpack_addr

__all__ = ["PEER_TTL_S", "PeerStore"]

PEER_TTL_S = 45 * 60.0  # libtorrent keeps announces for 45 minutes; BEP 5 leaves it open
SCRAPE_CACHE = 256  # swarms whose scrape filters are kept ready


class PeerStore:
    def __init__(
        self,
        *,
        max_hashes: int = 20_000,
        max_peers: int = 500,
        ttl_s: float = PEER_TTL_S,
        max_total: int = 200_000,
        per_host: int = 2,
        per_subnet: int = 8,
    ) -> None:
        self.per_host = per_host
        self.per_subnet = per_subnet
        self.max_hashes = max_hashes
        self.max_peers = max_peers
        self.max_total = max_total
        self.ttl_s = ttl_s
        # info_hash -> (ip -> (compact peer, expiry, seed)); both ordered oldest first.
        self._swarms: OrderedDict[bytes, OrderedDict[str, tuple[bytes, float, bool]]] = (
            OrderedDict()
        )
        # info_hash -> (BFsd, BFpe, valid until): dropped when the swarm changes.
        self._scrapes: dict[bytes, tuple[bytes, bytes, float]] = {}
        # info_hash -> host or subnet key -> entries it has in that swarm (keys of different
        # kinds differ in length, so one dict holds both)
        self._shares: dict[bytes, dict[bytes, int]] = {}
        # The info-hashes again, unordered, for sampling: a list and each one's index in it.
        self._hashes: list[bytes] = []
        self._index: dict[bytes, int] = {}
        self.peer_count = 0

    def __len__(self) -> int:
        return len(self._swarms)

    def __contains__(self, info_hash: object) -> bool:
        return info_hash in self._swarms

    def add(self, info_hash: bytes, peer: Addr, now: float, *, seed: bool = False) -> bool:
        """Store an announce; False when its host or subnet has its share of the swarm.
        ``seed``: the peer said it has the whole torrent (BEP 33)."""
        compact = pack_addr(peer)
        ip = peer[0]
        swarm = self._swarms.get(info_hash)
        if swarm is not None and ip not in swarm:
            shares = self._shares.get(info_hash)
            if shares is not None:
                host = host_key(ip)
                if host is not None and (
                    shares.get(host, 0) >= self.per_host
                    or shares.get(subnet_key(ip) or b"", 0) >= self.per_subnet
                ):
                    return False
        if swarm is None:
            if len(self._swarms) >= self.max_hashes:
                self._pop_swarm(next(iter(self._swarms)))
            swarm = self._swarms[info_hash] = OrderedDict()
            self._index[info_hash] = len(self._hashes)
            self._hashes.append(info_hash)
        else:
            self._swarms.move_to_end(info_hash)
        if ip in swarm:
            del swarm[ip]
            self.peer_count -= 1
        else:
            if len(swarm) >= self.max_peers:
                old_ip, _ = swarm.popitem(last=False)
                self.peer_count -= 1
                self._share(info_hash, old_ip, -1)
            self._share(info_hash, ip, 1)
        swarm[ip] = (compact, now + self.ttl_s, seed)
        self.peer_count += 1
        self._scrapes.pop(info_hash, None)
        while self.peer_count > self.max_total and len(self._swarms) > 1:
            oldest = next(iter(self._swarms))
            if oldest == info_hash:
                break
            self._pop_swarm(oldest)
        return True

    def _share(self, info_hash: bytes, ip: str, delta: int) -> None:
        host = host_key(ip)
        if host is None:
            return
        shares = self._shares.setdefault(info_hash, {})
        for key in (host, subnet_key(ip) or b""):
            left = shares.get(key, 0) + delta
            if left > 0:
                shares[key] = left
            else:
                shares.pop(key, None)
        if not shares:
            del self._shares[info_hash]

    def _pop_swarm(self, info_hash: bytes) -> None:
        self.peer_count -= len(self._swarms.pop(info_hash))
        self._shares.pop(info_hash, None)
        self._scrapes.pop(info_hash, None)
        i = self._index.pop(info_hash)
        last = self._hashes.pop()
        if last != info_hash:
            self._hashes[i] = last
            self._index[last] = i

    def values(self, info_hash: bytes, now: float, limit: int, rng: random.Random) -> list[bytes]:
        """Up to ``limit`` live peers in compact form, a random pick when there are more."""
        swarm = self._swarms.get(info_hash)
        if not swarm:
            return []
        live = [compact for compact, expires, _ in swarm.values() if expires > now]
        if len(live) > limit:
            live = rng.sample(live, limit)
        return live

    def get(self, info_hash: bytes, now: float, limit: int, rng: random.Random) -> list[Addr]:
        return [unpack_addr(c) for c in self.values(info_hash, now, limit, rng)]

    def scrape(self, info_hash: bytes, now: float) -> tuple[bytes, bytes] | None:
        """BEP 33 ``BFsd`` and ``BFpe``: bloom filters of the live seeds' and other peers'
        IPs, or None when no live peer is stored for ``info_hash``."""
        cached = self._scrapes.get(info_hash)
        if cached is not None and cached[2] > now:
            return cached[0], cached[1]
        swarm = self._swarms.get(info_hash)
        if not swarm:
            return None
        seeds, peers = ScrapeFilter(), ScrapeFilter()
        until = float("inf")
        for ip, (_, expires, seed) in swarm.items():
            if expires > now:
                (seeds if seed else peers).add(ip)
                until = min(until, expires)
        if until == float("inf"):
            return None
        result = (seeds.to_bytes(), peers.to_bytes())
        if len(self._scrapes) >= SCRAPE_CACHE:
            del self._scrapes[next(iter(self._scrapes))]
        self._scrapes[info_hash] = (*result, until)
        return result

    def sample(self, count: int, rng: random.Random) -> list[bytes]:
        """Up to ``count`` random stored info-hashes (BEP 51 sample_infohashes)."""
        hashes = self._hashes
        if len(hashes) <= count:
            return list(hashes)
        return rng.sample(hashes, count)

    def info_hashes(self) -> list[bytes]:
        return list(self._swarms)

    def expire(self, now: float) -> int:
        """Drop expired peers and empty swarms. Returns how many peers were dropped."""
        dropped = 0
        for info_hash in list(self._swarms):
            swarm = self._swarms[info_hash]
            dead = [ip for ip, (_, expires, _) in swarm.items() if expires <= now]
            for ip in dead:
                del swarm[ip]
                self._share(info_hash, ip, -1)
            dropped += len(dead)
            self.peer_count -= len(dead)
            if not swarm:
                self._pop_swarm(info_hash)
        return dropped
