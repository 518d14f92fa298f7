"""Logging set-up: tracebacks never show local variables (they hold tokens and secrets);
requests aiohttp's parser refuses are logged in one short line each, a bounded number."""

from __future__ import annotations

import errno
import io
import itertools
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
import structlog
from aiohttp.http_exceptions import BadHttpMessage

from node import logs
from node.logs import RefusedRequests

SECRET = "local-secret-4c1d"


#: Each test configures logging; the fixture (tests/node/conftest.py) puts it back.
pytestmark = pytest.mark.usefixtures("restore_logging")
#: Seconds a test waits for a stream's writer thread to take what was logged (a bound
#: on a hang, not a figure: it takes milliseconds).
DRAIN_S = 30.0


def drained(stream: logs.LogStream) -> logs.LogStream:
    """``stream`` once its writer thread wrote (or dropped) every line logged so far."""
    assert stream.drain(DRAIN_S), "the writer thread is stuck"
    return stream


def fail_with_a_secret_local() -> None:
    secret = SECRET
    raise ValueError(f"length {len(secret)}")


@pytest.mark.parametrize("log_format", logs.FORMATS)
def test_a_traceback_shows_no_local_variables(log_format: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("debug", log_format)
    try:
        fail_with_a_secret_local()
    except ValueError as exc:
        structlog.get_logger("test").error("unexpected error", exc_info=exc)
    logged = capsys.readouterr().err
    assert "fail_with_a_secret_local" in logged  # the traceback is there
    assert SECRET not in logged


def test_library_records_are_json_lines_too_in_json(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    """aiohttp and asyncio log through stdlib logging: in JSON, a collector must be able to
    read their lines as it reads the node's own, tracebacks without locals included."""
    logs.configure("debug", "json")
    logging.getLogger("asyncio").debug("Using selector: %s", "EpollSelector")
    try:
        fail_with_a_secret_local()
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    structlog.get_logger("test").info("serving", port=7878)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["level"], line["event"]) for line in lines[:2]] == [
        ("asyncio", "debug", "Using selector: EpollSelector"),
        ("aiohttp.server", "error", "Error handling request")]
    assert "fail_with_a_secret_local" in json.dumps(lines[1]["exception"])
    assert SECRET not in json.dumps(lines)
    assert (lines[2]["event"], lines[2]["port"]) == ("serving", 7878)


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


class BrokenFinalizer:
    def __del__(self) -> None:
        raise ValueError("finalizer failed")


def test_python_reports_are_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """Warnings and the exceptions Python can only report are log lines, through the log's
    stream (JSON objects in JSON), not written to stderr on their own."""
    logs.configure("info", "json")
    warnings.warn("careful", RuntimeWarning, stacklevel=1)
    BrokenFinalizer()
    logs.drain()
    warned, ignored = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert warned["logger"] == logs.WARNINGS and warned["level"] == "warning"
    assert "test_logs.py" in warned["event"] and "RuntimeWarning: careful" in warned["event"]
    assert not warned["event"].endswith("\n")  # a line, not a line and an empty one
    assert ignored["logger"] == logs.UNRAISABLE and ignored["level"] == "error"
    assert ignored["event"].startswith("Exception ignored in: <function BrokenFinalizer")
    assert ignored["exception"][0]["exc_value"] == "finalizer failed"


def test_a_warning_shown_into_a_file_goes_there(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``warnings.showwarning`` with a file of the caller's writes there, as Python's
    own does: it is not a line of the node's log."""
    logs.configure("info", "json")
    with open(tmp_path / "shown", "w") as shown:
        warnings.showwarning("kept", UserWarning, "x.py", 1, file=shown)
    logs.drain()
    assert "UserWarning: kept" in (tmp_path / "shown").read_text()
    assert "kept" not in capsys.readouterr().err


def test_a_queue_bound_of_zero_is_kept() -> None:
    """0 bytes queued at most is a bound (every line dropped while one waits), not the
    default."""
    assert logs.LogStream(io.StringIO(), queued_bytes_max=0).queued_bytes_max == 0


def refused_record(message: str = "Invalid header token:\n\n  b'Ho st: x'\n      ^"
                   ) -> logging.LogRecord:
    error = BadHttpMessage(message)
    return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1,
                             "Error handling request from %s", ("10.0.0.1",),
                             (type(error), error, None))


