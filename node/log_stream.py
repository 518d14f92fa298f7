"""The stream the log's lines go to (``LogStream``): it never raises into what logged
and never blocks it. A line it cannot write is dropped and counted by reason
(``REASONS``): a log call sits everywhere, in loops that must not die of it, after
commits that must not be taken for failed, and on the event loop, which must not wait
for a reader. A terminal that closed (every write to it fails with EIO once it hung
up), a pipe whose reader exited (EPIPE) or a stream closed in the process has nobody to
read what follows (``reader_gone``: a journald restarted or a ``| tee`` gone leaves a
node that logs nothing more, and the count is how its operator learns of it); a log
file on a failing or full disk (``write_error``) logs again once its disk does; a
stderr whose reader is slow or stalled (``would_block``: a non-blocking one that is
full, or a blocking one whose writer thread has ``Limits.log_queued_bytes_max`` bytes
of lines waiting) drops what does not fit and goes on.

Every line reaches the descriptor whole, in one write call of one writer thread,
whoever logs it: two threads' lines never share a line. Once the process exits, the
thread that logs writes its line itself (``LogStream.finish``): a finalizer's line,
logged as Python ends (asyncio's "Task was destroyed", aiohttp's "Unclosed client
session"), is written, not left queued for a thread that can no longer run.
``node.logs`` sets the log up on it.
"""

from __future__ import annotations

import errno
import io
import os
import queue
import select
import stat
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import TextIO

from node.limits import Limits

#: Write errors that mean nobody reads the stream any more: a hung-up terminal (EIO), a
#: pipe or socket whose reader is gone (EPIPE).
READER_GONE = (errno.EIO, errno.EPIPE)
#: Why lines were dropped: nobody reads the stream any more (or it was closed); its
#: reader is slow or stalled (its bytes queued full, or a non-blocking stream full:
#: EAGAIN); any other write error (a log file's disk failing or full). The last two try
#: the next line again.
REASONS = ("reader_gone", "would_block", "write_error")
#: Seconds the writer thread waits for a line before it ends (the next line starts
#: another): a stream no longer logged to (a test's, one replaced) keeps no thread.
WRITER_IDLE_S = 5.0
#: Bytes the writer thread writes at most in one call: as many whole lines queued as
#: fit (a longer line is written alone). A write to a pipe of at most PIPE_BUF bytes
#: is atomic: a full non-blocking pipe (EAGAIN) refuses all of it, never half of its
#: lines, and another process writing to the same pipe never splits a line.
WRITE_BYTES_MAX: int = getattr(select, "PIPE_BUF", 4096)


