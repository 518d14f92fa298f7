"""``Ahead``: one peer link's messages parsed and verified ahead of its loop.

Every call into a link's ``PeerSync`` machine runs on the store's writer thread, one at
a time (``node.peers.driver``). What needs no store, parsing a message and verifying its
signatures (``PeerSync.prepare``), runs on small pools of its own, ahead of the writer:
each link's messages go through a pipeline of three stages. On a busy link the writer
stores batch k while k+1 has its signatures checked in a worker process
(``node.peers.verifying``), where the GIL does not hold them back, and a thread parses
k+2, instead of one prepare per message running parse and checks in series.

The node owns the pools (sized by ``PARSE_THREADS`` and ``VERIFY_THREADS``) and the
verifier, shuts them when it stops, and hands them to each link's ``Ahead``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from node.peers.link_errors import LinkClosed
from node.peers.transport import Link
from node.peers.verifying import Verifier
from sync.peer.machine import Parsed, PeerSync, Prepared
from sync.peer.messages import Events

T = TypeVar("T")

#: Messages a link reads ahead of the writer (``Ahead``): received and not yet taken by
#: its loop, each being parsed, having its signatures checked, or ready. Two keep the
#: three stages busy: the writer stores batch k while the worker checks k+1 and a thread
#: parses k+2. A link so holds at most ``AHEAD`` + 1 messages (the writer's too), each at
#: most a message's size; more would only queue behind the slowest stage.
AHEAD = 2
#: Threads that parse peers' messages (``PeerSync.parse``), each link's one at a time and
#: in order. Parsing holds the GIL: more threads would take turns at it, and take it from
#: the writer and the event loop, which answers clients, more often.
PARSE_THREADS = 2
#: Threads that verify parsed batches' signatures (``PeerSync.verify``). A long batch is
#: checked in the worker process (one batch at a time), which a thread waits for without
#: the GIL; a second thread queues the next batch behind it. One link may so hold two
#: (``AHEAD``): two more check other links' short batches (live pushes) meanwhile, in
#: the thread itself. Apart from the parsing threads, so that a parse never waits
#: behind batches queued for the worker.
VERIFY_THREADS = 2 * AHEAD


class Ahead:
    """One link's messages, read, parsed and verified ahead of its loop, and handed to it
    in the order they arrived (``next``).

    A task reads the link: it takes room for a message (at most ``AHEAD`` received and
    not yet ``taken``), receives it, parses it on the parsing pool and waits for that, so
    that the link's messages are parsed one at a time and in order (a batch's keys may
    come from the batch before: ``PeerSync.parse``), then leaves its checks to the
    verifying pool and reads on. What ends the reading (the link closed, a pool shut) is
    handed over in its turn, after the messages before it, as a message's fault is (it
    stays in the message until ``PeerSync.receive`` raises it).

    Each message comes with the CPU seconds it cost off the writer, which the link's loop
    (``node.peers.driver``) charges to the link like writer time: the parsing and
    verifying threads' own CPU time, not the time passed, which would count waits for the
    GIL held by the writer and other links; plus the time its checks took in the
    signature worker, which is a core of this host spent on the link as surely as if
    they had run in the thread.
    """

    def __init__(self, link: Link, machine: PeerSync, *, parse_pool: ThreadPoolExecutor,
                 verify_pool: ThreadPoolExecutor, verifier: Verifier,
                 stopping: Callable[[], bool]) -> None:
        """Start reading ``link`` for ``machine``: parse on ``parse_pool``, check long
        batches' signatures on ``verify_pool`` with ``verifier``. ``stopping`` tells
        whether the node is stopping: a pool found shut then ends the link as closed
        (otherwise it is a bug, and raised)."""
        self._link = link
        self._machine = machine
        self._parse_pool, self._verify_pool = parse_pool, verify_pool
        self._verifier = verifier
        self._stopping = stopping
        self._room = asyncio.Semaphore(AHEAD)
        self._ready: asyncio.Queue[asyncio.Future[tuple[Prepared, float]]] = asyncio.Queue()
        #: Work handed to the pools and not finished: ``close`` cancels what has not
        #: started, and waits for a parse still running.
        self._working: set[concurrent.futures.Future[Any]] = set()
        self._parsing: concurrent.futures.Future[Any] | None = None
        self._reading = asyncio.create_task(self._read(), name="peer-read-ahead")

    async def next(self) -> tuple[Prepared, float]:
        """The next message, prepared, and its CPU seconds; raises what ended the link
        (``LinkClosed``) once every message before was handed out. Call ``taken`` once
        its result is taken, to make room for another."""
        return await (await self._ready.get())

    def taken(self) -> None:
        """A message from ``next`` was taken: another may be read."""
        self._room.release()

    async def close(self) -> None:
        """Stop reading and drop what was read. Work that had not started is cancelled;
        a parse still running is waited for, as it remembers keys in the machine, which
        another link may use next. Checks still running are not: they read nothing of
        the machine, their answer is dropped, and one in the worker may take up to
        ``CALL_TIME_S``, which would hold the node's stop (that stop ends the worker
        afterwards; the thread then checks the batch itself, and ends)."""
        self._reading.cancel()
        try:
            # Not ``await self._reading``: its CancelledError would hide one meant for
            # the caller (a stop cancelling the link again).
            await asyncio.wait([self._reading])
        finally:
            while not self._ready.empty():
                pending = self._ready.get_nowait()
                if pending.done() and not pending.cancelled():
                    pending.exception()  # retrieved: a closed link's error is no news
                pending.cancel()
            for work in list(self._working):  # a copy: threads take finished work out
                work.cancel()
        parsing = self._parsing
        if parsing is not None and not parsing.done():
            waited = asyncio.wrap_future(parsing)
            await asyncio.wait([waited])
            if not waited.cancelled():
                waited.exception()  # retrieved: the message is dropped with its fault

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._room.acquire()
            try:
                data = await self._link.receive()
                self._parsing = self._submit(self._parse_pool, self._parse, data)
                parsed, parse_s = await asyncio.wrap_future(self._parsing)
                if isinstance(parsed.message, Events):
                    verifying = asyncio.wrap_future(self._submit(
                        self._verify_pool, self._verify, parsed, parse_s))
                else:  # nothing to verify (a hello, an ack): no second hop
                    verifying = loop.create_future()
                    verifying.set_result((self._machine.verify(parsed), parse_s))
            except Exception as exc:  # LinkClosed, a pool shut: handed over in turn
                failed: asyncio.Future[tuple[Prepared, float]] = loop.create_future()
                failed.set_exception(exc)
                self._ready.put_nowait(failed)
                return
            self._ready.put_nowait(verifying)

    def _submit(self, pool: ThreadPoolExecutor, work: Callable[..., T],
                *args: Any) -> concurrent.futures.Future[T]:
        try:
            future = pool.submit(work, *args)
        except RuntimeError:  # the pool is shut down: a link that outlived ``stop``
            if not self._stopping():
                raise
            raise LinkClosed("this node is stopping") from None
        self._working.add(future)
        future.add_done_callback(self._working.discard)
        return future

    def _parse(self, data: bytes) -> tuple[Parsed, float]:
        started = time.thread_time()
        parsed = self._machine.parse(data)
        return parsed, time.thread_time() - started

    def _verify(self, parsed: Parsed, parse_s: float) -> tuple[Prepared, float]:
        verifier = self._verifier
        started, worker_s = time.thread_time(), verifier.worker_s()
        prepared = self._machine.verify(parsed, verifier)
        return prepared, (parse_s + time.thread_time() - started
                          + verifier.worker_s() - worker_s)
