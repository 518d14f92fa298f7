"""``WorkerPool``: a few processes that run functions under a time and a memory limit.

A client's Automerge changes are tried in one (``crdt.automerge.trial``) before the node
applies them: automerge holds the GIL and cannot be interrupted, so work that a crafted
message makes long or large must happen where it can be cut short. Peers' signatures
are checked in one (``node.peers.verifying``, through a ``Worker`` of its own), where
the node's GIL does not hold them back. Each worker is a
process of its own (never forked: the node has threads and open databases) whose address
space is capped with ``RLIMIT_AS``; a call that overruns its time is answered with
``WorkerTimeout`` and its worker killed; a worker that dies (out of memory, a crash in
native code) gives ``WorkerDied``. Either way a fresh worker takes its place on the next
call, and the node carries on. A pool's ``stop`` ends every worker, one still starting
too (``Start.cancel``), without waiting for its start: no child process is left. A
worker process runs ``node.worker_loop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

from crdt.errors import Picklable
from node import worker_loop

#: How long a stopping pool waits for a worker to exit before killing it.
STOP_WAIT_S = 1.0
#: How long a new worker may take to start (Python, then the modules it preloads); not
#: counted in the time of its first call.
START_TIMEOUT_S = 60.0


class WorkerError(Picklable):
    """A call did not complete in its worker."""


class WorkerTimeout(WorkerError):
    pass


class WorkerDied(WorkerError):
    pass


class WorkerRaised(WorkerError):
    """The function raised in the worker (``MemoryError`` when it hit the memory limit)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class WorkerPool:
    """``count`` workers, each call limited to ``time_s`` seconds and each worker to
    ``memory_bytes`` of address space. Calls wait for a free worker."""

    def __init__(self, count: int, time_s: float, memory_bytes: int,
                 preload: tuple[str, ...] = ()) -> None:
        self.time_s = time_s
        self.memory_bytes = memory_bytes
        self.preload = preload  # modules each worker imports before its first call
        self._idle: asyncio.Queue[Worker | None] = asyncio.Queue()
        for _ in range(count):
            self._idle.put_nowait(None)  # started on first use
        self._all: set[Worker] = set()
        #: Calls running, by worker: the thread of each still reads the worker's pipe.
        self._calls: dict[Worker, asyncio.Future[Any]] = {}
        #: Workers being started, until they are in ``_all`` (or failed, or refused
        #: because the pool is stopping: ``stop`` then ends them), each with the means
        #: to call its start off.
        self._starting: dict[asyncio.Future[Worker], Start] = {}
        #: What a cancelled call leaves the pool to finish: a killed worker to reap, a
        #: starting worker to take in. ``stop`` waits for it.
        self._finishing: set[asyncio.Task[None]] = set()
        self.stopping = False

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker (``fn`` and ``args`` must pickle); ``WorkerError``
        if it overran, died or raised."""
        worker = await self._idle.get()
        if worker is None:
            worker = await self._start()  # on failure it gives the place back itself
        call: asyncio.Future[Any] | None = None
        try:
            if self.stopping:
                raise WorkerDied("the pool is stopping")
            call = asyncio.ensure_future(
                asyncio.to_thread(worker.call, fn, args, self.time_s))
            self._calls[worker] = call
            # Shielded: a cancelled caller must not lose track of the thread, which goes
            # on reading the worker's pipe until the worker is killed below.
            return await asyncio.shield(call)
        except (WorkerTimeout, WorkerDied, asyncio.CancelledError):
            # Not reusable: it is still working (or gone). Kill it now; reap it aside,
            # once the thread that reads its pipe is done with it.
            if worker is not None:
                self._all.discard(worker)
                self._calls.pop(worker, None)
                worker.kill()
                self._finish(_reap(worker, call))
            worker = None
            raise
        finally:
            if worker is not None:
                self._calls.pop(worker, None)
            self._idle.put_nowait(worker)

    async def stop(self) -> None:
        """End every worker. An idle one is asked to exit; one still running a call is
        killed, and its call ends with ``WorkerDied``. Its pipes are closed only once
        the thread that reads them has returned: closed under that thread, their file
        descriptor numbers could be reused by the time it reads again. A worker still
        starting is killed too, not waited for (a start may take up to
        ``START_TIMEOUT_S``); its start then fails at once and reaps it. Killed workers
        not yet reaped are waited for: no child process is left."""
        self.stopping = True
        starting, calls = dict(self._starting), dict(self._calls)
        for worker in calls:
            worker.kill()
        for start in starting.values():
            start.cancel()
        if calls:
            await asyncio.wait(calls.values())  # killed: their reads end at once
        if starting:  # killed too: their starts end at once
            await asyncio.wait(starting)
        started = [s.result() for s in starting
                   if not s.cancelled() and s.exception() is None]
        workers, self._all = list(self._all) + started, set()
        await asyncio.gather(*(asyncio.to_thread(w.stop, STOP_WAIT_S) for w in workers))
        if self._finishing:
            await asyncio.wait(list(self._finishing))

    async def _start(self) -> Worker:
        """A new worker, for a call that holds a free place (``None``) of the pool.

        The start runs in a thread, which a cancelled call does not stop: the worker it
        starts then takes the call's place in the pool (or is ended by ``stop``, which
        calls the start off), so that no process is left behind. On any failure the
        place is given back."""
        if self.stopping:
            self._idle.put_nowait(None)
            raise WorkerDied("the pool is stopping")
        start = Start()
        starting = asyncio.ensure_future(
            asyncio.to_thread(Worker, self.memory_bytes, self.preload, start))
        self._starting[starting] = start
        try:
            await asyncio.wait([starting])  # unlike ``await``, does not cancel it
        except asyncio.CancelledError:
            self._finish(self._take_in(starting))
            raise
        worker = self._settle(starting)
        if worker is None:
            self._idle.put_nowait(None)
            if not self.stopping:
                starting.result()  # raises its error
            # A start that ``stop`` called off fails too: the stop is the reason.
            raise WorkerDied("the pool is stopping")
        return worker

    def _settle(self, starting: asyncio.Future[Worker]) -> Worker | None:
        """The worker that ``starting`` started, now one of the pool's; None if it did
        not start, or if the pool is stopping (``stop``, which saw it starting, ends
        it). Moves it from ``_starting`` to ``_all`` in one step, so that a ``stop``
        finds every worker in one or the other."""
        self._starting.pop(starting, None)
        if starting.cancelled() or starting.exception() is not None or self.stopping:
            return None
        worker = starting.result()
        self._all.add(worker)
        return worker

    async def _take_in(self, starting: asyncio.Future[Worker]) -> None:
        """Once started, the worker of a call cancelled during its start is idle."""
        await asyncio.wait([starting])
        self._idle.put_nowait(self._settle(starting))

    def _finish(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)


class Start:
    """Lets one thread call off the start of a worker in another (``Worker(..., start)``),
    which otherwise waits for the worker to be ready for up to ``START_TIMEOUT_S``. The
    process is killed, so that the start fails at once, with ``WorkerDied``; the starting
    thread still closes the pipes it reads and reaps the process, as on any failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self.cancelled = False

    def cancel(self) -> None:
        """Kill the worker's process, or, if it does not run yet, have it killed as soon
        as it does. A worker that started already is killed too: its owner ends it."""
        with self._lock:
            self.cancelled = True
            if self._process is not None:
                _kill(self._process)

    def began(self, process: subprocess.Popen[bytes]) -> None:
        """For ``Worker``: its process runs (killed at once if the start is called off)."""
        with self._lock:
            self._process = process
            if self.cancelled:
                _kill(process)


