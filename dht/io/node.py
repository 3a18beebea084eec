"""``dht.Node``: UDP sockets driving ``DhtProtocol`` cores on asyncio.

No protocol logic lives here: each datagram goes to its socket's core with ``loop.time()``;
what the core wants sent is sent, its single timer is kept armed with ``loop.call_at``, and
its events resolve the futures and queues of whoever called ``ping``, ``find_node``,
``get_peers`` or ``announce``. The timer (``dht.io.timer.CoreTimer``) is only looked at when
the core's ``timer_version`` moved, which keeps the per-datagram cost low on a busy node.

BEP 32 runs IPv4 and IPv6 as two DHTs. A node bound to an IPv4 address is in the first, one
bound to an IPv6 address in the second, and one bound to ``::`` is in both (dual stack): an
IPv6-only socket and an IPv4 socket on the same port, one core each, with the same node id.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Callable, Sequence
from typing import Any

from dht.addresses import as_addrs, format_hostport
from dht.events import (
    BootstrapStalled,
    DhtEvent,
    LookupDone,
    PeersFound,
    QueryAnswered,
    QueryFailed,
)
from dht.io.itemcalls import ItemCalls
from dht.io.peerstream import PeerStream
from dht.io.routers import DEFAULT_ROUTERS, resolve_routers
from dht.io.timer import CoreTimer
from dht.protocol import DhtConfig, DhtProtocol
from dht.wire import Addr, NodeContact, Response

__all__ = ["DhtQueryError", "Node", "PeerStream", "bind_udp", "run"]

log = logging.getLogger("dht.io.node")

# Answers to a burst of our queries (a lookup's alpha, many lookups at once, a crawl) arrive
# together; with the kernel's default ~208 KiB of receive buffer, ~150 small datagrams fill
# it and the rest are dropped before we see them (then wait out timeouts): 200 concurrent
# resolves on loopback took 3 s instead of 0.14 s. The kernel caps the request at
# net.core.rmem_max and only uses the room when datagrams are waiting.
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
# What one answer costs in the receive buffer: the kernel charges a datagram's whole
# allocation (~1-2 KiB for a DHT answer of a few hundred bytes), and reports the buffer at
# twice the size asked for to cover that. Below MIN_PENDING queries out, lookups would crawl.
ANSWER_FOOTPRINT_BYTES = 2048
MIN_PENDING = 64

# Request ids of the IPv6 core start here, so one number names one request in the node.
_V6_REQUEST_IDS = 1 << 40


def family_of(host: str) -> int:
    return 6 if ":" in host else 4


class DhtQueryError(Exception):
    """A query was not answered (timeout), answered with a KRPC error, or not sent (busy)."""

    def __init__(self, addr: Addr, reason: str) -> None:
        super().__init__(f"{format_hostport(addr)}: {reason}")
        self.addr = addr
        self.reason = reason


class _Endpoint(asyncio.DatagramProtocol):
    """One UDP socket and the core that speaks on it."""

    def __init__(self, node: Node, core: DhtProtocol) -> None:
        self.node = node
        self.core = core
        self.transport: asyncio.DatagramTransport | None = None
        self.loop = asyncio.get_running_loop()
        self._timer = CoreTimer(self.loop, self._on_timer)
        self._timer_version = -1
        self._send_soon = False  # a _send_queued is scheduled

    def itself(self) -> _Endpoint:
        """Protocol factory for ``create_datagram_endpoint``."""
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # The hot path of a busy node: answer, and only look at events and the timer when
        # the core says they may have changed. Answers are sent once per burst of datagrams
        # (the event loop reads up to 32 per wake-up) rather than one by one: a receiver that
        # gets them together is woken once, which on loopback costs more than the send.
        core = self.core
        if data[:1] != b"d" and self.node.foreign_datagrams is not None:
            # Not KRPC (a bencoded dict): uTP sharing our port, as libtorrent does.
            self.node.foreign_datagrams(data, (addr[0], addr[1]))
            return
        try:
            core.receive_datagram(data, (addr[0], addr[1]), self.loop.time())
        except Exception:  # the one boundary per datagram: a bug must cost one datagram only
            core.stats.drop("internal error")
            errors = core.stats.dropped["internal error"]
            if errors & (errors - 1) == 0:  # the 1st, 2nd, 4th, 8th, ...: never a log flood
                log.exception("datagram from %s dropped (internal error #%d)", addr[0], errors)
        if core.has_events or core.timer_version != self._timer_version:
            self.flush()
        elif not self._send_soon:
            self._send_soon = True
            self.loop.call_soon(self._send_queued)

    def _send_queued(self) -> None:
        self._send_soon = False
        self._send_out()

    def _send_out(self) -> None:
        out = self.core.datagrams_to_send(0.0)
        if out and self.transport is not None:
            sendto = self.transport.sendto
            for reply, dst in out:
                try:
                    sendto(reply, dst)
                except (OSError, ValueError):
                    self.node.send_errors += 1

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the query will time out; nothing else to do.
        self.node.send_errors += 1

    def flush(self) -> None:
        core = self.core
        if self.transport is None:
            return
        self._send_out()
        event = core.next_event()
        while event is not None:
            self.node._dispatch(event)
            event = core.next_event()
        self._timer_version = core.timer_version
        self._timer.arm(core.get_timer())

    def _on_timer(self, now: float) -> None:
        if self.transport is None:
            return
        self.core.handle_timer(now)
        self.flush()

    def close(self) -> None:
        self._timer.cancel()
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class Node(ItemCalls):
    """A DHT node on one UDP port.

    ``host`` is the address to bind: IPv4 (``0.0.0.0``, ``127.0.0.1``), IPv6 (``::1``), or
    ``::`` for both. ``bootstrap_routers`` defaults to the public routers; pass loopback
    addresses for a private DHT. Use ``async with Node(...) as node`` or ``await
    node.start()`` / ``node.close()``.
    """

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 0,
        *,
        node_id: bytes | None = None,
        config: DhtConfig | None = None,
        bootstrap_routers: Sequence[Addr | str] | None = None,
        rng: random.Random | None = None,
        receive_buffer: int | None = RECEIVE_BUFFER_BYTES,
    ) -> None:
        self.host = host
        self.receive_buffer = receive_buffer
        self.port = port
        self._node_id = node_id
        self._config = config or DhtConfig()
        self.routers: tuple[Addr, ...] = (
            DEFAULT_ROUTERS if bootstrap_routers is None else tuple(as_addrs(bootstrap_routers))
        )
        self._rng = rng or random.SystemRandom()
        self._endpoints: dict[int, _Endpoint] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._requests: dict[int, asyncio.Future[QueryAnswered]] = {}
        self._lookups: dict[int, asyncio.Future[LookupDone]] = {}
        self._streams: dict[int, PeerStream] = {}
        self._listeners: list[Callable[[DhtEvent], None]] = []
        self.send_errors = 0
        # Who takes datagrams that are not KRPC (uTP on the same port); None: the core drops them.
        self.foreign_datagrams: Callable[[bytes, Addr], None] | None = None

    # --- life cycle --------------------------------------------------------------------------

    async def start(self) -> Node:
        loop = asyncio.get_running_loop()
        self._loop = loop
        node_id = self._node_id
        if self._config.address_policy is None:
            from dataclasses import replace

            from dht.addresses import AddressPolicy

            policy = AddressPolicy.for_network(self.host, self.routers)
            self._config = replace(self._config, address_policy=policy)
        if self.host == "::":
            binds = [(6, "::"), (4, "0.0.0.0")]  # dual stack: same port, both families
        else:
            binds = [(family_of(self.host), self.host)]
        port = self.port
        try:
            for family, host in binds:
                sock = bind_udp(family, host, port, self.receive_buffer)
                try:
                    self._fit_pending_to(sock)
                    core = DhtProtocol(
                        node_id,
                        rng=self._rng,
                        now=loop.time(),
                        config=self._config,
                        family=family,
                        first_request_id=_V6_REQUEST_IDS if family == 6 else 1,
                    )
                    endpoint = _Endpoint(self, core)
                    await loop.create_datagram_endpoint(endpoint.itself, sock=sock)
                except BaseException:
                    sock.close()
                    raise
                node_id = core.node_id  # one id for both families (BEP 32)
                self._endpoints[family] = endpoint
                port = port or int(sock.getsockname()[1])
        except BaseException:
            self.close()
            raise
        if 4 in self._endpoints and 6 in self._endpoints:
            self._endpoints[4].core.sibling = self._endpoints[6].core
            self._endpoints[6].core.sibling = self._endpoints[4].core
        return self

    def _fit_pending_to(self, sock: socket.socket) -> None:
        """Keep the queries we have out within what the socket can hold answers for.

        Every pending query may bring one answer, and they can all arrive at once (a burst
        of lookups on a fast network); answers beyond the receive buffer are dropped by the
        kernel and their lookups wait out timeouts. Where net.core.rmem_max keeps the buffer
        small (~208 KiB on a stock Linux), fewer queries out makes lookups queue instead.
        """
        try:
            granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except OSError:
            return
        fits = max(MIN_PENDING, granted // ANSWER_FOOTPRINT_BYTES)
        if fits < self._config.max_pending:
            from dataclasses import replace

            log.debug(
                "%d queries in flight at most: the socket holds %d KiB of answers"
                " (raise net.core.rmem_max for more)",
                fits,
                granted // 1024,
            )
            self._config = replace(self._config, max_pending=fits)

    async def __aenter__(self) -> Node:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for endpoint in self._endpoints.values():
            endpoint.close()
        futures: list[asyncio.Future[Any]] = [*self._requests.values(), *self._lookups.values()]
        for fut in futures:
            if not fut.done():
                fut.cancel()
        for stream in self._streams.values():
            stream._finished(None)
        self._requests.clear()
        self._lookups.clear()
        self._streams.clear()

    @property
    def cores(self) -> list[DhtProtocol]:
        return [e.core for e in self._endpoints.values()]

    @property
    def core(self) -> DhtProtocol:
        """The main core: IPv4 when the node has it, else IPv6."""
        if not self._endpoints:
            raise RuntimeError("node not started")
        return self._endpoints.get(4, next(iter(self._endpoints.values()))).core

    def core_for(self, family: int) -> DhtProtocol | None:
        endpoint = self._endpoints.get(family)
        return endpoint.core if endpoint else None

    @property
    def node_id(self) -> bytes:
        return self.core.node_id

    @property
    def addr(self) -> Addr:
        """The main socket's address."""
        endpoint = self._endpoints.get(4) or self._endpoints.get(6)
        if endpoint is None or endpoint.transport is None:
            raise RuntimeError("node not started")
        sockname = endpoint.transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    @property
    def addrs(self) -> list[Addr]:
        out = []
        for endpoint in self._endpoints.values():
            if endpoint.transport is not None:
                sockname = endpoint.transport.get_extra_info("sockname")
                out.append((str(sockname[0]), int(sockname[1])))
        return out

    def sendto(self, data: bytes, addr: Addr) -> None:
        """Send a datagram that is not KRPC from our socket (for ``foreign_datagrams``)."""
        endpoint = self._endpoints.get(family_of(addr[0]))
        if endpoint is None or endpoint.transport is None:
            raise OSError(f"no open IPv{family_of(addr[0])} socket")
        endpoint.transport.sendto(data, addr)

    def add_listener(self, callback: Callable[[DhtEvent], None]) -> None:
        """Call ``callback`` with every event the cores emit (status lines, crawlers)."""
        self._listeners.append(callback)

    def status(self) -> dict[str, Any]:
        """``DhtProtocol.status()`` of the main core, plus the IPv6 core's as ``ipv6``."""
        assert self._loop is not None
        now = self._loop.time()
        status = self.core.status(now)
        v6 = self.core_for(6)
        if v6 is not None and v6 is not self.core:
            status["ipv6"] = v6.status(now)
        return status

    # --- events --------------------------------------------------------------------------------

    def _dispatch(self, event: DhtEvent) -> None:
        for listener in self._listeners:
            listener(event)
        if isinstance(event, QueryAnswered | QueryFailed):
            fut = self._requests.pop(event.request_id, None)
            if fut is not None and not fut.done():
                if isinstance(event, QueryAnswered):
                    fut.set_result(event)
                else:
                    fut.set_exception(DhtQueryError(event.addr, event.reason))
        elif isinstance(event, PeersFound):
            stream = self._streams.get(event.request_id)
            if stream is not None:
                stream._feed(event.peers)
        elif isinstance(event, LookupDone):
            stream = self._streams.pop(event.request_id, None)
            if stream is not None:
                stream._finished(event)
            lfut = self._lookups.pop(event.request_id, None)
            if lfut is not None and not lfut.done():
                lfut.set_result(event)
        elif isinstance(event, BootstrapStalled):
            log.warning(
                "no bootstrap node answered (%d tried, attempt %d); retrying in %.0f s",
                event.routers,
                event.attempt,
                event.retry_in,
            )

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _endpoint_for(self, addr: Addr) -> _Endpoint:
        endpoint = self._endpoints.get(family_of(addr[0]))
        if endpoint is None:
            raise DhtQueryError(addr, f"no IPv{family_of(addr[0])} socket")
        return endpoint

    def _flush_all(self) -> None:
        for endpoint in self._endpoints.values():
            endpoint.flush()

    def _cancel(self, request_id: int) -> None:
        for core in self.cores:
            core.cancel(request_id)
        self._streams.pop(request_id, None)
        fut = self._lookups.pop(request_id, None)
        if fut is not None and not fut.done():
            fut.cancel()

    # --- public API ----------------------------------------------------------------------------

    async def query(
        self, addr: Addr, method: bytes, args: dict[bytes, Any] | None = None
    ) -> Response:
        """Send one query and return the response; raises ``DhtQueryError``."""
        endpoint = self._endpoint_for(addr)
        rid = endpoint.core.query(addr, method, args or {}, self._now())
        fut: asyncio.Future[QueryAnswered] = asyncio.get_running_loop().create_future()
        self._requests[rid] = fut
        endpoint.flush()
        return (await fut).response

    async def ping(self, addr: Addr) -> QueryAnswered:
        """Ping ``addr``: returns the answer (its id is ``.response.id``, ``.rtt`` seconds)."""
        endpoint = self._endpoint_for(addr)
        rid = endpoint.core.ping(addr, self._now())
        fut: asyncio.Future[QueryAnswered] = asyncio.get_running_loop().create_future()
        self._requests[rid] = fut
        endpoint.flush()
        return await fut

    async def _run_lookups(self, rids: list[int]) -> list[LookupDone]:
        loop = asyncio.get_running_loop()
        futs = []
        for rid in rids:
            fut: asyncio.Future[LookupDone] = loop.create_future()
            self._lookups[rid] = fut
            futs.append(fut)
        self._flush_all()
        try:
            return list(await asyncio.gather(*futs))
        finally:
            for rid, fut in zip(rids, futs, strict=True):
                if not fut.done():
                    self._cancel(rid)

    async def find_node(self, target: bytes) -> list[NodeContact]:
        """Iterative find_node: the K closest nodes to ``target`` that answered (per family)."""
        now = self._now()
        done = await self._run_lookups([c.find_node(target, now) for c in self.cores])
        return [n for d in done for n in d.nodes]

    def get_peers(self, info_hash: bytes, *, seeds: Sequence[Addr] = ()) -> PeerStream:
        """Iterative get_peers: ``async for peer in node.get_peers(h)`` yields peers as found.

        ``seeds`` are extra starting points (e.g. resolved routers), asked first: a one-shot
        client can walk straight to the info-hash without filling its table beforehand.
        """
        now = self._now()
        rids = []
        for family, endpoint in self._endpoints.items():
            family_seeds = [s for s in seeds if family_of(s[0]) == family]
            rids.append(endpoint.core.get_peers(info_hash, now, seeds=family_seeds))
        stream = PeerStream(self, rids)
        for rid in rids:
            self._streams[rid] = stream
        self._flush_all()
        return stream

    async def announce(
        self, info_hash: bytes, port: int, *, implied_port: bool = False, seed: bool = False
    ) -> int:
        """Announce that we have ``info_hash`` on ``port`` (``seed``: all of it, which BEP 33
        scrapes count apart). Returns how many nodes took it."""
        now = self._now()
        rids = [
            c.announce(info_hash, port, now, implied_port=implied_port, seed=seed)
            for c in self.cores
        ]
        return sum(d.announced for d in await self._run_lookups(rids))

    async def bootstrap(self, routers: Sequence[Addr] | None = None) -> int:
        """Join the DHT through ``routers`` (default: this node's). Returns the table size."""
        names = tuple(routers) if routers is not None else self.routers
        rids = []
        for family, endpoint in self._endpoints.items():
            addrs = await resolve_routers(
                names, family=socket.AF_INET6 if family == 6 else socket.AF_INET
            )
            if not addrs and names and family == 4:
                log.warning("none of the %d bootstrap routers resolved", len(names))
            rids.append(endpoint.core.bootstrap(addrs, self._now()))
        await self._run_lookups(rids)
        return sum(len(c.routing) for c in self.cores)

    def restore(self, contacts: Sequence[NodeContact], external_ip: str | None = None) -> int:
        """Feed contacts of a saved state to the cores of their family (see
        ``DhtProtocol.restore``); call before ``bootstrap``. Returns how many were kept."""
        kept = 0
        for family, endpoint in self._endpoints.items():
            mine = [c for c in contacts if family_of(c.addr[0]) == family]
            ip = (
                external_ip
                if external_ip is not None and family_of(external_ip) == family
                else None
            )
            kept += endpoint.core.restore(mine, ip, self._now())
        self._flush_all()
        return kept

    def contacts(self) -> list[NodeContact]:
        """Every node in our routing tables (both families), for saving: with the contacts
        of the restored state while a table is smaller (``DhtProtocol.contacts``)."""
        return [c for core in self.cores for c in core.contacts()]

    def add_node(self, addr: Addr) -> None:
        """Ping ``addr``; if it answers it joins the routing table."""
        endpoint = self._endpoint_for(addr)
        endpoint.core.add_node(addr, self._now())
        endpoint.flush()


def bind_udp(family: int, host: str, port: int, receive_buffer: int | None) -> socket.socket:
    """A non-blocking UDP socket for one DHT family (IPv6 sockets are IPv6 only), asking for
    ``receive_buffer`` bytes of receive buffer (the kernel may cap it)."""
    sock = socket.socket(socket.AF_INET6 if family == 6 else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if receive_buffer:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            except OSError as exc:
                log.debug("cannot set SO_RCVBUF to %d: %s", receive_buffer, exc)
        if family == 6:
            # IPv6 only: the IPv4 DHT has its own socket (and core) on the same port.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def run(main: Any, *, fast: bool = True) -> Any:
    """Run a coroutine on uvloop when it is installed and ``fast``, else on asyncio."""
    if fast:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
