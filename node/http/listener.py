"""A TCP site for aiohttp that holds at most ``connections_max`` connections at once.

aiohttp (through ``loop.create_server``) accepts every connection the kernel offers, so
a flood of idle connections costs file descriptors and memory without bound. This site
runs its own accept loop instead: it takes a connection only when a slot is free, and a
slot frees when a connection closes. Connections beyond the cap wait in the kernel's
accept queue (``backlog``), where they cost us nothing; the client sees a slow connect.

One client address (``address_key``: an IPv4 address, an IPv6 /64) holds at most
``connections_per_address_max`` of them, so that one host's flood leaves room for every
other. At its cap, a new connection of that address takes the place of its oldest one
that has not finished sending its first request's headers (an idle socket), so a flood
of silent sockets does not keep out a client of the same address (every local client
shares 127.0.0.1) that asks at once; with none such, the new one is closed. And a new
connection must send its first byte within ``first_byte_timeout_s`` and its first
request's headers within ``headers_timeout_s``, so idle sockets free their slots soon.
A first packet that no request begins with (a TLS hello or alert on the plain port) is
ended as a head, so that either of aiohttp's parsers answers it 400 at once.

The connections are served by the runner's own aiohttp ``Server`` (the protocol factory),
so aiohttp's keep-alive timeout, graceful shutdown and everything else still apply.

>>> address_key("10.1.2.3"), address_key("2001:db8:1:2:3:4:5:6"), address_key("::ffff:10.0.0.1")
('10.1.2.3', '2001:db8:1:2::/64', '10.0.0.1')
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import ssl
from collections import Counter
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from node.http.tls_accept import accept_tls
from node.http.tls_refusals import TlsRefusals
from node.limits import Limits
from node.tls_trust import ends_links

log = structlog.get_logger(__name__)


class BoundedSite(web.BaseSite):
    """Like ``web.TCPSite``, with a cap on simultaneous connections."""

    __slots__ = ("_accept_tasks", "_by_address", "_ca", "_ca_epoch", "_connections",
                 "_host", "_idle", "_limits", "_open", "_port", "_serving", "_slots",
                 "_socks", "_tls", "_unheard", "tls_refusals")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: Limits, *,
                 ssl_context: ssl.SSLContext | None = None,
                 ca: frozenset[bytes] = frozenset(),
                 bound: list[socket.socket] | None = None) -> None:
        """Serve ``runner`` on ``host:port``: at most ``limits.connections_max`` connections,
        ``limits.accept_backlog`` more waiting in the kernel. ``ca``: the digests of the
        CA blocks ``ssl_context`` verifies client certificates with (``use_tls``).
        ``bound``: sockets that ``bind`` made for ``host:port`` already, which ``start``
        listens on."""
        super().__init__(runner, backlog=limits.accept_backlog)
        self._host = host
        self._port = port
        self._limits = limits
        self._slots = asyncio.Semaphore(limits.connections_max)
        self._open = 0
        self._by_address: Counter[str] = Counter()
        # Per address, its connections whose first headers are incomplete, oldest first.
        self._unheard: dict[str, dict[_Counted, None]] = {}
        self._idle: dict[_Counted, None] = {}  # the same, of every address
        self._socks: list[socket.socket] = list(bound or [])
        self._accept_tasks: list[asyncio.Task[None]] = []
        self._tls = ssl_context
        self._ca = ca  # what the connections open may have been let in by
        #: Changes of the CA client certificates are verified by, so far: a connection
        #: whose handshake began before the last one (``_Counted.ca_epoch``) may have
        #: been let in by a CA no longer trusted.
        self._ca_epoch = 0
        self._connections: dict[_Counted, None] = {}  # every connection open, handshaken
        self._serving: set[asyncio.Task[None]] = set()
        #: Client certificates refused in the handshake: said and counted.
        self.tls_refusals = TlsRefusals()

    def use_tls(self, context: ssl.SSLContext, ca: frozenset[bytes]) -> int | None:
        """Handshake new connections with ``context`` (renewed TLS files), which
        verifies client certificates with the CA blocks ``ca`` (their digests); those
        open keep theirs, unless it trusts a CA no more (``ends_links``): then every
        connection that showed a client certificate ends, and its peer must handshake
        again (which of them the old CA let in is not known: ``node.peers.tls_renewal``
        says why). Connections without one (apps, with their token) stay. Only for a
        site that serves HTTPS already: the scheme stays. The number of connections
        ended; None if none were to end (given the same ``ca`` again, none are)."""
        if self._tls is None:
            return None
        self._tls = context
        if not ends_links(self._ca, ca):
            self._ca = ca
            return None
        self._ca_epoch += 1
        certified = [conn for conn in self._connections if conn.certified()]
        for conn in certified:
            conn.drop()
        # Only once they ended: given ``ca`` again after a cut that failed, it is redone.
        self._ca = ca
        return len(certified)

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        if not self._socks:
            return self._port
        return int(self._socks[0].getsockname()[1])

    @property
    def addresses(self) -> list[str]:
        """The addresses its sockets are bound to (what ``host`` resolved to)."""
        return [str(sock.getsockname()[0]) for sock in self._socks]

    @property
    def connections(self) -> int:
        """Connections open right now."""
        return self._open

    async def start(self) -> None:
        await super().start()
        if not self._socks:
            self._socks = bind(self._host, self._port)
        for sock in self._socks:
            sock.listen(self._backlog)
            sock.setblocking(False)
        self._accept_tasks = [asyncio.create_task(self._accept_loop(sock), name="clawsync-accept")
                              for sock in self._socks]

    async def stop(self) -> None:
        """Stop accepting; open connections are left to the runner's shutdown."""
        for task in self._accept_tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in self._socks:
            sock.close()
        await super().stop()

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._slots.locked():
                await self._trade_for_waiting(loop, sock)
            await self._slots.acquire()
            try:
                conn, peer = await accept(sock)
            except OSError as exc:  # EMFILE and friends: wait, then try again
                self._slots.release()
                log.warning("accept failed", error=str(exc))
                await asyncio.sleep(self._limits.accept_retry_s)
                continue
            except BaseException:
                self._slots.release()
                raise
            host = _host_of(peer)
            address = address_key(host)
            if not self._make_room(address):
                conn.close()  # this address has its share; every other still may connect
                self._slots.release()
                continue
            self._open += 1
            self._by_address[address] += 1
            unheard = self._unheard.setdefault(address, {})
            # Its own task: a TLS handshake may take a while, and the next client must
            # not wait behind it (a silent socket would otherwise block every accept).
            task = asyncio.create_task(self._serve(loop, conn, (address, host),
                                                   (unheard, self._idle)))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)
            # Let that task set the connection up (it joins ``_unheard`` one step later)
            # and a dropped one report its loss, before the next accept: otherwise a
            # burst from the kernel's queue counts connections it cannot yet trade, and
            # closes a client that asked behind a flood of silent ones.
            await asyncio.sleep(0)

    def _make_room(self, address: str) -> bool:
        """True when ``address`` may open one more connection, after dropping its
        oldest idle one if it is at its cap."""
        if self._by_address[address] < self._limits.connections_per_address_max:
            return True
        silent = _first_silent(self._unheard.get(address, {}))
        if silent is None:
            return False
        silent.drop()  # its slot frees when the loss is reported, soon
        return True

    async def _trade_for_waiting(self, loop: asyncio.AbstractEventLoop,
                                 sock: socket.socket) -> None:
        """Every slot is taken: once a client waits in the kernel's queue, drop the
        oldest connection of any address that has not sent its first headers, so that
        idle sockets from many addresses do not keep out one that asks."""
        while self._slots.locked():
            await _readable(loop, sock)
            silent = _first_silent(self._idle)
            if not self._slots.locked() or silent is None:
                return  # a slot freed by itself, or there is nothing idle to trade
            silent.drop()
            return  # its slot frees a moment later; the caller waits for it

    async def _serve(self, loop: asyncio.AbstractEventLoop, conn: socket.socket,
                     client: tuple[str, str], idle: tuple[dict[_Counted, None], ...]) -> None:
        """Serve ``conn`` of ``client`` (its ``address_key`` and host)."""
        address = client[0]
        release = _once(lambda: self._release(address))
        server = self._runner.server
        if server is None:  # the runner is being cleaned up
            conn.close()
            release()
            return
        epoch = self._ca_epoch
        connections = self._connections
        try:
            counted = _Counted(server(), release, self._limits, idle, connections, epoch)
            if self._tls is None:
                await loop.connect_accepted_socket(lambda: counted, conn)
            else:  # a refused handshake is told to the client (its alert sent)
                await accept_tls(loop, conn, counted, self._tls,
                                 self._limits.tls_handshake_timeout_s)
        except Exception as error:  # refused handshake, timeout, reset: free the slot
            conn.close()
            release()  # first: the slot is freed whatever saying the refusal does
            if isinstance(error, ssl.SSLCertVerificationError):  # its certificate's
                self.tls_refusals.refused(*client, error, loop.time())
            return
        if counted.ca_epoch != self._ca_epoch and counted.certified():
            counted.drop()  # handshaken with a CA that changed meanwhile: as those open

    def _release(self, address: str) -> None:
        self._open -= 1
        self._by_address[address] -= 1
        if not self._by_address[address]:
            del self._by_address[address]
            self._unheard.pop(address, None)
        self._slots.release()


