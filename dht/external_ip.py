"""Learning our external address from what other nodes tell us (BEP 42 ``ip`` key).

Every answer may carry the address the responder saw us at. One node could lie, so the
address is decided by a vote: each responder network (an IPv4 /24, an IPv6 /64: one
operator's, who could otherwise outvote everyone with many addresses; a private or loopback
address counts alone) has one (most recent) vote, only the last
``max_voters`` voters count, and an address wins once it has ``min_votes`` votes and more
than half of them. A node behind NAT learns its public address this way, which it needs to
pick a BEP 42 node id.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

from dht.subnets import host_key, subnet_key

__all__ = ["ExternalIpVoter"]


class ExternalIpVoter:
    def __init__(self, *, min_votes: int = 5, max_voters: int = 64) -> None:
        self.min_votes = min_votes
        self.max_voters = max_voters
        # voter network -> ip it saw us at
        self._votes: OrderedDict[str | bytes, str] = OrderedDict()
        self._counts: Counter[str] = Counter()  # ip -> votes for it (kept with _votes)
        self.external_ip: str | None = None

    def vote(self, voter_ip: str, seen_ip: str) -> str | None:
        """Record one vote. Returns the new external IP when the winner changes."""
        votes = self._votes
        counts = self._counts
        voter = _voter_key(voter_ip)
        previous = votes.pop(voter, None)
        if previous is not None:
            counts[previous] -= 1
        votes[voter] = seen_ip
        counts[seen_ip] += 1
        if len(votes) > self.max_voters:
            _, dropped = votes.popitem(last=False)
            counts[dropped] -= 1
            if not counts[dropped]:
                del counts[dropped]
        if previous is not None and not counts.get(previous, 1):
            del counts[previous]
        if seen_ip == self.external_ip:
            return None
        # Only the address just voted for can have become the winner.
        count = counts[seen_ip]
        if count >= self.min_votes and count * 2 > len(votes):
            self.external_ip = seen_ip
            return seen_ip
        return None

    def restore(self, ip: str | None) -> None:
        """Start from a previously learned address (from saved state)."""
        self.external_ip = ip

    def tally(self) -> dict[str, int]:
        """Votes per address, as they stand."""
        return dict(self._counts)

    @property
    def voters(self) -> int:
        return len(self._votes)


def _voter_key(ip: str) -> str | bytes:
    """What a vote is counted under: the voter's /24 or /64, or its address when private."""
    key = subnet_key(ip) if ":" not in ip else host_key(ip)
    return ip if key is None else key
