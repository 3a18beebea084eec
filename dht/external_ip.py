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
        self.external_ip: str | None = None

    def vote(self, voter_ip: str, seen_ip: str) -> str | None:
        """Record one vote. Returns the new external IP when the winner changes."""
        if voter_ip in self._votes:
            del self._votes[voter_ip]
        self._votes[voter_ip] = seen_ip
        if len(self._votes) > self.max_voters:
            self._votes.popitem(last=False)
        (winner, count), *_ = Counter(self._votes.values()).most_common(1)
        if count >= self.min_votes and count * 2 > len(self._votes) and winner != self.external_ip:
            self.external_ip = winner
            return winner
        return None

    def restore(self, ip: str | None) -> None:
        """Start from a previously learned address (from saved state)."""
        self.external_ip = ip

    @property
    def voters(self) -> int:
        return len(self._votes)
