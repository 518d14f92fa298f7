"""Logging setup: structlog, as readable console lines or as JSON for log collectors.

Library logs that go through the standard ``logging`` module (aiohttp's) are routed to
the same stream at the same level, so one setting controls everything. Call
``configure`` once, at start-up (``node.server.run.run`` does).

aiohttp logs every request its HTTP parser refuses at ERROR with a traceback (a
malformed request line or header, a broken chunked body: the client's fault, and free to
send). ``RefusedRequests`` turns each into one short line, a bounded number per interval.

The lines go to stderr through ``LogStream``: a terminal that closed (every write to it
fails with EIO once it hung up) or a pipe whose reader exited (EPIPE) loses the lines
nobody can read, instead of raising out of whatever logged them (a node stopping on its
terminal's SIGHUP logs ``stopping``). It counts them (``lines_dropped``, the metric
``clawsync_log_lines_dropped_total``): a journald restarted or a ``| tee`` gone leaves
a node that logs nothing more, and the count is how its operator learns of it.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import structlog
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from node.config import Limits

FORMATS = ("console", "json")
LEVELS = ("debug", "info", "warning", "error", "critical")
#: The logger aiohttp's server logs refused requests to.
AIOHTTP_SERVER = "aiohttp.server"
#: Characters of the parser's reason that are logged (its first line; the rest quotes
#: the offending bytes, which are the sender's and could be anything).
REASON_CHARS_MAX = 80


#: Write errors that mean nobody reads the stream any more: a hung-up terminal (EIO), a
#: pipe or socket whose reader is gone (EPIPE).
READER_GONE = (errno.EIO, errno.EPIPE)


class LogStream:
    """Writes to ``stream``, dropping what cannot be written because its reader is gone
    (``READER_GONE``) and counting the lines dropped (``lines_dropped``); any other
    error is raised, as before. A terminal or pipe with no reader never gets one back:
    its file descriptor is then pointed at ``/dev/null``, where what Python still holds
    buffered for it goes too (else the flush at exit fails and Python exits 120), and
    every later line is dropped and counted unwritten.

    A regular file has no reader to lose: its EIO is the disk's (a failing disk, a file
    system shut down on errors), raised as its full disk (ENOSPC) is. Dropping it would
    hide a failing disk the node's store likely shares, and would not even drop the line:
    Python keeps the bytes it could not write buffered and tries them again with the
    next line. Raised, whatever logged it fails where it is seen (a request answers 500;
    stopping goes on past it, ``node.server.run.RunningNode.stop``)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        #: Lines not written because their reader was gone, since this stream was made.
        self.lines_dropped = 0
        self._gone = False  # the descriptor writes to /dev/null: nobody reads it again
        self._counting = threading.Lock()  # structlog's and logging's writers both count

    def write(self, text: str) -> int:
        if self._gone:
            self._dropped(text)
            return len(text)
        try:
            return self.stream.write(text)
        except OSError as error:
            self._reader_gone(error)
            self._dropped(text)
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as error:
            self._reader_gone(error)

    def isatty(self) -> bool:
        return self.stream.isatty()

    def _dropped(self, text: str) -> None:
        # Lines, not writes: structlog writes a line and its newline apart, logging both
        # at once; a traceback counts each of its lines.
        with self._counting:
            self.lines_dropped += text.count("\n")

    def _reader_gone(self, error: OSError) -> None:
        if error.errno not in READER_GONE:
            raise error
        try:
            fd = self.stream.fileno()
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except (OSError, ValueError, io.UnsupportedOperation):
            return  # no descriptor (a test's capture)
        if regular:
            raise error  # the disk's error, not a reader gone (see the class)
        try:
            null = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return  # none to replace it with
        try:
            os.dup2(null, fd)
            self._gone = True
        finally:
            os.close(null)


#: The stream ``configure`` logs to, for the count of the lines it dropped.
_stream: LogStream | None = None


def lines_dropped() -> int:
    """Log lines this process dropped since ``configure`` because nobody could read
    them (``LogStream``); 0 before it."""
    return _stream.lines_dropped if _stream is not None else 0


def refused_by_parser(error: BaseException | None) -> bool:
    """True for aiohttp's errors about what a client sent, however they were wrapped."""
    while error is not None:
        if isinstance(error, HttpProcessingError | RequestPayloadError):
            return True
        error = error.__cause__
    return False


class RefusedRequests(logging.Filter):
    """Shortens aiohttp's records of requests it refused to one line without traceback,
    and lets at most ``lines_max`` through per ``interval_s``; the first line after a
    window that dropped some says how many."""

    def __init__(self, lines_max: int, interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.lines_max = lines_max
        self.interval_s = interval_s
        self._clock = clock
        self._window_start = clock()
        self._lines = 0
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not refused_by_parser(error):
            return True
        now = self._clock()
        if now - self._window_start >= self.interval_s:
            self._window_start, self._lines = now, 0
        if self._lines >= self.lines_max:
            self._dropped += 1
            return False
        self._lines += 1
        self._shorten(record, error)
        return True

    def _shorten(self, record: logging.LogRecord, error: BaseException | None) -> None:
        reason = str(getattr(error, "message", error)).strip().partition("\n")[0]
        reason = reason.partition(": b'")[0].partition(': b"')[0].rstrip(":")
        client = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "refused a malformed request from %s: %s: %s"
        record.args = (client, type(error).__name__, reason[:REASON_CHARS_MAX])
        if self._dropped:
            record.msg += " (%d more not logged before this)"
            record.args += (self._dropped,)
            self._dropped = 0
        record.exc_info = record.exc_text = None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"


def configure(level: str = "info", log_format: str = "console",
              limits: Limits | None = None) -> None:
    """Set up structlog and stdlib logging; ``ValueError`` for an unknown level or format.
    ``limits`` bounds the lines logged for refused requests."""
    limits = limits or Limits()
    if level.lower() not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    numeric: int = getattr(logging, level.upper())
    renderer: Any
    # Tracebacks never show local variables: structlog's defaults do (rich's console
    # tracebacks, the JSON dict tracebacks), and locals hold tokens and secrets.
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        exceptions: list[Any] = [structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False))]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback)
        exceptions = []
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    global _stream
    stream = _stream = LogStream(sys.stderr)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            *exceptions,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Libraries log through stdlib logging (aiohttp, asyncio): in JSON, their lines are
    # JSON objects too, or a collector would choke on them.
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                               stamp],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        *exceptions, renderer]))
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
    server = logging.getLogger(AIOHTTP_SERVER)
    for old in [f for f in server.filters if isinstance(f, RefusedRequests)]:
        server.removeFilter(old)
    server.addFilter(RefusedRequests(limits.refused_log_lines_max,
                                     limits.refused_log_interval_s))
