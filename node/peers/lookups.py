"""Looking up peers' host names on threads of their own.

``getaddrinfo`` blocks, and a name server that does not answer holds it for as long as
the system's resolver keeps retrying, minutes where it is set so. aiohttp's
``ThreadedResolver`` runs it in the event loop's default executor, which the node also
uses elsewhere: to stop the signature verifier, to close the store, for the worker
calls (Automerge changes, signature checks). A few peers whose names hang would fill
it, all of that would queue behind them, and ``asyncio.run`` would wait for them at
exit.

Here the peers' lookups run on ``LOOKUP_THREADS_MAX`` threads of their own: a hanging
lookup can only delay other lookups. The threads are daemon threads nobody joins: a
lookup still hanging holds neither a stop nor the process's exit. A lookup still queued
when the session closes (aiohttp cancels its lookups then) is not made.

>>> async def localhost() -> list[str]:
...     resolver = PeerResolver()
...     try:
...         return [found["host"] for found in await resolver.resolve("localhost", 80)]
...     finally:
...         await resolver.close()
>>> "127.0.0.1" in asyncio.run(localhost())
True
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any, cast

from aiohttp.resolver import ThreadedResolver

#: Threads that look up peers' host names, each started when a lookup finds none idle.
#: More let more names be looked up at once while some hang (a peer list full of dead
#: names); each hanging one holds a thread (its stack) until the system's resolver gives
#: up, and lookups beyond them wait for one to be free.
LOOKUP_THREADS_MAX = 8

#: A lookup to make: the loop and future awaiting it, and the call.
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


class LookupThreads:
    """At most ``threads_max`` daemon threads making blocking lookups for one loop, in
    the order asked. ``close`` ends each thread once its lookup returned."""

    def __init__(self, threads_max: int = LOOKUP_THREADS_MAX) -> None:
        self._threads_max = threads_max
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        #: Released by a thread each time it finished a lookup and waits for the next.
        self._idle = threading.Semaphore(0)
        #: The threads started, oldest first; each ends once closed and idle.
        self.threads: list[threading.Thread] = []
        self._closed = False

    def run(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        """``call()`` on one of the threads; its result or exception in the future.
        Cancelling the future before a thread took the call skips it."""
        if self._closed:
            raise RuntimeError("lookups closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((loop, future, call))
        if not self._idle.acquire(blocking=False) and len(self.threads) < self._threads_max:
            thread = threading.Thread(target=self._work, daemon=True,
                                      name=f"peer-lookup-{len(self.threads) + 1}")
            thread.start()
            self.threads.append(thread)
        return future

    def close(self) -> None:
        """No more lookups; each thread ends after the one it is making."""
        self._closed = True
        for _ in self.threads:
            self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, call = job
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
            self._idle.release()


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
        return await self._threads.run(
            lambda: socket.getaddrinfo(host, port, family, type, proto, flags))

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> Any:
        return await self._threads.run(lambda: socket.getnameinfo(sockaddr, flags))


class PeerResolver(ThreadedResolver):
    """aiohttp's ``ThreadedResolver``, its lookups on ``LookupThreads``: it reads the
    answers as ever (the address families asked, link-local IPv6 scopes, its errors,
    which dials word as before), but through an object that stands for its loop in the
    two calls it makes of it."""

    def __init__(self, threads_max: int = LOOKUP_THREADS_MAX) -> None:
        self.lookups = LookupThreads(threads_max)
        super().__init__(loop=cast(asyncio.AbstractEventLoop, _LookupLoop(self.lookups)))

    async def close(self) -> None:
        self.lookups.close()
