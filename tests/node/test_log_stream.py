"""The log's stream (``node.log_stream.LogStream``): lines nobody can read, or a disk cannot
take, are dropped and counted by reason; a stalled reader holds no log call; lines go
out whole, in order, from one writer thread."""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import sys
import threading
from pathlib import Path

import pytest
import structlog

from node import log_stream, logs
from tests.support.log_drain import DRAIN_S, drained

#: Each test configures logging; the fixture (tests/node/conftest.py) puts it back.
pytestmark = pytest.mark.usefixtures("restore_logging")


def test_lines_nobody_can_read_are_dropped_and_the_descriptor_writes_nowhere() -> None:
    """A pipe whose reader exited (EPIPE, as a hung-up terminal's EIO): the line is lost,
    the caller goes on, and the pipe's descriptor writes nowhere from then on, so that
    what others left buffered flushes too."""
    reader, writer = os.pipe()
    os.close(reader)
    with os.fdopen(writer, "w") as pipe:
        stream = log_stream.LogStream(pipe)
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
        stream = log_stream.LogStream(pipe)
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
        stream = log_stream.LogStream(full)
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
        stream = log_stream.LogStream(file, write=disk)
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
        assert logs.lines_dropped() == {"reader_gone": 0, "would_block": 0, "write_error": 2,
                                        "report_failed": 0, "warning_nested": 0,
                                        "foreign_failed": 0, "held": 0}


def test_two_threads_logging_json_never_share_a_line(tmp_path: Path) -> None:
    """structlog's writer and logging's handler each lock only themselves: every line
    goes out in one write of the stream's one writer thread, so a collector reads each
    as JSON. (Two threads logging as fast as they can may outrun that thread: what
    does not fit in its queue is counted, not written.)"""
    lines = 5000
    with open(tmp_path / "node.log", "w") as file:
        logs.configure("info", "json", stream=log_stream.LogStream(file))

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
        stream = log_stream.LogStream(pipe)
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
        stream = log_stream.LogStream(pipe, queued_bytes_max=queued_bytes_max)

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
        stream = log_stream.LogStream(pipe)
        for i in range(lines):
            stream.write(f"{i:05d} " + "x" * 94 + "\n")
        drained(stream)
    reading.join(DRAIN_S)
    os.close(reader)
    assert stream.lines_dropped == dict.fromkeys(log_stream.REASONS, 0)
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
        stream = log_stream.LogStream(file, write=held, queued_bytes_max=1000)
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
        stream = log_stream.LogStream(file, write=odd)
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
        stream = log_stream.LogStream(file, write=cut)
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

    long = "L" * (log_stream.WRITE_BYTES_MAX + 100) + "\n"
    lines = [f"{i:04d} " + "x" * (i % 90) + "\n" for i in range(1000)]
    lines[500] = long
    with open(tmp_path / "node.log", "w") as file:
        stream = log_stream.LogStream(file, write=held)
        for line in lines:
            stream.write(line)
        release.set()
        assert drained(stream).lines_dropped == dict.fromkeys(log_stream.REASONS, 0)
    assert (tmp_path / "node.log").read_text() == "".join(lines)
    assert long.encode() in writes  # alone
    for write, after in itertools.pairwise(writes[1:]):  # the first: a race
        assert write.endswith(b"\n") and after.endswith(b"\n")
        if write != long.encode():  # full: the next line would not have fitted
            assert len(write) <= log_stream.WRITE_BYTES_MAX
            assert len(write) + len(after.partition(b"\n")[0]) + 1 > log_stream.WRITE_BYTES_MAX


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
        stream = log_stream.LogStream(file, write=partly)
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
