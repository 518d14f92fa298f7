"""node.workers: real worker processes that overrun their time, their memory, or
die; the pool replaces them and goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.workers import START_TIMEOUT_S, WorkerDied, WorkerPool, WorkerRaised, WorkerTimeout
from tests.support.processes import child_env, children, never_ready_module

MEMORY_BYTES = 512 * 1024 * 1024


def pid() -> int:
    return os.getpid()


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def allocate(size: int) -> int:
    return len(bytearray(size))


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def fail() -> None:
    raise ValueError("no")


async def test_calls_run_in_worker_processes_that_are_reused() -> None:
    pool = WorkerPool(1, 30.0, MEMORY_BYTES)
    try:
        first = await pool.run(pid)
        assert first != os.getpid()
        assert await pool.run(pid) == first
        assert await pool.run(allocate, 1000) == 1000
    finally:
        await pool.stop()


async def test_a_call_past_its_time_is_cut_short_and_its_worker_replaced() -> None:
    pool = WorkerPool(1, 1.0, MEMORY_BYTES, preload=(__name__,))
    try:
        first = await pool.run(pid)
        with pytest.raises(WorkerTimeout):
            await pool.run(sleep, 60.0)
        assert await pool.run(pid) != first
    finally:
        await pool.stop()


async def test_memory_past_the_limit_fails_the_call_not_the_caller() -> None:
    pool = WorkerPool(1, 30.0, MEMORY_BYTES)
    try:
        with pytest.raises(WorkerRaised) as raised:
            await pool.run(allocate, 2 * MEMORY_BYTES)
        assert raised.value.kind == "MemoryError"
        assert await pool.run(allocate, 1000) == 1000
    finally:
        await pool.stop()


async def test_a_worker_that_dies_or_raises_is_reported_and_replaced() -> None:
    pool = WorkerPool(1, 30.0, MEMORY_BYTES)
    try:
        first = await pool.run(pid)
        with pytest.raises(WorkerDied):
            await pool.run(die)
        with pytest.raises(WorkerRaised, match="ValueError: no"):
            await pool.run(fail)
        assert await pool.run(pid) != first
    finally:
        await pool.stop()


async def test_a_stopped_pool_ends_running_calls_and_takes_no_more() -> None:
    import asyncio

    pool = WorkerPool(1, 60.0, MEMORY_BYTES, preload=(__name__,))
    await pool.run(pid)
    running = asyncio.create_task(pool.run(sleep, 60.0))
    await asyncio.sleep(0.5)
    await pool.stop()
    with pytest.raises(WorkerDied):
        await running
    with pytest.raises(WorkerDied):
        await pool.run(pid)


async def test_ctrl_c_of_the_terminal_leaves_a_worker_to_its_node() -> None:
    pool = WorkerPool(1, 30.0, MEMORY_BYTES)
    try:
        worker = await pool.run(pid)
        os.kill(worker, signal.SIGINT)  # what a terminal sends the whole process group
        time.sleep(0.2)
        assert await pool.run(pid) == worker
    finally:
        await pool.stop()


async def test_a_stop_closes_no_pipe_that_a_call_still_reads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread of a running call reads its worker's pipe until the call ends; a stop
    that closed the pipe under it could leave it reading a descriptor number reused
    since. The stop kills the worker and closes its pipes after the call returned."""
    import asyncio

    from node import workers

    reading: dict[int, int] = {}  # per worker (its id), calls inside Worker.call
    closed_under_a_read: list[int] = []
    call, stop = workers.Worker.call, workers.Worker.stop

    def watched_call(self: workers.Worker, *args: object) -> object:
        reading[id(self)] = reading.get(id(self), 0) + 1
        try:
            return call(self, *args)  # type: ignore[arg-type]
        finally:
            reading[id(self)] -= 1

    def watched_stop(self: workers.Worker, wait_s: float) -> None:
        if reading.get(id(self)):
            closed_under_a_read.append(id(self))
        stop(self, wait_s)

    monkeypatch.setattr(workers.Worker, "call", watched_call)
    monkeypatch.setattr(workers.Worker, "stop", watched_stop)
    pool = WorkerPool(2, 60.0, MEMORY_BYTES, preload=(__name__,))
    running = [asyncio.create_task(pool.run(sleep, 60.0)) for _ in range(2)]
    await asyncio.sleep(0.5)  # started, starting or calling: a stop must do with each
    await pool.stop()
    for task in running:
        with pytest.raises(WorkerDied):
            await task
    await asyncio.gather(*pool._finishing)
    assert closed_under_a_read == []


