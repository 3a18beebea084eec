"""Queries and their owners: the dispatcher tells each owner what became of its query.

The core never asks what kind of owner it holds (``dht.transactions.RequestOwner``): these
tests hand it one of their own and watch which of its methods are called.
"""

from __future__ import annotations

import random

import bencode2

from dht.config import DhtConfig
from dht.events import QueryAnswered, QueryFailed
from dht.protocol import DhtProtocol
from dht.transactions import Pending, RequestOwner
from dht.wire import Response, decode

YOU = ("9.0.0.2", 7000)


class Recorder(RequestOwner):
    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def on_reply(self, p: Pending, msg: Response, trusted: bool, now: float) -> None:
        self.calls.append(("reply", (msg.id, trusted, now)))

    def on_soft_timeout(self, p: Pending, now: float) -> None:
        self.calls.append(("soft", now))

    def on_failure(self, p: Pending, reason: str, now: float) -> None:
        self.calls.append(("failure", reason))


def send(core: DhtProtocol, owner: RequestOwner, now: float, *, soft: bool = False) -> bytes:
    p = core.send_query(YOU, b"ping", {}, now, owner, None, soft=soft)
    assert p is not None
    ((data, _),) = core.datagrams_to_send(now)
    return decode(data).t


def reply(t: bytes, node_id: bytes) -> bytes:
    return bencode2.bencode({b"r": {b"id": node_id}, b"t": t, b"y": b"r"})


def make_core() -> DhtProtocol:
    return DhtProtocol(b"s" * 20, rng=random.Random(1), now=0.0)


def test_the_owner_hears_of_the_answer() -> None:
    core, owner = make_core(), Recorder()
    t = send(core, owner, 1.0)
    core.receive_datagram(
        bencode2.bencode({b"r": {b"id": b"y" * 20}, b"t": t, b"y": b"r"}), YOU, 1.5
    )
    assert owner.calls == [("reply", (b"y" * 20, True, 1.5))]
    assert core.next_event() is None  # only the owner decides what to report


def test_the_owner_hears_of_a_slow_query_then_of_its_timeout() -> None:
    core, owner = make_core(), Recorder()
    send(core, owner, 1.0, soft=True)
    cfg = core.config
    core.handle_timer(1.0 + cfg.soft_timeout_s)
    core.handle_timer(1.0 + cfg.query_timeout_s)
    # RequestOwner.on_timeout is a failure with reason "timeout" unless overridden.
    assert owner.calls == [("soft", 1.0 + cfg.soft_timeout_s), ("failure", "timeout")]


def test_the_owner_hears_of_an_error_or_a_broken_answer() -> None:
    core, owner = make_core(), Recorder()
    t = send(core, owner, 1.0)
    error = bencode2.bencode({b"e": [202, b"busy"], b"t": t, b"y": b"e"})
    core.receive_datagram(error, YOU, 1.1)
    t = send(core, owner, 2.0)
    core.receive_datagram(
        bencode2.bencode({b"r": {b"id": b"short"}, b"t": t, b"y": b"r"}), YOU, 2.1
    )
    assert owner.calls[0] == ("failure", "error 202: busy")
    assert owner.calls[1][0] == "failure" and str(owner.calls[1][1]).startswith("bad response")


def test_user_queries_become_events() -> None:
    core = make_core()
    rid = core.query(YOU, b"find_node", {b"target": b"t" * 20}, 1.0)
    ((data, _),) = core.datagrams_to_send(1.0)
    t = decode(data).t
    core.receive_datagram(
        bencode2.bencode({b"r": {b"id": b"y" * 20}, b"t": t, b"y": b"r"}), YOU, 1.25
    )
    ev = core.next_event()
    assert isinstance(ev, QueryAnswered) and ev.request_id == rid and ev.rtt == 0.25
    rid = core.ping(YOU, 2.0)
    core.datagrams_to_send(2.0)
    core.handle_timer(2.0 + core.config.query_timeout_s)
    assert core.next_event() == QueryFailed(rid, YOU, "timeout")


def test_a_query_without_room_fails_busy() -> None:
    core = DhtProtocol(b"s" * 20, rng=random.Random(1), now=0.0, config=DhtConfig(max_pending=0))
    rid = core.ping(YOU, 1.0)
    assert core.next_event() == QueryFailed(rid, YOU, "busy")
    assert core.datagrams_to_send(1.0) == []
