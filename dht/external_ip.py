"""Learning our external address from what other nodes tell us (BEP 42 ``ip`` key).

Every answer may carry the address the responder saw us at. One node could lie, so the
address is decided by a vote: each responder IP has one (most recent) vote, only the last
``max_voters`` voters count, and an address wins once it has ``min_votes`` votes and more
than half of them. A node behind NAT learns its public address this way, which it needs to
pick a BEP 42 node id.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

__all__ = ["ExternalIpVoter"]


class ExternalIpVoter:
    def __init__(self, *, min_votes: int = 5, max_voters: int = 64) -> None:
        self.min_votes = min_votes
        self.max_voters = max_voters
        self._votes: OrderedDict[str, str] = OrderedDict()  # voter ip -> ip it saw us at
        self._counts: Counter[str] = Counter()  # ip -> votes for it (kept with _votes)
        self.external_ip: str | None = None

    def vote(self, voter_ip: str, seen_ip: str) -> str | None:
        """Record one vote. Returns the new external IP when the winner changes."""
        votes = self._votes
        counts = self._counts
        previous = votes.pop(voter_ip, None)
        if previous is not None:
            counts[previous] -= 1
        votes[voter_ip] = seen_ip
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