async def test_a_cancelled_call_kills_its_worker_and_the_next_call_gets_a_new_one() -> None:
    import asyncio

    pool = WorkerPool(1, 60.0, MEMORY_BYTES, preload=(__name__,))
    try:
        first = await pool.run(pid)
        running = asyncio.create_task(pool.run(sleep, 60.0))
        await asyncio.sleep(0.5)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert await pool.run(pid) != first
    finally:
        await pool.stop()


async def test_a_worker_that_starts_while_the_pool_stops_is_ended_not_used() -> None:
    import asyncio

    before = children()
    pool = WorkerPool(1, 60.0, MEMORY_BYTES, preload=(__name__,))
    running = asyncio.create_task(pool.run(sleep, 60.0))
    await asyncio.sleep(0)  # its worker is starting (a process: a good part of a second)
    await pool.stop()
    assert children() <= before  # the stop called the start off and reaped the worker
    with pytest.raises(WorkerDied, match="stopping"):
        await running
    assert pool._all == set() and pool._calls == {}


async def started_child(before: set[int]) -> int:
    """The pid of the one child that appeared since ``before``, once it has."""
    from tests.support.waits import PROCESS_DEADLINE_S, until

    (child,) = await until(lambda: children() - before, within_s=PROCESS_DEADLINE_S)
    return child


async def test_a_call_cancelled_while_its_worker_starts_leaves_the_worker_to_the_pool(
        ) -> None:
    """The start runs in a thread that the cancel cannot stop: the worker it starts
    serves the next call, and a stop ends it."""
    import asyncio

    before = children()
    pool = WorkerPool(1, 60.0, MEMORY_BYTES, preload=(__name__,))
    try:
        running = asyncio.create_task(pool.run(pid))
        starting = await started_child(before)
        assert not running.done()  # a process takes a good part of a second to start
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert await pool.run(pid) == starting
    finally:
        await pool.stop()
    assert children() <= before


async def test_a_stop_after_a_call_cancelled_while_its_worker_starts_leaves_no_child(
        ) -> None:
    import asyncio

    before = children()
    pool = WorkerPool(1, 60.0, MEMORY_BYTES, preload=(__name__,))
    running = asyncio.create_task(pool.run(pid))
    await started_child(before)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await pool.stop()
    assert children() <= before
    with pytest.raises(WorkerDied, match="stopping"):
        await pool.run(pid)


async def test_a_stop_while_a_worker_starts_slowly_kills_it_without_waiting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A start waits up to ``START_TIMEOUT_S`` for its worker (an overloaded machine);
    a stop does not: it kills the starting worker and reaps it, leaving no child."""
    import asyncio

    before = children()
    pool = WorkerPool(1, 60.0, MEMORY_BYTES, preload=(never_ready_module(tmp_path, monkeypatch),))
    running = asyncio.create_task(pool.run(pid))
    await started_child(before)
    await asyncio.sleep(0.2)  # the start is under way (it would be until its timeout)
    assert not running.done()
    # A safety net, not a measure: a stop that waited for the start took START_TIMEOUT_S.
    async with asyncio.timeout(START_TIMEOUT_S / 3):
        await pool.stop()
    assert children() <= before
    with pytest.raises(WorkerDied, match="stopping"):
        await running


async def test_a_cancelled_calls_worker_death_is_read_not_left_for_asyncio_to_report() -> None:
    # The killed worker's call ends with WorkerDied after its caller has gone; unless
    # the reaper reads it, asyncio reports "exception was never retrieved" on the log.
    import asyncio
    import gc

    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    pool = WorkerPool(1, 60.0, MEMORY_BYTES, preload=(__name__,))
    try:
        running = asyncio.create_task(pool.run(sleep, 60.0))
        await asyncio.sleep(0.5)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        del running
    finally:
        await pool.stop()
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert [context["message"] for context in reported] == []


def test_a_worker_whose_node_is_gone_before_it_is_ready_ends_quietly() -> None:
    """A node killed while its worker starts leaves the worker no one to tell it is
    ready: the worker ends without a traceback in the log it shares with the node."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the node's end of the answers: gone
    worker = subprocess.Popen([sys.executable, "-m", "node.worker_loop", str(MEMORY_BYTES)],
                              stdin=subprocess.PIPE, stdout=write_end, stderr=subprocess.PIPE,
                              env=child_env())
    os.close(write_end)
    _, errors = worker.communicate(timeout=START_TIMEOUT_S)
    assert (worker.returncode, errors.decode()) == (0, "")