def test_refused_requests_are_one_line_each_and_bounded() -> None:
    clock = Clock()
    refused = RefusedRequests(lines_max=3, interval_s=60.0, clock=clock)
    passed = [record for record in (refused_record() for _ in range(100))
              if refused.filter(record)]
    assert len(passed) == 3
    for record in passed:
        assert record.exc_info is None and record.levelno == logging.WARNING
        assert record.getMessage() == ("refused a malformed request from 10.0.0.1: "
                                       "BadHttpMessage: Invalid header token")
    clock.now_s = 60.0  # a new window: the count of the dropped comes with the next line
    record = refused_record()
    assert refused.filter(record)
    assert record.getMessage().endswith("(97 more not logged before this)")


def test_the_reason_leaves_out_the_bytes_sent() -> None:
    record = refused_record("Got more than 8190 bytes when reading: b'Authorization: x'")
    assert RefusedRequests(lines_max=1, interval_s=1.0).filter(record)
    assert "Authorization" not in record.getMessage()


def test_other_records_pass_untouched() -> None:
    refused = RefusedRequests(lines_max=0, interval_s=60.0)
    error = ValueError("ours")
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1,
                               "Unhandled exception", (), (ValueError, error, None))
    assert refused.filter(record)
    assert record.exc_info is not None and record.levelno == logging.ERROR


def test_lines_nobody_can_read_are_dropped_and_the_descriptor_writes_nowhere() -> None:
    """A pipe whose reader exited (EPIPE, as a hung-up terminal's EIO): the line is lost,
    the caller goes on, and the pipe's descriptor writes nowhere from then on, so that
    what others left buffered flushes too."""
    reader, writer = os.pipe()
    os.close(reader)
    with os.fdopen(writer, "w") as pipe:
        stream = logs.LogStream(pipe)
        stream.write("stopping\n")
        drained(stream).flush()
        pipe.write("buffered by another writer\n")
        stream.write("stopped\n")
        pipe.flush()  # /dev/null now
        assert drained(stream).lines_dropped == {"reader_gone": 2, "would_block": 0,
                                                 "write_error": 0}


def test_every_line_dropped_once_the_reader_is_gone_is_counted() -> None:
    """A pipe whose reader exited, written line by line as stderr is: the line whose write
    failed and every one after it are counted, whoever writes them (structlog writes a
    line and its newline apart, logging at once; a traceback is as many lines)."""
    reader, writer = os.pipe()
    os.close(reader)
    with os.fdopen(writer, "w", buffering=1) as pipe:
        stream = logs.LogStream(pipe)
        stream.write("stopping\n")
        assert drained(stream).lines_dropped["reader_gone"] == 1
        stream.write("stopped")
        stream.write("\n")
        stream.write("Traceback (most recent call last):\nValueError: x\n")
        stream.flush()
        assert drained(stream).lines_dropped == {"reader_gone": 4, "would_block": 0,
                                                 "write_error": 0}


def test_a_full_disk_drops_each_line_and_raises_nothing() -> None:
    """ENOSPC (/dev/full: every write fails) is no reader gone: each line is tried, fails,
    is dropped and counted, and nothing is left in Python's buffer to fail its close."""
    with open("/dev/full", "w") as full:
        stream = logs.LogStream(full)
        stream.write("serving\n")
        stream.flush()
        stream.write("stopping\n")
        assert drained(stream).lines_dropped == {"reader_gone": 0, "would_block": 0,
                                                 "write_error": 2}


def test_a_log_file_whose_disk_fails_logs_again_once_it_recovers(tmp_path: Path) -> None:
    """EIO from a regular file is its disk failing, not a reader gone: the line is
    dropped and counted, the caller goes on, and the lines after the disk recovers are
    written, the dropped one not among them (nothing kept in a buffer to go out late).
    (A disk that fails on demand cannot be had here: its write fails as a failing
    disk's would.)"""
    failing = True

    def disk(fd: int, data: memoryview) -> int:
        if failing:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return os.write(fd, data)

    with open(tmp_path / "node.log", "w") as file:
        stream = logs.LogStream(file, write=disk)
        stream.write("lost\n")
        stream.flush()
        assert drained(stream).lines_dropped == {"reader_gone": 0, "would_block": 0,
                                                 "write_error": 1}
        failing = False
        stream.write("serving\n")
        drained(stream).flush()
    assert (tmp_path / "node.log").read_text() == "serving\n"
    assert stream.lines_dropped["write_error"] == 1


