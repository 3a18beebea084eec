import random

from dht.storage import PeerStore
from dht.tokens import TokenIssuer
from dht.transactions import Transactions


def test_token_bound_to_ip_and_valid_for_one_extra_rotation() -> None:
    tokens = TokenIssuer(random.Random(1), now=0, rotate_s=300)
    tok = tokens.issue("1.2.3.4", 10)
    assert tokens.check(tok, "1.2.3.4", 11)
    assert not tokens.check(tok, "1.2.3.5", 11)
    assert tokens.check(tok, "1.2.3.4", 350)  # previous secret still accepted
    assert not tokens.check(tok, "1.2.3.4", 650)  # two rotations later: gone
    assert not tokens.check(b"", "1.2.3.4", 11)


def test_token_after_long_idle_is_rejected() -> None:
    tokens = TokenIssuer(random.Random(1), now=0, rotate_s=300)
    tok = tokens.issue("1.2.3.4", 10)
    assert not tokens.check(tok, "1.2.3.4", 10_000)


def test_peer_store_bounds_and_lru() -> None:
    store = PeerStore(max_hashes=3, max_peers=2, ttl_s=100)
    rng = random.Random(0)
    for i in range(5):
        store.add(bytes([i]) * 20, ("1.1.1.1", 1000 + i), now=0)
    assert len(store) == 3
    assert bytes([0]) * 20 not in store and bytes([4]) * 20 in store
    h = b"h" * 20
    for i in range(5):
        store.add(h, (f"2.2.2.{i}", 1), now=0)
    assert sorted(store.get(h, 1, 10, rng)) == [("2.2.2.3", 1), ("2.2.2.4", 1)]
    assert store.peer_count == sum(len(store.get(x, 1, 99, rng)) for x in store.info_hashes())


def test_peer_store_one_entry_per_ip_and_expiry() -> None:
    store = PeerStore(ttl_s=100)
    h = b"h" * 20
    store.add(h, ("3.3.3.3", 1), now=0)
    store.add(h, ("3.3.3.3", 2), now=50)
    rng = random.Random(0)
    assert store.get(h, 60, 10, rng) == [("3.3.3.3", 2)]
    assert store.get(h, 151, 10, rng) == []
    assert store.expire(151) == 1
    assert len(store) == 0 and store.peer_count == 0


def test_peer_store_values_are_sampled_up_to_limit() -> None:
    store = PeerStore()
    h = b"h" * 20
    for i in range(100):
        store.add(h, (f"4.4.{i}.1", 1), now=0)
    assert len(store.values(h, 1, 50, random.Random(0))) == 50


def test_transactions_match_only_from_the_queried_address() -> None:
    tx = Transactions(max_pending=10, first_tid=0xFFFF)
    p = tx.open(("1.1.1.1", 1), b"ping", 0, timeout=4)
    assert p is not None
    assert tx.match(p.tid, ("1.1.1.1", 2)) is None
    assert tx.match(p.tid, ("1.1.1.1", 1)) is p
    assert tx.match(p.tid, ("1.1.1.1", 1)) is None


def test_transactions_soft_then_hard_timeout_and_bound() -> None:
    tx = Transactions(max_pending=2, first_tid=1)
    a = tx.open(("1.1.1.1", 1), b"find_node", 0, timeout=4, soft_timeout=1)
    b = tx.open(("1.1.1.1", 2), b"ping", 0, timeout=4)
    assert a is not None and b is not None and a.tid != b.tid
    assert tx.open(("1.1.1.1", 3), b"ping", 0, timeout=4) is None  # full
    assert tx.next_deadline() == 1
    soft, hard = tx.expire(1)
    assert soft == [a] and hard == []
    soft, hard = tx.expire(4)
    assert soft == [] and set(hard) == {a, b}
    assert len(tx) == 0 and tx.next_deadline() is None


def test_transaction_ids_are_unique_while_pending() -> None:
    tx = Transactions(max_pending=70_000, first_tid=5)
    tids = set()
    for i in range(1000):
        p = tx.open(("1.1.1.1", i + 1), b"ping", 0, timeout=4)
        assert p is not None
        tids.add(p.tid)
    assert len(tids) == 1000