def address_key(host: str) -> str:
    """What per-address limits count by: the IPv4 address, or the /64 network of an IPv6
    one (a single host commonly holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # a scope id (fe80::1%eth0)
    except ValueError:
        return host  # a Unix socket path or something odd: counted as itself
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Return once ``sock`` is readable (for a listening socket: a client waits)."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


def _first_silent(idle: dict[_Counted, None]) -> _Counted | None:
    """The oldest of ``idle`` that has truly sent nothing yet."""
    return next((conn for conn in idle if not conn.has_sent()), None)


async def accept(sock: socket.socket) -> tuple[socket.socket, Any]:
    """``loop.sock_accept`` without its flaw in Python 3.11: cancelled just as a client
    arrives (a node stopping), it takes the connection anyway, then fails to hand it over
    ("InvalidStateError" logged by the loop) and drops it. Here a connection is taken
    only by the task that receives it; a cancelled wait leaves it in the kernel's queue.
    """
    loop = asyncio.get_running_loop()
    while True:
        try:
            conn, peer = sock.accept()
        except (BlockingIOError, InterruptedError):
            readable = loop.create_future()
            loop.add_reader(sock.fileno(), _wake, readable)
            try:
                await readable
            finally:
                loop.remove_reader(sock.fileno())
            continue
        conn.setblocking(False)
        return conn, peer


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _host_of(peer: Any) -> str:
    """The host of a peer address as ``sock_accept`` gives it (a tuple for IP)."""
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


def _once(call: Callable[[], None]) -> Callable[[], None]:
    """``call``, made safe to invoke twice (a failed setup may also report a loss)."""
    done = False

    def once() -> None:
        nonlocal done
        if not done:
            done = True
            call()

    return once


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address ``host`` resolves to (``localhost`` may be both
    127.0.0.1 and ::1), all on one port, even when ``port`` is 0; not listening yet, so
    that a node checks its address before it makes anything (connections are refused
    until ``BoundedSite.start``, rather than left waiting). ``OSError`` (a
    ``socket.gaierror`` for a name that does not resolve) if one cannot be bound: close
    them with ``close_all`` when they are not served."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    try:
        # getaddrinfo repeats an address once per protocol; bind each one once.
        for family, address in dict.fromkeys((info[0], info[4]) for info in infos):
            if socks:  # the port the first socket got, when 0 was asked for
                address = (address[0], socks[0].getsockname()[1], *address[2:])
            sock = socket.socket(family, socket.SOCK_STREAM)
            socks.append(sock)
            # As socket.create_server: a restarted node takes its port back at once,
            # and an IPv6 socket serves IPv6 only (the IPv4 address has its own).
            # node.ports.listen_error (the demo's --port check) binds as this does.
            if os.name == "posix":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


#: The end of a request's headers.
_HEADERS_END = b"\r\n\r\n"
#: The bytes a request can begin with: a method's (an RFC 9110 token), or the CR LF that
#: may come before a request line. Not TLS's (a record's type: 0x16 a handshake, 0x15 an
#: alert; 0x80 an SSLv2-compatible hello) nor any other binary protocol's.
_REQUEST_STARTS = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n")


class _Counted(asyncio.Protocol):
    """Passes everything to aiohttp's protocol, ending the head of a first packet that
    no request begins so (``_REQUEST_STARTS``); tells the site once the connection ends;
    closes a connection whose first byte or first request's headers are late."""

    def __init__(self, inner: asyncio.Protocol, on_lost: Callable[[], None],
                 limits: Limits, idle: tuple[dict[_Counted, None], ...],
                 connections: dict[_Counted, None], ca_epoch: int) -> None:
        self._inner = inner
        self._connections = connections  # the site's: this one is in it while open
        self.ca_epoch = ca_epoch  # the site's when its handshake began
        # Idle connections (first headers incomplete) of its address and of all, oldest
        # first: this one is in them while it is idle.
        self._idle = idle
        self._on_lost = on_lost
        self._limits = limits
        self._transport: asyncio.BaseTransport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen while the first headers are incomplete
        self._started_s = 0.0
        self._heard = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._started_s = asyncio.get_running_loop().time()
        self._inner.connection_made(transport)
        self._connections[self] = None
        for idle in self._idle:
            idle[self] = None
        self._arm(self._limits.first_byte_timeout_s)

    def data_received(self, data: bytes) -> None:
        if self._deadline is not None and data:
            if not self._heard and data[0] not in _REQUEST_STARTS:
                # TLS on the plain port, or another protocol. Ended as a head, it is
                # refused 400 at once by either parser; the pure-Python one would wait
                # for the end of a line it need not send, until headers_timeout_s.
                data += _HEADERS_END
            self._watch_headers(data)
        self._inner.data_received(data)

    def _watch_headers(self, data: bytes) -> None:
        if not self._heard:  # the first bytes: from now on the headers are timed
            self._heard = True
            now_s = asyncio.get_running_loop().time()
            self._arm(self._started_s + self._limits.headers_timeout_s - now_s)
        seen = self._tail + data
        if _HEADERS_END in seen:
            self._disarm()  # aiohttp's keep-alive timer takes over from here
            self._leave_idle()
        else:
            self._tail = seen[-len(_HEADERS_END):]

    def _arm(self, after_s: float) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(max(after_s, 0.0), self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def has_sent(self) -> bool:
        """True when the client's first bytes wait unread in the kernel: an accept burst
        can run ahead of reading them, and such a client has asked, it is not idle."""
        sock = self._transport.get_extra_info("socket") if self._transport else None
        if sock is None:
            return False
        with contextlib.suppress(OSError), \
                socket.fromfd(sock.fileno(), sock.family, sock.type) as peek:
            return bool(peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        return False

    def certified(self) -> bool:
        """Whether the client showed a certificate the site's CA verified."""
        return self._transport is not None \
            and bool(self._transport.get_extra_info("peercert"))

    def drop(self) -> None:
        """Close the connection now, unanswered."""
        self._disarm()
        self._leave_idle()
        self._expire()

    def _leave_idle(self) -> None:
        for idle in self._idle:
            idle.pop(self, None)

    def _expire(self) -> None:
        self._deadline = None
        if isinstance(self._transport, asyncio.Transport):
            self._transport.abort()  # nothing was asked: nothing to answer
        elif self._transport is not None:
            self._transport.close()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._leave_idle()
        self._connections.pop(self, None)
        try:
            self._inner.connection_lost(exc)
        finally:
            self._on_lost()
