"""The log's stream as the process exits (lines logged as Python ends, after an exit
drain, after ``logging.shutdown``), and lines logged from inside a log call (a
finalizer run by a collection): written or dropped, never hanging a thread."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from node import log_stream
from tests.support.log_drain import DRAIN_S, drained

#: Each test configures logging; the fixture (tests/node/conftest.py) puts it back.
pytestmark = pytest.mark.usefixtures("restore_logging")


#: A process that logs a line as Python ends (``sys.argv[1]``: its writer thread gone
#: idle and ended, or still running; or a stream ``configure`` did not make).
LOGGING_AS_PYTHON_ENDS = """
import logging, sys, threading, time
from node import log_stream, logs

case = sys.argv[1]
if case != "running":
    log_stream.WRITER_IDLE_S = 0.05
if case == "bare":
    say = log_stream.LogStream(sys.stderr).write
else:
    logs.configure()
    say = lambda text: logging.getLogger("late").warning(text.rstrip())

class Unclosed:  # as aiohttp's "Unclosed client session"
    def __del__(self):
        say("a finalizer's line\\n")

left = Unclosed()
left.cycle = left  # collected only as Python ends
say("first\\n")
while case != "running" and any(
        thread.name == "clawsync-log" for thread in threading.enumerate()):
    time.sleep(0.01)  # until the writer thread idled out
"""


@pytest.mark.parametrize("case", ["idle", "running", "bare"])
def test_a_line_logged_as_python_ends_is_written_and_the_process_exits(case: str) -> None:
    """Finalizers log as Python ends (asyncio's "Task was destroyed", aiohttp's
    "Unclosed client session"), after logging's exit drain, when the writer thread can
    no longer run and a thread started would wait forever: the line is written by the
    thread that logs it, and the process exits."""
    try:
        done = subprocess.run([sys.executable, "-c", LOGGING_AS_PYTHON_ENDS, case],
                              capture_output=True, text=True, timeout=DRAIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail("the process hung as Python ended")
    assert done.returncode == 0, done.stderr
    said = [line.rpartition(": ")[2] for line in done.stderr.splitlines()]
    assert said == ["first", "a finalizer's line"]


def test_after_an_exit_drain_that_ran_out_later_lines_are_dropped() -> None:
    """The reader stalled, so the exit drain ran out: a line logged after it (by a
    finalizer) would hang the exit in its write; it is dropped and counted instead."""
    reader, writer = os.pipe()
    with os.fdopen(writer, "w") as pipe, os.fdopen(reader, "rb") as out:
        stream = log_stream.LogStream(pipe)
        while not stream.lines_dropped["would_block"]:  # the pipe full, the queue too
            stream.write("x" * 99 + "\n")
        assert not stream.finish(0.1)
        late = threading.Thread(target=stream.write, args=("late\n",), daemon=True)
        late.start()
        late.join(timeout=DRAIN_S)
        assert not late.is_alive(), "a line after the exit drain waited for the reader"
        assert stream.lines_dropped["would_block"] == 2
        os.set_blocking(reader, False)
        taken = b""
        while not stream.drain(0.01):  # the writer thread's lines, read so it ends
            taken += out.read() or b""
    assert b"late" not in taken


def test_a_closed_stream_is_not_written_through_its_old_descriptor(tmp_path: Path) -> None:
    """The stream closed, its descriptor's number goes to the next file opened: a line
    logged then is dropped, not written into that file."""
    with open(tmp_path / "first.log", "w") as first:
        stream = log_stream.LogStream(first)
    with open(tmp_path / "other.db", "w") as other:
        assert other.fileno() == stream._fd  # the number was reused
        stream.write("late line\n")
    assert (tmp_path / "other.db").read_text() == ""
    assert stream.lines_dropped["reader_gone"] == 1


def test_a_line_logged_from_inside_a_write_does_not_hang_the_writer(tmp_path: Path) -> None:
    """A finalizer that logs (asyncio's "Task was destroyed ...") can run in a garbage
    collection started inside a write, on the writer thread: its line is queued behind
    the one being written, both go out whole, and the writer goes on."""
    inner_told = False

    def collecting(fd: int, data: memoryview) -> int:
        nonlocal inner_told
        if not inner_told:  # as a collection inside the write would run a finalizer
            inner_told = True
            stream.write("Task was destroyed but it is pending!\n")
        return os.write(fd, data)

    with open(tmp_path / "node.log", "w") as file:
        stream = log_stream.LogStream(file, write=collecting)
        stream.write("serving\n")
        assert stream.drain(DRAIN_S), "the writer hung"
    assert (tmp_path / "node.log").read_text() == (
        "serving\nTask was destroyed but it is pending!\n")


def test_a_line_logged_while_a_line_is_queued_does_not_hang_the_thread(
        tmp_path: Path) -> None:
    """A collection can start while a log call holds the stream's lock (queueing its
    line, starting the writer thread): a finalizer that logs then takes the lock again,
    on the same thread. Its line is queued too; both go out whole, and the thread goes
    on. (A collection there cannot be had on demand: the queue's put logs as a
    finalizer run by one would.)"""

    class Collecting(queue.SimpleQueue[bytes]):
        told = False

        def put(self, item: bytes, block: bool = True, timeout: float | None = None
                ) -> None:
            if not self.told:
                self.told = True
                stream.write("Task was destroyed but it is pending!\n")
            super().put(item, block, timeout)

    with open(tmp_path / "node.log", "w") as file:
        stream = log_stream.LogStream(file)
        stream._queue = Collecting()
        caller = threading.Thread(target=stream.write, args=("serving\n",), daemon=True)
        caller.start()
        caller.join(timeout=DRAIN_S)
        assert not caller.is_alive(), "the log call hung on its own lock"
        drained(stream)
    assert (tmp_path / "node.log").read_text() == (
        "Task was destroyed but it is pending!\nserving\n")


def test_a_line_logged_when_no_thread_can_start_is_written_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.12 starts no thread once the atexit handlers run, while
    ``sys.is_finalizing()`` still says False: a line an atexit handler logs is written
    by the thread that logs it, not queued for a writer that never comes (and waited
    for by the exit drain)."""

    def refused(thread: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refused)
    with open(tmp_path / "node.log", "w") as file:
        stream = log_stream.LogStream(file)
        stream.write("stopped\n")
        assert (tmp_path / "node.log").read_text() == "stopped\n"
        assert stream.finish(0), "the line waits for a writer thread"
    assert stream.lines_dropped == dict.fromkeys(log_stream.REASONS, 0)


