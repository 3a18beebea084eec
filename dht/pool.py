"""The node pool of a bootstrap router: many verified nodes, closest ones found fast.

A router (``magnetar node --bootstrap-mode``) answers find_node for joining nodes, so it is
worth knowing far more than K nodes per bucket. The pool holds up to ``max_nodes`` nodes
that answered a ping, as a sorted list of ids. The nodes sharing at least ``p`` leading bits
with a target form one contiguous run of that list, so the K closest are found by a binary
search for the longest prefix whose run still holds K nodes, then a sort of that short run:
exact, and O(log n) rather than a scan.

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
from dht.subnets import host_key, subnet_key
from dht.wire import Addr, NodeContact, pack_addr, unpack_addr, unpack_nodes

__all__ = ["NodePool"]


class NodePool:
    def __init__(self, max_nodes: int = 100_000, per_subnet: int = 8) -> None:
        self.max_nodes = max_nodes
        self.per_subnet = per_subnet
        self._keys: dict[int, tuple[bytes | None, bytes | None]] = {}  # id -> (host, subnet)
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
        host, subnet = host_key(addr[0]), subnet_key(addr[0])
        if host is not None:
            previous = self._hosts.get(host)
            if previous is not None:  # the host has a new id: it replaces the old one
                self._drop(previous)
            if subnet is not None and self._subnets.get(subnet, 0) >= self.per_subnet:
                return
        if len(self._sorted) >= self.max_nodes:
            self._drop(next(iter(self._compact)))
        insort(self._sorted, key)
        self._compact[key] = compact
        self._verified_at[key] = now
        self._keys[key] = (host, subnet)
        if host is not None:
            self._hosts[host] = key
            if subnet is not None:
                self._subnets[subnet] = self._subnets.get(subnet, 0) + 1

    def _drop(self, key: int) -> None:
        del self._compact[key]
        del self._verified_at[key]
        del self._sorted[bisect_left(self._sorted, key)]
        host, subnet = self._keys.pop(key)
        if host is not None and self._hosts.get(host) == key:
            del self._hosts[host]
        if subnet is not None:
            left = self._subnets[subnet] - 1
            if left:
                self._subnets[subnet] = left
            else:
                del self._subnets[subnet]

    def remove(self, node_id: bytes) -> None:
        key = id_to_int(node_id)
        if key in self._compact:
            self._drop(key)

    def closest_compact(self, target: bytes, n: int = 8) -> bytes:
        """The compact node info of the ``n`` nodes closest to ``target``, closest first.

        Walking outwards from the target's place in the sorted ids, the length of the prefix
        each id shares with the target never grows, so taking, side by side, whichever
        neighbour shares more gathers the longest-prefix run; the ids that tie with the
        last one taken belong to it too. The n closest are in that run.
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
            while left >= 0 and (ids[left] ^ t).bit_length() <= last:
                picked.append(ids[left])
                left -= 1
            while right < size and (ids[right] ^ t).bit_length() <= last:
                picked.append(ids[right])
                right += 1
        picked.sort(key=lambda i: i ^ t)
        compact = self._compact
        return b"".join([compact[i] for i in picked[:n]])

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