class Worker:
    """One process and the pipes to it. Used by one call at a time; its methods block,
    so call them off the event loop (``WorkerPool`` does; ``node.peers.verifying``
    calls from its own threads)."""

    def __init__(self, memory_bytes: int, preload: tuple[str, ...],
                 start: Start | None = None) -> None:
        # A child of its own command, not multiprocessing's spawn: that one re-imports the
        # parent's main module, which a node started from a script may not allow. The
        # command runs ``node.worker_loop``, which imports little: a start costs CPU.
        self._stopping = threading.Lock()
        self._stopped = False
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", worker_loop.__name__, str(memory_bytes), *preload], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        if start is not None:
            start.began(self.process)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.to_worker = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self.from_worker = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()
        try:
            if not self.from_worker.poll(START_TIMEOUT_S):
                raise WorkerDied(f"the worker did not start within {START_TIMEOUT_S:g} s")
            self.from_worker.recv_bytes()
        except (WorkerDied, EOFError, OSError) as error:
            self.kill()
            self.stop(0.0)
            raise WorkerDied(f"the worker did not start: {error}") from None

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], time_s: float) -> Any:
        """``fn(*args)`` in the process (both must pickle; ``fn`` by its name, so its
        module is imported there); ``WorkerTimeout`` past ``time_s`` (the process is
        then still working: kill it), ``WorkerDied``, or ``WorkerRaised``."""
        try:
            self.to_worker.send((fn, args))
            if not self.from_worker.poll(time_s):
                raise WorkerTimeout(f"took more than {time_s:g} s")
            ok, value = self.from_worker.recv()
        except (EOFError, OSError):
            raise WorkerDied(f"the worker exited ({self.process.poll()})") from None
        if not ok:
            raise WorkerRaised(*value)
        return value

    def kill(self) -> None:
        _kill(self.process)

    def stop(self, wait_s: float) -> None:
        """End the process; may be called more than once, from several threads (a
        stopping pool and a failed call may both stop a worker)."""
        with self._stopping:
            if self._stopped:
                return
            self._stopped = True
            self.to_worker.close()  # a worker waiting for work reads EOF and exits
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                self.kill()
                self.process.wait()
            self.from_worker.close()


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Safe on a process already reaped: ``Popen`` then sends nothing (its pid may be
    another process's by now)."""
    with contextlib.suppress(ProcessLookupError):
        process.kill()


async def _reap(worker: Worker, call: asyncio.Future[Any] | None) -> None:
    """Ends a killed worker once the thread that reads its pipes is done with them."""
    if call is not None:
        await asyncio.wait([call])  # its thread reads the pipes until then
        if not call.cancelled():
            call.exception()  # read: its caller has gone, and asyncio would log it
    await asyncio.to_thread(worker.stop, 0.0)