def test_lines_dropped_are_counted_by_reason_in_metrics(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """``configure`` logs to stderr's stream: a log call on a full disk raises nothing,
    and the count says why lines were lost."""
    with open("/dev/full", "w") as full:
        monkeypatch.setattr(sys, "stderr", full)
        logs.configure()
        structlog.get_logger("test").info("serving")
        logging.getLogger("aiohttp.access").warning("a library's line")
        assert logs.drain(DRAIN_S)
        assert logs.lines_dropped() == {"reader_gone": 0, "would_block": 0, "write_error": 2}


def test_two_threads_logging_json_never_share_a_line(tmp_path: Path) -> None:
    """structlog's writer and logging's handler each lock only themselves: every line
    goes out in one write of the stream's one writer thread, so a collector reads each
    as JSON. (Two threads logging as fast as they can may outrun that thread: what
    does not fit in its queue is counted, not written.)"""
    lines = 5000
    with open(tmp_path / "node.log", "w") as file:
        logs.configure("info", "json", stream=logs.LogStream(file))

        def own() -> None:
            for i in range(lines):
                structlog.get_logger("test").info("node line", i=i)

        def library() -> None:
            for i in range(lines):
                logging.getLogger("aiohttp.access").info("library line %d", i)

        threads = [threading.Thread(target=own), threading.Thread(target=library)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert logs.drain(DRAIN_S)
    written = (tmp_path / "node.log").read_text().splitlines()
    assert len(written) + logs.lines_dropped()["would_block"] == 2 * lines
    assert {json.loads(line)["event"].partition(" ")[0] for line in written} == {
        "node", "library"}


def test_a_full_non_blocking_pipe_drops_as_would_block_and_ends_the_line_cut_short(
        ) -> None:
    """A non-blocking stderr whose reader is slow (EAGAIN) is no disk error: its own
    reason. A line cut short by it is ended before the next, which starts a line."""
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    with os.fdopen(writer, "w") as pipe, os.fdopen(reader, "rb") as out:
        stream = logs.LogStream(pipe)
        long = "x" * (4 * 1024 * 1024) + "\n"  # more than the pipe holds
        stream.write(long)
        stream.write("dropped too\n")  # the pipe is still full
        assert drained(stream).lines_dropped == {"reader_gone": 0, "would_block": 2,
                                                 "write_error": 0}
        os.set_blocking(reader, False)
        taken = out.read()
        stream.write("next\n")
        drained(stream)
        taken += out.read()
    cut, ended, after = taken.partition(b"\n")
    assert ended and 0 < len(cut) < len(long) - 1 and set(cut) == {ord("x")}
    assert after == b"next\n"


def test_a_blocking_pipe_whose_reader_stalled_holds_no_log_call() -> None:
    """A reader alive but not reading (``clawsync serve 2>&1 | (sleep 1000)``): once its
    pipe is full, the writer thread waits in its write, the lines past the queue are
    dropped as ``would_block``, and no log call waits; nor does ``drain`` past its
    bound. Once the reader reads again, the queued lines follow, each whole."""
    queued_bytes_max = 64 * 1024  # 655 lines; the pipe holds about as many
    lines = 3000
    reader, writer = os.pipe()
    with os.fdopen(writer, "w") as pipe, os.fdopen(reader, "rb") as out:
        stream = logs.LogStream(pipe, queued_bytes_max=queued_bytes_max)

        def log_lines() -> None:
            for i in range(lines):
                stream.write(f"{i:05d} " + "x" * 94 + "\n")

        caller = threading.Thread(target=log_lines, daemon=True)
        caller.start()
        caller.join(timeout=DRAIN_S)
        assert not caller.is_alive(), "a log call waited for the reader"
        assert stream.lines_dropped["would_block"] > 0
        assert not stream.drain(0.1)  # its bound, not the reader, ends the wait
        assert not stream.drain(DRAIN_S)  # at once: nothing taken since the last wait
        os.set_blocking(reader, False)
        taken = b""
        while not stream.drain(0.01):  # read as the writer writes, until it is done
            taken += out.read() or b""
        taken += out.read() or b""
    written = taken.decode().splitlines()
    assert len(written) + stream.lines_dropped["would_block"] == lines
    assert all(len(line) == 100 for line in written)
    numbers = [int(line[:5]) for line in written]
    assert numbers == sorted(numbers) and numbers[0] == 0


def test_a_burst_logged_at_once_reaches_a_reader_that_reads() -> None:
    """Thousands of lines logged in one go, as in one step of the event loop: the writer
    thread gets the interpreter only now and then meanwhile, and the lines wait for it
    in the queue. Its bound is in bytes: every line reaches a reader that reads, none is
    dropped."""
    lines = 5000
    reader, writer = os.pipe()
    taken: list[bytes] = []

    def read() -> None:
        while chunk := os.read(reader, 65536):
            taken.append(chunk)

    reading = threading.Thread(target=read, daemon=True)
    reading.start()
    with os.fdopen(writer, "w") as pipe:
        stream = logs.LogStream(pipe)
        for i in range(lines):
            stream.write(f"{i:05d} " + "x" * 94 + "\n")
        drained(stream)
    reading.join(DRAIN_S)
    os.close(reader)
    assert stream.lines_dropped == dict.fromkeys(logs.REASONS, 0)
    written = b"".join(taken).decode().splitlines()
    assert [int(line[:5]) for line in written] == list(range(lines))


def test_bytes_queued_past_the_bound_are_dropped_and_a_long_line_waits_alone(
        tmp_path: Path) -> None:
    """While the writer is held (a reader that stalled), the lines waiting, the one in
    its write among them, hold at most ``queued_bytes_max`` bytes; a line longer than
    that is queued when none waits, not dropped for its length."""
    release = threading.Event()

    def held(fd: int, data: memoryview) -> int:
        release.wait(DRAIN_S)
        return os.write(fd, data)

    with open(tmp_path / "node.log", "w") as file:
        stream = logs.LogStream(file, write=held, queued_bytes_max=1000)
        for _ in range(10):  # 1,000 bytes: they fit
            stream.write("x" * 99 + "\n")
        stream.write("dropped\n")  # one byte more would not
        assert stream.lines_dropped["would_block"] == 1
        release.set()
        drained(stream)
        stream.write("L" * 2000 + "\n")
        drained(stream)
    assert stream.lines_dropped == {"reader_gone": 0, "would_block": 1, "write_error": 0}
    written = (tmp_path / "node.log").read_text().splitlines()
    assert [len(line) for line in written] == [*[99] * 10, 2000]


def test_an_unforeseen_write_error_leaves_the_writer_writing(tmp_path: Path) -> None:
    """A write that fails in a way no reason foresees drops its line as a write error:
    the writer thread goes on, and the next line is written (a writer that died would
    leave every later line waiting, then dropped)."""
    failed = False

    def odd(fd: int, data: memoryview) -> int:
        nonlocal failed
        if not failed:
            failed = True
            raise RuntimeError("not an OSError")
        return os.write(fd, data)

    with open(tmp_path / "node.log", "w") as file:
        stream = logs.LogStream(file, write=odd)
        stream.write("lost\n")
        drained(stream)  # alone in its write: lines queued together share one
        stream.write("serving\n")
        assert drained(stream).lines_dropped["write_error"] == 1
    assert (tmp_path / "node.log").read_text() == "serving\n"


def test_a_line_cut_short_by_an_unforeseen_error_is_ended_before_the_next(
        tmp_path: Path) -> None:
    """Part of a line went out, then the write failed in a way no reason foresees (and
    so did the newline that would end it): the next line ends it first, not glued on."""
    calls = 0

    def cut(fd: int, data: memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return os.write(fd, data[:3])
        if calls in (2, 3):  # the rest of the line, then the newline ending it
            raise RuntimeError("not an OSError")
        return os.write(fd, data)

    with open(tmp_path / "node.log", "w") as file:
        stream = logs.LogStream(file, write=cut)
        stream.write("lost\n")
        drained(stream)
        stream.write("serving\n")
        assert drained(stream).lines_dropped["write_error"] == 1
    assert (tmp_path / "node.log").read_text() == "los\nserving\n"


def test_lines_queued_meanwhile_go_out_together_in_whole_lines(tmp_path: Path) -> None:
    """The writer thread gets the interpreter only now and then while the event loop is
    busy: the lines queued meanwhile go out in as few writes as ``WRITE_BYTES_MAX`` lets
    (atomic on a pipe), each of whole lines; a longer line goes alone. None is dropped."""
    release = threading.Event()
    writes: list[bytes] = []

    def held(fd: int, data: memoryview) -> int:
        release.wait(DRAIN_S)  # the first write waits for the burst to be queued
        writes.append(bytes(data))
        return os.write(fd, data)

    long = "L" * (logs.WRITE_BYTES_MAX + 100) + "\n"
    lines = [f"{i:04d} " + "x" * (i % 90) + "\n" for i in range(1000)]
    lines[500] = long
    with open(tmp_path / "node.log", "w") as file:
        stream = logs.LogStream(file, write=held)
        for line in lines:
            stream.write(line)
        release.set()
        assert drained(stream).lines_dropped == dict.fromkeys(logs.REASONS, 0)
    assert (tmp_path / "node.log").read_text() == "".join(lines)
    assert long.encode() in writes  # alone
    for write, after in itertools.pairwise(writes[1:]):  # the first: a race
        assert write.endswith(b"\n") and after.endswith(b"\n")
        if write != long.encode():  # full: the next line would not have fitted
            assert len(write) <= logs.WRITE_BYTES_MAX
            assert len(write) + len(after.partition(b"\n")[0]) + 1 > logs.WRITE_BYTES_MAX


def test_lines_written_together_and_cut_short_count_only_from_the_cut(
        tmp_path: Path) -> None:
    """A non-blocking stderr that takes part of a write, then is full (EAGAIN): the
    lines written whole before the cut count as written, the line cut is dropped (and
    ended), and the lines after it are tried again, not dropped with it."""
    entered, release = threading.Event(), threading.Event()
    calls = 0

    def partly(fd: int, data: memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:  # holds the writer while the lines below are queued
            entered.set()
            release.wait(DRAIN_S)
        elif calls == 2:  # the three lines in one write: one and a half go out
            return os.write(fd, data[:150])
        elif calls in (3, 4):  # the rest of that write, then the newline ending the cut
            raise BlockingIOError(errno.EAGAIN, "full")
        return os.write(fd, data)

    lines = [f"{i}" + "x" * 98 + "\n" for i in range(3)]
    with open(tmp_path / "node.log", "w") as file:
        stream = logs.LogStream(file, write=partly)
        stream.write("serving\n")
        assert entered.wait(DRAIN_S)
        for line in lines:
            stream.write(line)
        release.set()
        drained(stream)
        stream.write("after\n")
        assert drained(stream).lines_dropped == {"reader_gone": 0, "would_block": 1,
                                                 "write_error": 0}
    assert (tmp_path / "node.log").read_text() == (
        "serving\n" + lines[0] + lines[1][:50] + "\n" + lines[2] + "after\n")


#: A process that logs a line as Python ends (``sys.argv[1]``: its writer thread gone
#: idle and ended, or still running; or a stream ``configure`` did not make).
LOGGING_AS_PYTHON_ENDS = """
import logging, sys, threading, time
from node import logs

case = sys.argv[1]
if case != "running":
    logs.WRITER_IDLE_S = 0.05
if case == "bare":
    say = logs.LogStream(sys.stderr).write
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
        stream = logs.LogStream(pipe)
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
        stream = logs.LogStream(first)
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
        stream = logs.LogStream(file, write=collecting)
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
        stream = logs.LogStream(file)
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
        stream = logs.LogStream(file)
        stream.write("stopped\n")
        assert (tmp_path / "node.log").read_text() == "stopped\n"
        assert stream.finish(0), "the line waits for a writer thread"
    assert stream.lines_dropped == dict.fromkeys(logs.REASONS, 0)


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
        stream = logs.LogStream(file, write=once)
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
from node import logs

def held(fd, data):
    if b"late" in bytes(data) and threading.current_thread().name == "clawsync-log":
        threading.Event().wait()
    return os.write(fd, data)

logs.configure(stream=logs.LogStream(sys.stderr, write=held))
log = logging.getLogger("node")
log.warning("stopped")
logging.shutdown()
log.warning("late")
"""


def test_logging_shutdown_makes_later_lines_written_by_the_thread_that_logs() -> None:
    """``logging.shutdown`` (at exit, and in ``node.interrupt.die_of``) ends the queue:
    a line logged after it is written at once by its own thread, not queued for a
    writer thread the exit does not wait for."""
    done = subprocess.run([sys.executable, "-c", LOGGING_AFTER_SHUTDOWN],
                          capture_output=True, text=True, timeout=DRAIN_S)
    assert done.returncode == 0, done.stderr
    assert [line.rpartition(": ")[2] for line in done.stderr.splitlines()] == [
        "stopped", "late"]
