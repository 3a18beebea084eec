"""Single queries a user of the core sends (``DhtProtocol.query`` / ``ping``) and their events.

A ``UserRequest`` owns one outstanding query: its answer becomes ``QueryAnswered`` and its
error, broken answer or timeout ``QueryFailed``, both carrying the request id the command
returned, so a driver can hand each outcome to whoever asked.
"""

from __future__ import annotations

from collections import deque

from dht.events import DhtEvent, QueryAnswered, QueryFailed
from dht.transactions import Pending, RequestOwner
from dht.wire import Response

__all__ = ["UserRequest"]


class UserRequest(RequestOwner):
    __slots__ = ("events", "request_id")

    def __init__(self, request_id: int, events: deque[DhtEvent]) -> None:
        self.request_id = request_id
        self.events = events

    def on_reply(self, p: Pending, msg: Response, trusted: bool, now: float) -> None:
        self.events.append(QueryAnswered(self.request_id, p.addr, msg, now - p.sent_at))

    def on_failure(self, p: Pending, reason: str, now: float) -> None:
        self.events.append(QueryFailed(self.request_id, p.addr, reason))
