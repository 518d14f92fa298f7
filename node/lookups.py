"""Looking up host names on threads of their own: peers' (``node.peers.gossip``) and the
node a client command talks to (``node.client.transport``).

``getaddrinfo`` blocks, and a name server that does not answer holds it for as long as
the system's resolver keeps retrying, minutes where it is set so. aiohttp's
``ThreadedResolver`` runs it in the event loop's default executor, which the node also
uses elsewhere: to stop the signature verifier, to close the store, for the worker
calls (Automerge changes, signature checks). A few peers whose names hang would fill
it, all of that would queue behind them, and ``asyncio.run`` would wait for them at
exit.

Here the lookups run on ``LOOKUP_THREADS_MAX`` threads of their own: a hanging
lookup can only delay other lookups. The threads are daemon threads nobody joins: a
lookup still hanging holds neither a stop nor the process's exit (a client command that
gave up on a name that hangs ends at once). A lookup still queued
when the session closes (aiohttp cancels its lookups then) is not made.

A name is looked up once at a time: asked for again (the next members round dials it
again) while its lookup hangs, the ask waits for that lookup's answer, so a hanging name
holds one thread, not one a round. At most ``LOOKUP_QUEUED_MAX`` lookups wait for a
thread; one given up leaves the queue, one more is refused as a failed lookup. What
remains: as many distinct names that hang as there are threads hold them all, and other
peers' lookups then wait (or are refused) until one returns.

>>> async def localhost() -> list[str]:
...     resolver = LookupResolver()
...     try:
...         return [found["host"] for found in await resolver.resolve("localhost", 80)]
...     finally:
...         await resolver.close()
>>> "127.0.0.1" in asyncio.run(localhost())
True
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import threading
from collections.abc import Callable, Hashable
from typing import Any, cast

from aiohttp.resolver import ThreadedResolver

#: Threads that look up host names (peers', and the node a client command talks to),
#: each started when a lookup finds none idle. More let more names be looked up at once
#: while some hang (a peer list full of dead names); each hanging one holds a thread (its
#: stack) until the system's resolver gives up, and lookups beyond them wait for one to be
#: free.
LOOKUP_THREADS_MAX = 8

#: Lookups waiting for a thread; one more is refused with the lookup error a name
#: server that does not answer gives (``EAI_AGAIN``), so a dial fails at once instead
#: of queueing without end behind names that hang. A lookup given up (its dial timed
#: out) leaves the queue then, so only lookups still awaited count.
LOOKUP_QUEUED_MAX = 64


class _Job:
    """A lookup to make: the loop and future awaiting it, the call, and how many ask
    for its answer (``LookupThreads.share``)."""

    __slots__ = ("call", "future", "loop", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any],
                 call: Callable[[], Any]) -> None:
        self.loop, self.future, self.call, self.waiting = loop, future, call, 0


class LookupThreads:
    """At most ``threads_max`` daemon threads making blocking lookups for one loop, in
    the order asked, at most ``queued_max`` of them waiting for a thread. ``close`` ends
    each thread once its lookup returned.

    ``share`` makes one lookup at a time of the same thing: a name that hangs holds one
    thread however often it is asked for (each members round dials it again), not one a
    round until all are taken."""

    def __init__(self, threads_max: int = LOOKUP_THREADS_MAX,
                 queued_max: int = LOOKUP_QUEUED_MAX) -> None:
        self._threads_max, self._queued_max = threads_max, queued_max
        #: Guards ``_queued``, ``_waiting`` and ``_closed``, shared with the threads.
        self._ready = threading.Condition()
        self._queued: collections.deque[_Job] = collections.deque()
        #: Threads waiting for a lookup to make.
        self._waiting = 0
        self._closed = False
        #: The threads started, oldest first; each ends once closed and idle.
        self.threads: list[threading.Thread] = []
        #: Lookups of ``share`` in flight by what they look up; the loop's only.
        self._in_flight: dict[Hashable, _Job] = {}

    @property
    def queued(self) -> int:
        """Lookups waiting for a thread."""
        with self._ready:
            return len(self._queued)

    def run(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        """``call()`` on one of the threads; its result or exception in the future.
        Cancelling the future before a thread took the call skips it. Raises
        ``socket.gaierror`` if ``queued_max`` lookups already wait."""
        return self._put(call).future

    async def share(self, key: Hashable, call: Callable[[], Any]) -> Any:
        """The answer of ``call()``, made on one of the threads unless a lookup of the
        same ``key`` is in flight: then its answer. One whose askers all gave up is
        dropped if still queued; if a thread makes it, it stays in flight (a name that
        hangs keeps its one thread) and a later ask waits for its answer."""
        job = self._in_flight.get(key)
        if job is None:
            job = self._in_flight[key] = self._put(call)
            job.future.add_done_callback(lambda _: self._settled(key, job))
        job.waiting += 1
        try:
            return await asyncio.shield(job.future)
        finally:
            job.waiting -= 1
            if not job.waiting and not job.future.done():
                self._drop(job)

    def close(self) -> None:
        """No more lookups; each thread ends after the one it is making, and those
        still queued."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def _put(self, call: Callable[[], Any]) -> _Job:
        loop = asyncio.get_running_loop()
        with self._ready:
            if self._closed:
                raise RuntimeError("lookups closed")
            if len(self._queued) >= self._queued_max:
                raise socket.gaierror(socket.EAI_AGAIN, "too many names waiting to be "
                                                        "looked up")
            job = _Job(loop, loop.create_future(), call)
            self._queued.append(job)
            start = (len(self._queued) > self._waiting
                     and len(self.threads) < self._threads_max)
            self._ready.notify()
        # Cancelled (its dial gave up) while queued: out of the queue at once.
        job.future.add_done_callback(lambda _: self._drop(job))
        if start:
            thread = threading.Thread(target=self._work, daemon=True,
                                      name=f"lookup-{len(self.threads) + 1}")
            thread.start()
            self.threads.append(thread)
        return job

    def _drop(self, job: _Job) -> None:
        """``job`` out of the queue and cancelled, unless a thread took it already."""
        with self._ready:
            try:
                self._queued.remove(job)
            except ValueError:
                return  # taken (or done)
        job.future.cancel()

    def _settled(self, key: Hashable, job: _Job) -> None:
        if self._in_flight.get(key) is job:
            del self._in_flight[key]
        if not job.future.cancelled():
            job.future.exception()  # asked for by nobody perhaps: not "never retrieved"

    def _work(self) -> None:
        while True:
            with self._ready:
                self._waiting += 1
                while not self._queued and not self._closed:
                    self._ready.wait()
                self._waiting -= 1
                if not self._queued:
                    return
                job = self._queued.popleft()
            loop, future, call = job.loop, job.future, job.call
            if not future.cancelled():  # a read only: its dial may have given up
                try:
                    result, error = call(), None
                except Exception as exc:
                    result, error = None, exc
                # A loop closed meanwhile has nobody waiting for the answer.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, future, result, error)
                del result, error
            # Nothing of the job (its loop, future, call) kept alive while waiting, made
            # or skipped.
            del job, loop, future, call


