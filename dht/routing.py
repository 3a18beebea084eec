"""The routing table (BEP 5): K-buckets over the XOR metric, liveness, replacement caches.

Buckets are kept as a list indexed by the length of the prefix a node shares with our own id:
bucket ``i`` holds nodes sharing exactly ``i`` leading bits, and the last bucket holds every
node sharing at least ``len(buckets) - 1`` bits. That last bucket is the one whose range holds
our own id, and it is the only one that splits, which is exactly BEP 5's rule expressed in
prefix lengths. The table never holds more than 161 * (K + replacement size) entries.

Liveness follows BEP 5: a node is *good* if it answered us in the last 15 minutes, or ever
answered and queried us in the last 15 minutes; *bad* after ``max_fails`` unanswered queries in
a row; *questionable* otherwise. The caller (the protocol core) feeds what happened with
``node_seen`` (it answered), ``node_queried`` (it asked us something), ``heard_about`` (someone
mentioned it) and ``node_failed`` (a query to it timed out); the table answers with what is
worth pinging (``questionable``, ``candidates``) and which buckets need a refresh lookup.

Against sybils (``dht.subnets``): the buckets hold at most one node per host (an IPv4
address, an IPv6 /64) and at most ``per_subnet`` nodes of one /24 (IPv6 /48) per bucket; a
replacement cache keeps one entry per host. A host that comes back with a new id replaces its
old entry only once that one has gone bad.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

from dht.ids import ID_BITS, id_to_int
from dht.subnets import packed_keys
from dht.wire import Addr, NodeContact, pack_addr

__all__ = ["GOOD_FOR_S", "AddResult", "Bucket", "NodeEntry", "RoutingTable"]

GOOD_FOR_S = 15 * 60.0  # BEP 5: a node stays good for 15 minutes after it was last heard from
NEVER = float("-inf")


class AddResult(enum.Enum):
    ADDED = "added"
    UPDATED = "updated"
    REPLACED = "replaced"  # took the place of a bad node
    CACHED = "cached"  # bucket full: kept in the replacement cache
    IGNORED = "ignored"  # our own id, or an address clash with a good node


@dataclass(slots=True, eq=False)
class NodeEntry:
    id: bytes
    addr: Addr
    id_int: int
    compact: bytes  # compact node info, ready to go into a ``nodes`` answer
    first_seen: float
    last_reply: float = NEVER  # last time it answered one of our queries
    last_query: float = NEVER  # last time it queried us
    fails: int = 0  # unanswered queries in a row
    rtt: float | None = None
    host: bytes | None = None  # dht.subnets keys of ``addr``
    subnet: bytes | None = None

    def is_good(self, now: float) -> bool:
        if self.fails:
            return False
        if now - self.last_reply < GOOD_FOR_S:
            return True
        return self.last_reply != NEVER and now - self.last_query < GOOD_FOR_S

    @property
    def confirmed(self) -> bool:
        """It has answered us at least once."""
        return self.last_reply != NEVER

    def contact(self) -> NodeContact:
        return NodeContact(self.id, self.addr)


@dataclass(slots=True)
class Bucket:
    last_changed: float
    nodes: list[NodeEntry] = field(default_factory=list)  # least recently seen first
    replacements: list[NodeEntry] = field(default_factory=list)  # most recent last


class RoutingTable:
    def __init__(
        self,
        own_id: bytes,
        *,
        now: float,
        k: int = 8,
        replacement_size: int = 8,
        max_fails: int = 2,
        per_subnet: int = 2,
    ) -> None:
        self.own_id = own_id
        self.per_subnet = per_subnet
        self._own = id_to_int(own_id)
        self.k = k
        self.replacement_size = replacement_size
        self.max_fails = max_fails
        self._buckets: list[Bucket] = [Bucket(now)]
        self._by_id: dict[bytes, NodeEntry] = {}
        self._by_host: dict[bytes, NodeEntry] = {}  # the node in a bucket for each host key
        # Bucket index -> the ``nodes`` answer for every target in that bucket, or None when
        # it depends on the target (see closest_compact); emptied whenever a bucket changes.
        self._answers: dict[int, bytes | None] = {}
        self._next_questionable = 0.0  # no node can be questionable before then

    # --- queries of the table -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._by_id

    def __iter__(self) -> Iterator[NodeEntry]:
        return iter(list(self._by_id.values()))

    def get(self, node_id: bytes) -> NodeEntry | None:
        return self._by_id.get(node_id)

    @property
    def bucket_count(self) -> int:
        return len(self._buckets)

    def buckets(self) -> list[Bucket]:
        return list(self._buckets)

    def _index(self, id_int: int) -> int:
        prefix = ID_BITS - (id_int ^ self._own).bit_length()
        last = len(self._buckets) - 1
        return prefix if prefix < last else last

    def closest(self, target: bytes, n: int = 8) -> list[NodeEntry]:
        """Up to ``n`` live (not bad) nodes closest to ``target``, closest first.

        Only the buckets that can hold the closest nodes are looked at: the target's own
        bucket holds nodes sharing more bits with it than any other; the buckets after it all
        share exactly as many bits as the target shares with us; then the buckets before it,
        in decreasing order of closeness. This runs for every find_node and get_peers a node
        answers, so the common case (no bad nodes among those gathered) is kept short.
        """
        t = int.from_bytes(target, "big")
        buckets = self._buckets
        c = self._index(t)
        found = list(buckets[c].nodes)
        if len(found) < n:
            for b in buckets[c + 1 :]:
                found += b.nodes
            j = c - 1
            while len(found) < n and j >= 0:
                found += buckets[j].nodes
                j -= 1
        found.sort(key=lambda e: e.id_int ^ t)
        max_fails = self.max_fails
        live = [e for e in found if e.fails < max_fails]
        if len(live) < len(found) and len(live) < n:
            # Bad nodes took places: look at the whole table instead.
            live = [e for e in self._by_id.values() if e.fails < max_fails]
            live.sort(key=lambda e: e.id_int ^ t)
        return live[:n]

    def closest_compact(self, target: bytes) -> bytes:
        """The K closest live nodes as a compact ``nodes`` answer.

        Runs for every find_node and get_peers a node answers. Seen from a target in bucket
        ``c``, the table falls into groups each wholly closer than the next: bucket ``c``,
        then the buckets after it together, then buckets ``c - 1``, ``c - 2``... When the K
        closest end at the edge of a group (a full bucket ``c``, or a table of at most K
        live nodes), they are the same set for every target in bucket ``c``: that answer is
        joined once and kept until the table changes. BEP 5 does not ask for the nodes to be
        sorted. Otherwise the answer is cut from ``closest``.
        """
        c = ID_BITS - (int.from_bytes(target, "big") ^ self._own).bit_length()
        if c >= len(self._buckets):
            c = len(self._buckets) - 1  # self._index, inlined: this runs per query
        try:
            answer = self._answers[c]
        except KeyError:
            nodes = self._closest_groups(c)
            answer = None if nodes is None else b"".join([e.compact for e in nodes])
            self._answers[c] = answer
        if answer is None:
            return b"".join([e.compact for e in self.closest(target, self.k)])
        return answer

    def _closest_groups(self, c: int) -> list[NodeEntry] | None:
        """The K closest live nodes for any target in bucket ``c``, or None when which ones
        they are depends on the target (the K-th falls inside a group)."""
        k = self.k
        max_fails = self.max_fails
        buckets = self._buckets
        groups = [buckets[c].nodes, [e for b in buckets[c + 1 :] for e in b.nodes]]
        groups += [buckets[j].nodes for j in range(c - 1, -1, -1)]
        out: list[NodeEntry] = []
        for group in groups:
            live = [e for e in group if e.fails < max_fails]
            if len(out) + len(live) > k:
                return None
            out += live
            if len(out) == k:
                break
        return out

    def counts(self, now: float) -> tuple[int, int, int]:
        """(good, questionable, bad) node counts."""
        good = bad = 0
        for e in self._by_id.values():
            if e.fails >= self.max_fails:
                bad += 1
            elif e.is_good(now):
                good += 1
        return good, len(self._by_id) - good - bad, bad

    def stale_buckets(self, now: float, refresh_s: float = GOOD_FOR_S) -> list[int]:
        """Indices of buckets unchanged for ``refresh_s``: each wants a refresh lookup."""
        return [i for i, b in enumerate(self._buckets) if now - b.last_changed >= refresh_s]

    def questionable(self, now: float) -> list[NodeEntry]:
        """Nodes in the table that are neither good nor bad, least recently heard first.

        Called every maintenance tick, so the scan is skipped until the first node can have
        turned questionable (15 minutes after the node heard from least recently).
        """
        if now < self._next_questionable:
            return []
        max_fails = self.max_fails
        out: list[NodeEntry] = []
        soonest = now + GOOD_FOR_S
        for e in self._by_id.values():
            if e.fails >= max_fails:
                continue
            if e.is_good(now):
                # good until 15 minutes after it last answered, or queried us having answered
                heard = max(e.last_reply, e.last_query) if e.confirmed else e.last_reply
                soonest = min(soonest, heard + GOOD_FOR_S)
            else:
                out.append(e)
        self._next_questionable = now if out else soonest
        out.sort(key=lambda e: max(e.last_reply, e.last_query, e.first_seen))
        return out

    def candidates(self, limit: int) -> list[NodeEntry]:
        """Cached nodes that could fill a bucket with room: worth a ping."""
        # Nearest buckets first: they decide whether lookups for ids near ours converge.
        out: list[NodeEntry] = []
        last = len(self._buckets) - 1
        for i in range(last, -1, -1):
            b = self._buckets[i]
            if not b.replacements:
                continue
            room = len(b.nodes) < self.k or any(e.fails >= self.max_fails for e in b.nodes)
            if room or i == last:
                out.extend(reversed(b.replacements))
            if len(out) >= limit:
                break
        return out[:limit]

    # --- what happened ------------------------------------------------------------------------

    def node_seen(
        self, node_id: bytes, addr: Addr, now: float, rtt: float | None = None
    ) -> AddResult:
        """The node answered one of our queries."""
        if node_id == self.own_id:
            return AddResult.IGNORED
        entry = self._by_id.get(node_id)
        if entry is not None:
            bucket = self._buckets[self._index(entry.id_int)]
            if entry.addr != addr:
                if entry.is_good(now):
                    return AddResult.IGNORED  # keep the address we know works
                moved = self._new_entry(node_id, addr, now)
                if moved is None or not self._admits(bucket, moved, entry):
                    return AddResult.IGNORED
                self._unhost(entry)
                entry.addr = addr
                entry.compact = moved.compact
                entry.host = moved.host
                entry.subnet = moved.subnet
                if entry.host is not None:
                    self._by_host[entry.host] = entry
                self._answers.clear()
            if entry.fails >= self.max_fails:
                self._answers.clear()  # a bad node comes back to life
            entry.last_reply = now
            entry.fails = 0
            if rtt is not None:
                entry.rtt = rtt
            bucket.nodes.remove(entry)
            bucket.nodes.append(entry)
            bucket.last_changed = now
            return AddResult.UPDATED
        entry = self._new_entry(node_id, addr, now)
        if entry is None:
            return AddResult.IGNORED
        entry.last_reply = now
        entry.rtt = rtt
        return self._insert(entry, now)

    def node_queried(self, node_id: bytes, addr: Addr, now: float) -> bool:
        """The node sent us a query. Returns True when it is worth pinging (we might add it)."""
        entry = self._by_id.get(node_id)
        if entry is not None:
            if entry.addr == addr:
                entry.last_query = now
            return False
        return self.heard_about(node_id, addr, now)

    def heard_about(self, node_id: bytes, addr: Addr, now: float) -> bool:
        """Someone mentioned the node. Returns True when it is worth pinging.

        Unconfirmed nodes never enter a bucket directly: they wait in the replacement cache
        until they answer a ping (``node_seen``), so a bucket holds only nodes that answered.
        """
        if node_id == self.own_id or node_id in self._by_id:
            return False
        id_int = id_to_int(node_id)
        index = self._index(id_int)
        bucket = self._buckets[index]
        if len(bucket.nodes) >= self.k and (
            index != len(self._buckets) - 1 or len(self._buckets) >= ID_BITS
        ):
            # A full bucket that cannot split has room only where a node went bad. Most
            # queries on a busy node come from nodes that land here: a plain loop, because a
            # generator in any() costs more than the scan itself.
            max_fails = self.max_fails
            for e in bucket.nodes:
                if e.fails >= max_fails:
                    break
            else:
                return False
        for e in bucket.replacements:
            if e.id == node_id:
                return False
        entry = self._new_entry(node_id, addr, now)
        if entry is None:
            return False
        self._cache(bucket, entry)
        return True

    def node_failed(self, node_id: bytes, now: float) -> None:
        """A query to the node went unanswered."""
        entry = self._by_id.get(node_id)
        if entry is None:
            for b in self._buckets:
                for e in b.replacements:
                    if e.id == node_id:
                        b.replacements.remove(e)
                        return
            return
        entry.fails += 1
        self._next_questionable = 0.0  # a node with a failure is questionable at once
        if entry.fails < self.max_fails:
            return
        bucket = self._buckets[self._index(entry.id_int)]
        self._answers.clear()
        # Evict only when something can take its place: a bad node in a bucket is harmless
        # (closest() skips it), and an empty slot would be no better.
        for i in range(len(bucket.replacements) - 1, -1, -1):
            repl = bucket.replacements[i]
            if repl.confirmed and self._admits(bucket, repl, entry):
                del bucket.replacements[i]
                self._evict(bucket, entry)
                self._place(bucket, repl, now)
                return

    def node_moved(self, node_id: bytes, addr: Addr, now: float) -> None:
        """Another id answered a query sent to ``node_id`` at ``addr``. If that is where we
        know it, it is gone (one address is one node): it leaves the table (or the
        replacement cache) at once and its place is free. If we know it elsewhere, whoever
        told us it was at ``addr`` was wrong, which says nothing against it."""
        entry = self._by_id.get(node_id)
        if entry is None:
            for b in self._buckets:
                for i, e in enumerate(b.replacements):
                    if e.id == node_id and e.addr == addr:
                        del b.replacements[i]
                        return
            return
        if entry.addr != addr:
            return
        bucket = self._buckets[self._index(entry.id_int)]
        self._evict(bucket, entry)
        self._next_questionable = 0.0
        for i in range(len(bucket.replacements) - 1, -1, -1):
            repl = bucket.replacements[i]
            if repl.confirmed and self._admits(bucket, repl):
                del bucket.replacements[i]
                self._place(bucket, repl, now)
                return

    def refreshed(self, index: int, now: float) -> None:
        """A refresh lookup into bucket ``index`` started: it counts as changed now, so it is
        not stale again for another refresh interval (BEP 5)."""
        self._buckets[index].last_changed = now

    def remove(self, node_id: bytes) -> None:
        entry = self._by_id.get(node_id)
        if entry is not None:
            self._evict(self._buckets[self._index(entry.id_int)], entry)

    # --- internals ----------------------------------------------------------------------------

    def _new_entry(self, node_id: bytes, addr: Addr, now: float) -> NodeEntry | None:
        try:
            compact = node_id + pack_addr(addr)
        except (OSError, ValueError, OverflowError):
            return None
        keys = packed_keys(compact[20:-2])
        entry = NodeEntry(node_id, addr, id_to_int(node_id), compact, now)
        if keys is not None:
            entry.host, entry.subnet = keys
        return entry

    def _evict(self, bucket: Bucket, entry: NodeEntry) -> None:
        self._answers.clear()
        bucket.nodes.remove(entry)
        del self._by_id[entry.id]
        self._unhost(entry)

    def _unhost(self, entry: NodeEntry) -> None:
        if entry.host is not None and self._by_host.get(entry.host) is entry:
            del self._by_host[entry.host]

    def _place(self, bucket: Bucket, entry: NodeEntry, now: float) -> None:
        """Put ``entry`` into ``bucket`` (which has room, and admits it)."""
        self._answers.clear()
        bucket.nodes.append(entry)
        self._by_id[entry.id] = entry
        if entry.host is not None:
            self._by_host[entry.host] = entry
        bucket.last_changed = now

    def _admits(self, bucket: Bucket, entry: NodeEntry, leaving: NodeEntry | None = None) -> bool:
        """Whether ``entry`` may join ``bucket`` (``leaving`` about to make room): no other
        node of its host in the table, and room in the bucket's share for its subnet."""
        if entry.host is None:
            return True
        other = self._by_host.get(entry.host)
        if other is not None and other is not leaving and other is not entry:
            return False
        same = 0
        for e in bucket.nodes:
            if e.subnet == entry.subnet and e is not leaving and e is not entry:
                same += 1
        return same < self.per_subnet

    def _host_bad(self, entry: NodeEntry) -> bool:
        """Make way for ``entry`` if a bad node holds its host; False if a live one does."""
        other = self._by_host.get(entry.host) if entry.host is not None else None
        if other is None or other.id == entry.id:
            return True
        if other.fails < self.max_fails:
            return False
        self._evict(self._buckets[self._index(other.id_int)], other)
        return True

    def _cache(self, bucket: Bucket, entry: NodeEntry) -> None:
        host = entry.host
        for i, e in enumerate(bucket.replacements):
            if e.id == entry.id or (host is not None and e.host == host):
                del bucket.replacements[i]  # one entry per host: the newest
                break
        bucket.replacements.append(entry)
        if len(bucket.replacements) > self.replacement_size:
            # Drop the oldest unconfirmed entry first: confirmed ones are worth more.
            for i, e in enumerate(bucket.replacements):
                if not e.confirmed:
                    del bucket.replacements[i]
                    break
            else:
                del bucket.replacements[0]

    def _insert(self, entry: NodeEntry, now: float) -> AddResult:
        while True:
            index = self._index(entry.id_int)
            bucket = self._buckets[index]
            for i, e in enumerate(bucket.replacements):
                if e.id == entry.id:
                    del bucket.replacements[i]
                    break
            if entry.host is not None and not (
                self._host_bad(entry) and self._admits(bucket, entry)
            ):
                return AddResult.IGNORED  # its host or its subnet has its share already
            if len(bucket.nodes) < self.k:
                self._place(bucket, entry, now)
                return AddResult.ADDED
            if index == len(self._buckets) - 1 and len(self._buckets) < ID_BITS:
                self._split(now)
                continue
            for e in bucket.nodes:
                if e.fails >= self.max_fails:
                    self._evict(bucket, e)
                    self._place(bucket, entry, now)
                    return AddResult.REPLACED
            self._cache(bucket, entry)
            return AddResult.CACHED

    def _split(self, now: float) -> None:
        old = self._buckets[-1]
        self._answers.clear()
        new = Bucket(old.last_changed)
        self._buckets.append(new)
        depth = len(self._buckets) - 2  # prefix length the old last bucket now holds exactly
        stay: list[NodeEntry] = []
        for e in old.nodes:
            (stay if ID_BITS - (e.id_int ^ self._own).bit_length() == depth else new.nodes).append(
                e
            )
        old.nodes = stay
        keep: list[NodeEntry] = []
        for e in old.replacements:
            prefix = ID_BITS - (e.id_int ^ self._own).bit_length()
            (keep if prefix == depth else new.replacements).append(e)
        old.replacements = keep

    # --- persistence --------------------------------------------------------------------------

    def contacts(self) -> list[NodeContact]:
        return [e.contact() for e in self._by_id.values()]
