"""The node pool of a bootstrap router: many verified nodes, closest ones found fast.

A router (``magnetar node --bootstrap-mode``) answers find_node for joining nodes, so it is
worth knowing far more than K nodes per bucket. The pool holds up to ``max_nodes`` nodes
that answered a ping, as a sorted list of ids. The nodes sharing at least ``p`` leading bits
with a target form one contiguous run of that list, so the K closest are found next to the
target's place in it, or by bisection down the trie those runs form when an attacker crowds
a target with ids that tie: exact, and O(log n) rather than a scan.

When full, the node verified longest ago makes room; ``stale`` hands out the oldest entries
for re-verification, and ``remove`` drops those that no longer answer.

One host (``dht.subnets``: an IPv4 address, an IPv6 /64) has one node in the pool, the one it
verified last, and one /24 (IPv6 /48) at most ``per_subnet``: no host or network can fill the
pool with its ids, or crowd the ids near a target so that a lookup in the pool gets slow.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict

from dht.ids import ID_BITS, id_to_int, int_to_id
from dht.subnets import packed_keys
from dht.wire import Addr, NodeContact, pack_addr, unpack_addr, unpack_nodes

__all__ = ["NodePool"]

# Ids tying with the n-th closest that closest_compact walks before it bisects instead.
_MAX_TIES = 32


class NodePool:
    def __init__(self, max_nodes: int = 100_000, per_subnet: int = 8) -> None:
        self.max_nodes = max_nodes
        self.per_subnet = per_subnet
        self._hosts: dict[bytes, int] = {}  # host -> its id in the pool
        self._subnets: dict[bytes, int] = {}  # subnet -> nodes in the pool
        self._sorted: list[int] = []  # ids as ints, ascending
        # id -> compact node info; ordered by last verification, oldest first
        self._compact: OrderedDict[int, bytes] = OrderedDict()
        self._verified_at: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._sorted)

    def __contains__(self, node_id: object) -> bool:
        return isinstance(node_id, bytes) and id_to_int(node_id) in self._compact

    def add(self, node_id: bytes, addr: Addr, now: float) -> None:
        """A node answered: add it, or refresh its verification time."""
        key = id_to_int(node_id)
        try:
            compact = node_id + pack_addr(addr)
        except (OSError, ValueError, OverflowError):
            return
        if key in self._compact:
            if self._compact[key] == compact:
                self._compact.move_to_end(key)
                self._verified_at[key] = now
                return
            self._drop(key)  # a known id at a new address: placed again by the limits
        keys = packed_keys(compact[20:-2])  # kept nowhere: the compact form holds them
        if keys is not None:
            host, subnet = keys
            previous = self._hosts.get(host)
            if previous is not None:  # the host has a new id: it replaces the old one
                self._drop(previous)
            if self._subnets.get(subnet, 0) >= self.per_subnet:
                return
        if len(self._sorted) >= self.max_nodes:
            self._drop(next(iter(self._compact)))
        insort(self._sorted, key)
        self._compact[key] = compact
        self._verified_at[key] = now
        if keys is not None:
            self._hosts[host] = key
            self._subnets[subnet] = self._subnets.get(subnet, 0) + 1

    def _drop(self, key: int) -> None:
        compact = self._compact.pop(key)
        del self._verified_at[key]
        del self._sorted[bisect_left(self._sorted, key)]
        keys = packed_keys(compact[20:-2])
        if keys is not None:
            host, subnet = keys
            if self._hosts.get(host) == key:
                del self._hosts[host]
            left = self._subnets[subnet] - 1
            if left:
                self._subnets[subnet] = left
            else:
                del self._subnets[subnet]

    def remove(self, node_id: bytes, addr: Addr | None = None) -> None:
        """Forget ``node_id`` (only if it is at ``addr``, when given)."""
        key = id_to_int(node_id)
        compact = self._compact.get(key)
        if compact is None:
            return
        if addr is not None:
            try:
                if compact[20:] != pack_addr(addr):
                    return
            except (OSError, ValueError, OverflowError):
                return
        self._drop(key)

    def closest_compact(self, target: bytes, n: int = 8) -> bytes:
        """The compact node info of the ``n`` nodes closest to ``target``, closest first.

        Walking outwards from the target's place in the sorted ids, the length of the prefix
        each id shares with the target never grows, so taking, side by side, whichever
        neighbour shares more gathers the longest-prefix run; the ids that tie with the
        last one taken belong to it too, and the n closest are in that run. Ties are few
        among random ids; when more than ``_MAX_TIES`` show up (ids minted to crowd a
        target), ``_closest_trie`` finds the same n without walking them.
        """
        ids = self._sorted
        size = len(ids)
        if not size:
            return b""
        t = int.from_bytes(target, "big")
        right = bisect_left(ids, t)
        left = right - 1
        picked: list[int] = []
        # shared prefix length is ID_BITS - (a ^ t).bit_length(): compare bit lengths instead
        lb = (ids[left] ^ t).bit_length() if left >= 0 else ID_BITS + 1
        rb = (ids[right] ^ t).bit_length() if right < size else ID_BITS + 1
        while len(picked) < n and (left >= 0 or right < size):
            if lb <= rb:
                picked.append(ids[left])
                last = lb
                left -= 1
                lb = (ids[left] ^ t).bit_length() if left >= 0 else ID_BITS + 1
            else:
                picked.append(ids[right])
                last = rb
                right += 1
                rb = (ids[right] ^ t).bit_length() if right < size else ID_BITS + 1
        if len(picked) == n:
            limit = n + _MAX_TIES
            while left >= 0 and (ids[left] ^ t).bit_length() <= last and len(picked) < limit:
                picked.append(ids[left])
                left -= 1
            while right < size and (ids[right] ^ t).bit_length() <= last and len(picked) < limit:
                picked.append(ids[right])
                right += 1
            if len(picked) >= limit:
                picked = self._closest_trie(t, n)
        picked.sort(key=lambda i: i ^ t)
        compact = self._compact
        return b"".join([compact[i] for i in picked[:n]])

    def _closest_trie(self, t: int, n: int) -> list[int]:
        """The ``n`` ids closest to ``t``, closest first, whatever the ties.

        The sorted ids form a binary trie: a run of ids that share a prefix splits, at the
        highest bit where its first and last ids differ, into two runs (found by bisection),
        and every id on the target's side of that bit is closer than every id on the other.
        So: go to the target's side while it holds at least the ids still needed, else take
        all of it and go on in the other side. Exact, a bisection per split, and never a walk
        over ids that tie with each other, however many an attacker mints.
        """
        ids = self._sorted
        picked: list[int] = []
        lo, hi, need = 0, len(ids), n
        while need > 0 and hi > lo:
            if hi - lo <= need:
                picked += sorted(ids[lo:hi], key=lambda i: i ^ t)
                break
            last = ids[hi - 1]
            bit = (ids[lo] ^ last).bit_length() - 1
            mid = bisect_left(ids, last >> bit << bit, lo, hi)
            if t >> bit & 1:
                near_lo, near_hi, far_lo, far_hi = mid, hi, lo, mid
            else:
                near_lo, near_hi, far_lo, far_hi = lo, mid, mid, hi
            if near_hi - near_lo >= need:
                lo, hi = near_lo, near_hi
                continue
            picked += sorted(ids[near_lo:near_hi], key=lambda i: i ^ t)
            need -= near_hi - near_lo
            lo, hi = far_lo, far_hi
        return picked

    def closest(self, target: bytes, n: int = 8) -> list[NodeContact]:
        data = self.closest_compact(target, n)
        if not data:
            return []
        first = self._compact[id_to_int(data[:20])]
        return list(unpack_nodes(data, v6=len(first) == 38))

    def stale(self, count: int, older_than: float) -> list[NodeContact]:
        """Up to ``count`` of the nodes verified longest ago, if before ``older_than``."""
        out: list[NodeContact] = []
        for key, compact in self._compact.items():
            if len(out) >= count or self._verified_at[key] >= older_than:
                break
            out.append(NodeContact(int_to_id(key), unpack_addr(compact[20:])))
        return out