def test_an_interrupt_inside_a_write_at_exit_leaves_later_lines_written(
        tmp_path: Path) -> None:
    """A second Ctrl-C landing in a line's write as the process exits: the interrupt
    goes on (the line is lost, and counted), and the lines logged after it are
    written, not held for the write it ended."""
    interrupted = False

    def once(fd: int, data: memoryview) -> int:
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            raise KeyboardInterrupt
        return os.write(fd, data)

    with open(tmp_path / "node.log", "w") as file:
        stream = log_stream.LogStream(file, write=once)
        assert stream.finish(DRAIN_S)
        with pytest.raises(KeyboardInterrupt):
            stream.write("stopping\n")
        stream.write("stopped\n")
        stream.write("Unclosed client session\n")
    assert (tmp_path / "node.log").read_text() == "stopped\nUnclosed client session\n"
    assert stream.lines_dropped["write_error"] == 1


#: A process whose writer thread never writes the line "late": only the thread that
#: logs it can, as it does once ``logging.shutdown`` closed the handler.
LOGGING_AFTER_SHUTDOWN = """
import logging, os, sys, threading
from node import log_stream, logs

def held(fd, data):
    if b"late" in bytes(data) and threading.current_thread().name == "clawsync-log":
        threading.Event().wait()
    return os.write(fd, data)

logs.configure(stream=log_stream.LogStream(sys.stderr, write=held))
log = logging.getLogger("node")
log.warning("stopped")
logging.shutdown()
log.warning("late")
"""


def test_logging_shutdown_makes_later_lines_written_by_the_thread_that_logs() -> None:
    """``logging.shutdown`` (at exit, in ``node.interrupt.die_of`` and ``end_now``) ends the queue:
    a line logged after it is written at once by its own thread, not queued for a
    writer thread the exit does not wait for."""
    done = subprocess.run([sys.executable, "-c", LOGGING_AFTER_SHUTDOWN],
                          capture_output=True, text=True, timeout=DRAIN_S)
    assert done.returncode == 0, done.stderr
    assert [line.rpartition(": ")[2] for line in done.stderr.splitlines()] == [
        "stopped", "late"]
