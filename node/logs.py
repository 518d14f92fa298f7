"""Logging setup: structlog, as readable console lines or as JSON for log collectors.

Library logs that go through the standard ``logging`` module (aiohttp's) are routed to
the same stream at the same level, so one setting controls everything; so is what
Python would write to stderr itself: its warnings, the exceptions it can only report (a
finalizer's), an exception nothing caught (in a thread, or at the top, as the process
ends) and the log's handler's report of a record it failed to write (one another
handler fails to write, a library's own ``StreamHandler``'s, is only counted, see
``node.log_hooks``). Call
``configure`` once, at start-up (``node.server.run.run`` does).

aiohttp logs every request its HTTP parser refuses at ERROR with a traceback (a
malformed request line or header, a broken chunked body: the client's fault, and free to
send). ``RefusedRequests`` turns each into one short line, a bounded number per interval.

The lines go to stderr through ``node.log_stream.LogStream``, which never raises into
what logged and never blocks it: a line it cannot write is dropped and counted
(``lines_dropped``, the metric ``clawsync_log_lines_dropped_total`` by ``reason``), and
so is a line a ``node.log_window.LineWindow`` held back (``held``), whose count the
next line of its kind says, if one comes.
What Python reports itself is logged by the hooks of ``node.log_hooks``; a report they
drop (one that failed in turn, with the record it reported; a warning nested too
deep) is counted there too, and so is a record another handler (a library's) failed to
write, which is never written.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from node import log_hooks, log_stream, log_window
from node.config import LOG_LEVELS
from node.limits import Limits
from node.log_stream import LogStream
from node.log_window import LineWindow

FORMATS = ("console", "json")
LEVELS = LOG_LEVELS
#: The logger aiohttp's server logs refused requests to.
AIOHTTP_SERVER = "aiohttp.server"
#: Characters of the parser's reason that are logged (its first line; the rest quotes
#: the offending bytes, which are the sender's and could be anything).
REASON_CHARS_MAX = 80
#: Why log lines were dropped: the stream's reasons (it could not write them), then the
#: hooks' (a report of Python's dropped before it became a line), then the windows'
#: (a line of a kind strangers can make this node log, over its bound: ``held``).
REASONS = log_stream.REASONS + log_hooks.REASONS + log_window.REASONS
#: Seconds the process waits as it exits for the lines still queued: a reader that
#: stalled takes none of them, and the node must still exit.
EXIT_FLUSH_S = 2.0


#: The stream ``configure`` logs to, for the count of the lines it dropped.
_stream: LogStream | None = None


def drain(timeout_s: float = EXIT_FLUSH_S) -> bool:
    """Wait at most ``timeout_s`` for the lines ``configure``'s stream queued so far to
    be written; True if none is left (also before ``configure``)."""
    return _stream is None or _stream.drain(timeout_s)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """logging's handler for a ``LogStream``: closed by ``logging.shutdown`` (as the
    process exits, and by ``node.interrupt.die_of`` and ``end_now``), it waits for the queued lines,
    at most ``EXIT_FLUSH_S``, so that "stopped" and what came before it are written;
    the lines after it are written at once (``LogStream.finish``). A record it fails to
    write is reported as a line of its own (``log_hooks.log_handler_error``), through
    this handler, wherever it is (a logger that does not propagate may have it), not by
    logging to stderr from the thread that logged, which a stalled reader would hold."""

    def close(self) -> None:
        super().close()
        if isinstance(self.stream, LogStream):
            self.stream.finish(EXIT_FLUSH_S)

    def handleError(self, record: logging.LogRecord) -> None:
        log_hooks.log_handler_error(self, record)


def lines_dropped() -> dict[str, int]:
    """Log lines this process dropped since ``configure``, by reason (``REASONS``);
    all 0 before it, but ``held`` (counted from the process's start until then)."""
    counts = dict.fromkeys(log_stream.REASONS, 0) if _stream is None else dict(
        _stream.lines_dropped)
    return counts | log_hooks.lines_dropped() | {"held": log_window.lines_held()}


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
        self._clock = clock
        self._window = LineWindow(lines_max, interval_s)

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not refused_by_parser(error):
            return True
        dropped = self._window.take(self._clock())
        if dropped is None:
            return False
        self._shorten(record, error, dropped)
        return True

    @staticmethod
    def _shorten(record: logging.LogRecord, error: BaseException | None,
                 dropped: int) -> None:
        reason = str(getattr(error, "message", error)).strip().partition("\n")[0]
        reason = reason.partition(": b'")[0].partition(': b"')[0].rstrip(":")
        client = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "refused a malformed request from %s: %s: %s"
        record.args = (client, type(error).__name__, reason[:REASON_CHARS_MAX])
        if dropped:
            record.msg += " (%d more not logged before this)"
            record.args += (dropped,)
        record.exc_info = record.exc_text = None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"


def configure(level: str = "info", log_format: str = "console",
              limits: Limits | None = None, stream: LogStream | None = None) -> None:
    """Set up structlog and stdlib logging; ``ValueError`` for an unknown level or format.
    ``limits`` bounds the lines logged for refused requests. The lines go to ``stream``,
    stderr's unless given."""
    limits = limits or Limits()
    if level.lower() not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    numeric: int = getattr(logging, level.upper())
    global _stream
    stream = _stream = stream or LogStream(sys.stderr,
                                           queued_bytes_max=limits.log_queued_bytes_max)
    renderer: Any
    # Tracebacks never show local variables: structlog's defaults do (rich's console
    # tracebacks, the JSON dict tracebacks), and locals hold tokens and secrets.
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        exceptions: list[Any] = [structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False))]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback)
        exceptions = []
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            *exceptions,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # A line and its newline in one write (PrintLogger writes them apart).
        logger_factory=structlog.WriteLoggerFactory(stream),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Libraries log through stdlib logging (aiohttp, asyncio): in JSON, their lines are
    # JSON objects too, or a collector would choke on them.
    handler = _Handler(stream)
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
    log_hooks.install()
    log_window.reset()
    server = logging.getLogger(AIOHTTP_SERVER)
    for old in [f for f in server.filters if isinstance(f, RefusedRequests)]:
        server.removeFilter(old)
    server.addFilter(RefusedRequests(limits.refused_log_lines_max,
                                     limits.refused_log_interval_s))