def _settle(future: asyncio.Future[Any], result: Any, error: Exception | None) -> None:
    if future.done():  # cancelled while the lookup ran
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _LookupLoop:
    """What ``ThreadedResolver`` takes for its event loop. The two calls it makes of it
    that block, ``getaddrinfo`` and ``getnameinfo``, run on ``LookupThreads``; any other
    (one a later aiohttp may make) goes to the running loop itself, as it did before
    there were lookup threads, rather than failing every dial."""

    def __init__(self, threads: LookupThreads) -> None:
        self._threads = threads

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio.get_running_loop(), name)

    async def getaddrinfo(self, host: str, port: int | str | None, *, family: int = 0,
                          type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        return await self._threads.share(
            ("getaddrinfo", host, port, family, type, proto, flags),
            lambda: socket.getaddrinfo(host, port, family, type, proto, flags))

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> Any:
        return await self._threads.share(("getnameinfo", sockaddr, flags),
                                         lambda: socket.getnameinfo(sockaddr, flags))


class LookupResolver(ThreadedResolver):
    """aiohttp's ``ThreadedResolver``, its lookups on ``LookupThreads``: it reads the
    answers as ever (the address families asked, link-local IPv6 scopes, its errors,
    which dials word as before), but through an object that stands for its loop in the
    two calls it makes of it."""

    def __init__(self, threads_max: int = LOOKUP_THREADS_MAX,
                 queued_max: int = LOOKUP_QUEUED_MAX) -> None:
        self.lookups = LookupThreads(threads_max, queued_max)
        super().__init__(loop=cast(asyncio.AbstractEventLoop, _LookupLoop(self.lookups)))

    async def close(self) -> None:
        self.lookups.close()
