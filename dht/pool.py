"""The node pool of a bootstrap router: many verified nodes, closest ones found fast.

A router (``magnetar node --bootstrap-mode``) answers find_node for joining nodes, so it is
worth knowing far more than K nodes per bucket. The pool holds up to ``max_nodes`` nodes
that answered a ping, as a sorted list of ids. The nodes sharing at least ``p`` leading bits
with a target form one contiguous run of that list, so the K closest are found by a binary
search for the longest prefix whose run still holds K nodes, then a sort of that short run:
exact, and O(log n) rather than a scan.

When full, the node verified longest ago makes room; ``stale`` hands out the oldest entries
for re-verification, and ``remove`` drops those that no longer answer.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict

from dht.ids import ID_BITS, id_to_int, int_to_id
from dht.wire import Addr, NodeContact, pack_addr, unpack_addr, unpack_nodes

__all__ = ["NodePool"]


class NodePool:
    def __init__(self, max_nodes: int = 100_000) -> None:
        self.max_nodes = max_nodes
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
            self._compact.move_to_end(key)
            self._compact[key] = compact
            self._verified_at[key] = now
            return
        if len(self._sorted) >= self.max_nodes:
            oldest, _ = self._compact.popitem(last=False)
            del self._verified_at[oldest]
            del self._sorted[bisect_left(self._sorted, oldest)]
        insort(self._sorted, key)
        self._compact[key] = compact
        self._verified_at[key] = now

    def remove(self, node_id: bytes) -> None:
        key = id_to_int(node_id)
        if self._compact.pop(key, None) is not None:
            del self._verified_at[key]
            del self._sorted[bisect_left(self._sorted, key)]

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