class LogStream:
    """Writes to ``stream``, dropping the lines it cannot write and counting them by
    reason (``lines_dropped``); it never raises, and never blocks what logged.

    A stderr that blocks (a pipe or terminal whose reader is alive but does not read:
    ``clawsync serve 2>&1 | (sleep 1000)``, a paused pager) would hold every log call in
    its write once the pipe is full, on the event loop too, and the node would answer
    nothing more. So a log call only queues its line (one ``write``: a line, or a
    traceback's lines) for one writer thread, which writes them in order, whole lines
    only, as many in one write call as ``WRITE_BYTES_MAX`` holds, so that lines never
    share a line; past ``queued_bytes_max`` bytes waiting, a line is dropped as
    ``would_block`` (one longer than that is queued when no line waits). Bytes, not
    log calls: a burst logged in one step of the event loop (thousands of lines, before
    the writer thread gets the interpreter) fits, however many lines it has, while a
    stalled reader costs about that much memory (Python's own cost of each queued line
    comes on top: about 1.6 times the bound for lines of 130 bytes). ``drain`` waits,
    boundedly, for the queue. ``finish`` does too, as the process exits (``configure``'s handler, at
    ``logging.shutdown``); from then on the thread that logs a line writes it (or, if
    the reader stalled, drops it): the writer thread cannot run as Python ends, when
    finalizers still log, nor another start. So is a line logged when no writer thread
    can be started (on 3.12, once the atexit handlers run, before ``logging.shutdown``).

    The writer writes to the stream's file descriptor itself (``write``, ``os.write``
    but for a test's failing disk), not through Python's buffer: a write that failed
    would leave its bytes there, to go out ahead of the next line once the disk
    recovers and to fail the flush at exit (Python then exits 120). A stream without a
    descriptor (a test's capture) is written as it is, at once.

    A terminal or pipe with no reader (``READER_GONE``) never gets one back: its
    descriptor is pointed at ``/dev/null``, where what others left in Python's buffer
    goes too, and every later line is dropped unwritten. A regular file has no reader to
    lose: its EIO is its disk's, as ENOSPC is; the line is dropped, and the next one is
    tried, so a disk that recovers is written to again. A line cut short (part of it
    written, then an error) is ended before the next line, which starts a line of its
    own; of lines written together, those before it count as written, and those after
    it are tried again. A stream closed after this was made is not written (``reader_gone``): its
    descriptor's number may be another file's by then."""

    def __init__(self, stream: TextIO,
                 write: Callable[[int, memoryview], int] = os.write,
                 queued_bytes_max: int | None = None) -> None:
        self.stream = stream
        #: Bytes of lines queued at most (``Limits.log_queued_bytes_max``'s default).
        self.queued_bytes_max = (Limits().log_queued_bytes_max if queued_bytes_max is None
                                 else queued_bytes_max)
        #: Lines not written since this stream was made, by reason (``REASONS``).
        self.lines_dropped = dict.fromkeys(REASONS, 0)
        self._write = write
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        self._fd: int | None = None
        try:
            self._fd = stream.fileno()
            stream.flush()  # what was written before goes first
        except (OSError, ValueError, io.UnsupportedOperation):
            pass  # no descriptor (a test's capture), or its flush failed: nothing to keep
        self._gone = False  # the descriptor writes to /dev/null: nobody reads it again
        self._cut = False  # a line was cut short: the next write ends it first (writer)
        # Guards the queue's count, the counts of lines dropped and the writer's start;
        # never held while writing to a descriptor. Reentrant: a finalizer that logs
        # (asyncio's "Task was destroyed", aiohttp's "Unclosed client session") can run
        # in a garbage collection started while it is held, on the thread holding it; a
        # plain lock would hang that thread, then every thread that logs.
        self._lock = threading.RLock()
        self._drained = threading.Condition(self._lock)  # told when nothing is queued
        # SimpleQueue: its put may be interrupted by another put on the same thread (a
        # finalizer's line) without harm; queue.Queue's lock is not reentrant.
        self._queue: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._queued = 0  # lines put and not yet written or dropped by the writer
        self._queued_bytes = 0  # their bytes
        self._taken = 0  # lines the writer wrote or dropped, since this was made
        self._stalled_at = -1  # _taken when a drain last timed out
        # A writer thread runs, or is being started: set before it is made, so that a
        # finalizer logging meanwhile (its making allocates) starts no second one.
        self._writer_runs = False
        # Set as the process exits (``finish``): "write", each line is written by the
        # thread that logs it, through _at_once (in order: a thread writes them until
        # none is left, _writing_at_once set meanwhile); "drop", dropped (would_block).
        self._exiting: str | None = None
        self._at_once: deque[bytes] = deque()
        self._writing_at_once = False

    def write(self, text: str) -> int:
        data = text.encode(self._encoding, "backslashreplace")
        with self._lock:
            if self._exiting is None and self._fd is not None and sys.is_finalizing():
                # Python ends with no exit drain (a stream configure did not make): no
                # writer thread runs again, nor may one start (on 3.11 its start waits
                # forever). Nothing queued: this thread writes; else its line would
                # follow lines that never go out, or hang the exit behind them.
                self._exiting = "write" if self._queued == 0 else "drop"
            if self._gone or getattr(self.stream, "closed", False):
                self._gone = True  # never dup2 here: the number may be another file's
                self._dropped(data, "reader_gone")
                return len(text)
            if self._fd is None:
                self._write_stream(text)
                return len(text)
            exiting = self._exiting
            if exiting is None and not self._writer_runs and not self._start_writer():
                # No thread to be had: Python exits (3.12 starts none once the atexit
                # handlers run, while sys.is_finalizing() is still False). This line is
                # written as at exit; the next one tries to start the writer again.
                exiting = "write" if self._queued == 0 else "drop"
            if exiting == "drop" or (
                    self._queued and self._queued_bytes + len(data) > self.queued_bytes_max):
                self._dropped(data, "would_block")  # the writer is held: a slow reader
                return len(text)
            if exiting is None:
                self._queued += 1
                self._queued_bytes += len(data)
                self._queue.put(data)
                return len(text)
            self._at_once.append(data)
            if self._writing_at_once:  # the thread writing (this one, if a finalizer
                return len(text)  # logged inside its write) writes it next
            self._writing_at_once = True
        self._write_at_once()
        return len(text)

    def flush(self) -> None:
        """Flush a stream without a descriptor; the others' lines are the writer's
        (``drain`` waits for them). Called after every line: it never waits."""
        if self._fd is None:
            try:
                self.stream.flush()
            except (OSError, ValueError) as error:
                self._reader_gone(error)

    def drain(self, timeout_s: float) -> bool:
        """Wait, at most ``timeout_s``, until no line is queued (lines queued during the
        wait are waited for too), each written or dropped; True if none is left. A
        reader that stalled never takes them: once a wait ran out, the next returns at
        once unless the writer took a line since (a process that exits waits once, not
        at each of its drains)."""
        with self._drained:
            if self._queued and self._stalled_at == self._taken:
                return False
            if self._drained.wait_for(lambda: self._queued == 0, timeout_s):
                return True
            self._stalled_at = self._taken
            return False

    def finish(self, timeout_s: float) -> bool:
        """The exit drain: ``drain``, then each later line is written at once by the
        thread that logs it, in order, not queued. The writer thread is a daemon: it
        stops as Python ends, while finalizers still log, and a thread started then
        would wait forever. If the wait ran out (a stalled reader, where such a write
        would hang the exit), each later line is dropped as ``would_block`` instead.
        True if no line was left queued."""
        with self._lock:  # nothing queued between the drain and the switch
            drained = self.drain(timeout_s)
            self._exiting = "write" if drained else "drop"
            return drained

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (OSError, ValueError):
            return False

    def _start_writer(self) -> bool:
        """Called under _lock before a line is queued; False if no thread started."""
        self._writer_runs = True
        try:
            threading.Thread(target=self._write_queued, name="clawsync-log",
                             daemon=True).start()  # a stalled write never holds exit
        except RuntimeError:
            self._writer_runs = False
            return False
        return True

    def _write_queued(self) -> None:
        """The writer thread: the queued lines, in order, as many whole ones in each
        write as ``WRITE_BYTES_MAX`` holds. It gets the interpreter only now and then
        while the event loop is busy: a line a write, it would fall behind a burst
        logged in one step of the loop, and the queue would overflow. It ends when idle
        for ``WRITER_IDLE_S`` (the next line starts another): a stream no longer logged
        to keeps no thread."""
        first: bytes | None = None  # taken, and not written yet: it did not fit
        while True:
            if first is None:
                try:
                    first = self._queue.get(timeout=WRITER_IDLE_S)
                except queue.Empty:
                    with self._lock:
                        if self._queued == 0:  # nothing put meanwhile: a put starts another
                            self._writer_runs = False
                            return
                    continue
            lines, first = self._take_batch(first)
            while lines:  # a write cut short: the lines after the one cut are tried again
                written, reason = self._write_data(b"".join(lines))
                done = 0  # lines written whole, then the one cut short, if any
                for line in lines:
                    if written < len(line):
                        break
                    written -= len(line)
                    done += 1
                with self._lock:
                    if reason is not None:
                        self._dropped(lines[done], reason)
                        done += 1
                    self._queued -= done
                    self._queued_bytes -= sum(len(line) for line in lines[:done])
                    self._taken += done
                    if self._queued == 0:
                        self._drained.notify_all()
                lines = lines[done:]

    def _take_batch(self, first: bytes) -> tuple[list[bytes], bytes | None]:
        """``first`` and the lines queued after it that fit with it in one write of at
        most ``WRITE_BYTES_MAX`` bytes; and the line taken that did not fit, if any."""
        lines, size = [first], len(first)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return lines, None
            if size + len(line) > WRITE_BYTES_MAX:
                return lines, line
            lines.append(line)
            size += len(line)

    def _write_at_once(self) -> None:
        """Once the process exits (``finish``): the lines in ``_at_once``, written in
        order by this thread until none is left, those other threads log meanwhile too
        (they do not wait for it)."""
        while True:
            with self._lock:
                if not self._at_once:
                    self._writing_at_once = False
                    return
                data = self._at_once.popleft()
            try:
                reason = self._write_data(data)[1]
            except BaseException:  # a second Ctrl-C as it exits: its line is lost, and
                with self._lock:  # the next line logged writes those left (not stuck)
                    self._dropped(data, "write_error")
                    self._writing_at_once = False
                raise
            if reason is not None:
                with self._lock:
                    self._dropped(data, reason)

    def _write_data(self, data: bytes) -> tuple[int, str | None]:
        """Write whole lines in one write; the bytes of ``data`` written, and why the
        write was cut short (None if it was not). The line it cut is dropped."""
        if self._gone or getattr(self.stream, "closed", False):
            self._gone = True  # closed while queued: the number may be another file's
            return 0, "reader_gone"
        assert self._fd is not None  # lines are queued only for a descriptor
        view = memoryview(data)
        try:
            try:
                if self._cut:  # the line before was cut short: end it first, or drop this
                    self._write_all(self._fd, memoryview(b"\n"))
                    self._cut = False
                while view:
                    view = view[self._write(self._fd, view):]
            except BaseException:  # an OSError, or one no reason foresees (write_error)
                # Cut short inside a line: end it, now or before the next (this write may
                # fail as the line did), not glue the next to it.
                written = len(data) - len(view)
                if written and data[written - 1] != ord("\n"):
                    self._cut = not self._end_line(self._fd)
                raise
        except BlockingIOError:
            reason = "would_block"
        except (OSError, ValueError) as error:
            reason = "reader_gone" if self._reader_gone(error) else "write_error"
        except Exception:  # the writer must not die of it: every later line would wait
            reason = "write_error"
        else:
            return len(data), None
        return len(data) - len(view), reason

    def _write_stream(self, text: str) -> None:
        """A stream without a descriptor, written at once (called under _lock)."""
        try:
            self.stream.write(text)
        except BlockingIOError:
            self._dropped(text, "would_block")
        except (OSError, ValueError) as error:  # ValueError: a closed stream
            self._dropped(text, "reader_gone" if self._reader_gone(error) else "write_error")

    def _write_all(self, fd: int, view: memoryview) -> None:
        while view:
            view = view[self._write(fd, view):]

    def _end_line(self, fd: int) -> bool:
        try:
            return self._write(fd, memoryview(b"\n")) == 1
        except Exception:  # as the write it ends: the next line ends it first
            return False

    def _dropped(self, text: str | bytes, reason: str) -> None:
        # Lines, not writes: structlog writes a line with its newline, logging too, and
        # a traceback counts each of its lines. Called under _lock.
        lines = text.count("\n") if isinstance(text, str) else text.count(b"\n")
        self.lines_dropped[reason] += lines

    def _reader_gone(self, error: Exception) -> bool:
        """True if ``error`` says nobody reads the stream any more; its descriptor then
        writes to /dev/null."""
        if not isinstance(error, OSError) or error.errno not in READER_GONE:
            return False
        try:
            fd = self.stream.fileno()
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return False  # the disk's error, not a reader gone (see the class)
        except (OSError, ValueError, io.UnsupportedOperation):
            return True  # no descriptor (a test's capture): nothing to point elsewhere
        try:
            null = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return True  # none to replace it with: each line fails and is counted
        try:
            os.dup2(null, fd)
            self._gone = True
        finally:
            os.close(null)
        return True

