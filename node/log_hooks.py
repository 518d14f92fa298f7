"""What Python would write to stderr itself, logged instead: its warnings, the exceptions
it can only report (a finalizer's), an exception nothing caught (in a thread, or at the
top, as the process ends) and the log's handler's report of a record it failed to write.
Python writes them from the thread they happen in, the event loop's too: once a stalled
reader filled stderr's pipe, that write would hold the node. Logged, they are queued
like every line (``node.log_stream``). ``install`` sets the hooks
(``node.logs.configure`` calls it).

A record the node's handler fails to write is reported by ``log_handler_error``. One
that any other handler fails to write (one a library or a logger that does not propagate
has of its own, a plain ``logging.StreamHandler``), unless it has a ``handleError`` of its
own, is counted by ``log_foreign_handler_error``, and nothing more: Python's
``logging.Handler.handleError``, which ``install`` replaces for the process, writes the
record's arguments (``Arguments: (...)``) and the error's text to stderr, the log's
stream, where a secret the record was never to show would be read; and it writes from
the thread that logged. A report of that record written by the node's handler instead
would show a library's own text on the node's log (a message it formatted itself, a
token in it), one line with a traceback per record it fails (a collector that is down
fails them all), and take the node's handler's lock inside the failing handler's, while
the node's handler, formatting, may log to that handler (a warning an argument's
``__str__`` raises): each thread holding the lock the other waits for.
``logging.raiseExceptions = False`` would not do: it silences the reports, so a lost
record would go unseen and uncounted.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
import threading
import warnings
from collections.abc import Callable
from types import TracebackType

#: The loggers of Python's warnings (as ``logging.captureWarnings`` names it) and of the
#: exceptions it can only report ("Exception ignored in": a finalizer's, a weakref
#: callback's).
WARNINGS = "py.warnings"
UNRAISABLE = "py.unraisable"
#: The loggers of an exception nothing caught: in a thread (``threading.excepthook``),
#: and in the main thread, which ends the process (``sys.excepthook``).
THREAD_ERRORS = "py.threading"
UNCAUGHT = "py.uncaught"
#: The name (a logger's) of the log's handler's report of a record it failed to write
#: (a message whose arguments do not fit it: ``logging.Handler.handleError``), which it
#: writes itself (``log_handler_error``).
LOGGING_ERRORS = "py.logging"
#: How deep warnings are logged inside one another on one thread. A warning raised
#: while one is being logged (by a filter, a formatter, a library's handler) is logged
#: too: it says what went wrong. One raised while that one is logged is dropped: under
#: the filter "always", each would raise the next, without end.
WARNINGS_NESTED_MAX = 2
#: Why a report was dropped before it became a line, counted as one line each (as the
#: stream's are, ``node.log_stream.REASONS``): a record the handler could not write
#: whose report failed in turn (``report_failed``: it would fail again; the record and
#: its report are lost, two lines); a warning raised deeper than
#: ``WARNINGS_NESTED_MAX`` (``warning_nested``). And a record another's handler (a
#: library's) could not write (``foreign_failed``): never one of the log's lines, only
#: counted (``log_foreign_handler_error``).
REASONS = ("report_failed", "warning_nested", "foreign_failed")
#: What a handler's report shows of the error it reports in place of its text: the error
#: may come from an argument's own code (a ``__str__`` that fails), which may have put
#: the value that was never logged, a token say, in its message.
TEXT_LEFT_OUT = "(its text is left out: it may hold a value that was never logged)"


#: What this thread is reporting now: how deep in warnings (``warning_depth``), and
#: whether a handler's failure (``handler_error``; ``report_failed`` once its report
#: failed too); reports made inside them are bounded.
_reporting = threading.local()
#: Reports dropped since ``install``, by reason (``REASONS``, ``foreign_failed`` apart),
#: under ``_dropped_lock``: reentrant, as the stream's lock, for a finalizer that warns
#: while it is held.
_dropped = {reason: 0 for reason in REASONS if reason != "foreign_failed"}
_dropped_lock = threading.RLock()
#: Records other handlers failed to write since ``install`` (``foreign_failed``): each
#: failure takes the next number, and no lock but the interpreter's (``next`` of a
#: ``count`` is one step, which ``+= 1`` is not): it is taken inside the failing
#: handler's own lock (``log_foreign_handler_error``). ``lines_dropped`` reads it by
#: taking a number too, under ``_dropped_lock``, and counts the numbers it took
#: (``_foreign_reads``).
_foreign_failures = itertools.count()
_foreign_reads = 0
#: The warnings' hook ``install`` replaced (Python's own): it records the warnings of a
#: ``catch_warnings(record=True)`` that left the hook in place (see ``install``).
_python_showwarnmsg: Callable[[warnings.WarningMessage], None] | None = None


def lines_dropped() -> dict[str, int]:
    """Reports dropped since ``install``, by reason (``REASONS``)."""
    global _foreign_reads
    with _dropped_lock:
        foreign = next(_foreign_failures) - _foreign_reads  # the numbers reads took too
        _foreign_reads += 1
        return dict(_dropped) | {"foreign_failed": foreign}


def _drop(reason: str) -> None:
    with _dropped_lock:
        _dropped[reason] += 1


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a broken repr: the report must still be made
        return f"<{type(value).__name__} object>"


def log_handler_error(handler: logging.Handler, record: logging.LogRecord) -> None:
    """``handleError`` of ``node.logs``' handler: a record ``handler`` failed to write (a
    message whose arguments do not fit it) reported as a line of its own, named
    ``LOGGING_ERRORS``, through that same handler: its filters, its format, its stream.
    Not through the ``LOGGING_ERRORS`` logger: the record may have come from a logger
    that does not propagate (``propagate = False``) and has this handler of its own,
    whose report would then go to the root's handlers, another stream or none at all
    (``logging.lastResort``, stderr, written from the thread that logged). The report
    names the message and where it was logged, and the types of its arguments, not
    their values: they were never logged, and may hold a secret (so may a message that
    is not a string: only its type is named). It is logged at the record's level,
    ``ERROR`` at least, wherever the record got to the handler (whatever the loggers'
    levels): the record is lost, and that is said. Its
    traceback names the error's type and where it was raised, not its text
    (``TEXT_LEFT_OUT``), and is that error's alone, not what it was raised while
    handling: a bad log call in an ``except`` block would print the exception being
    handled, which the caller never logged (a URL with its token, say). A report that
    fails in turn (its handler's filter too, which raises outside ``emit``) is dropped,
    and so is the record: both are counted (``report_failed``). Never raises but a
    ``RecursionError``, as Python's own report."""
    error = sys.exc_info()[1]
    if not logging.raiseExceptions or error is None:
        return  # reports turned off (as Python's own are), or nothing to report
    if getattr(_reporting, "handler_error", False):
        _reporting.report_failed = True
        _drop("report_failed")  # this is the report, failed: it would fail again
        return
    _reporting.handler_error, _reporting.report_failed = True, False
    try:
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        message = (_safe_repr(record.msg) if isinstance(record.msg, str)
                   else f"of type {type(record.msg).__name__}")
        stand_in = _text_left_out(error)
        reporter = logging.getLogger(LOGGING_ERRORS)
        path, line, function, _ = reporter.findCaller()
        # At the record's level, ERROR at least (a CRITICAL record's report is CRITICAL,
        # not ranked below what it reports), and past the loggers' levels as the record
        # itself was (straight to the handler): a DEBUG record of a logger set lower than
        # the root would otherwise be lost with its report, unseen and uncounted. The
        # handler's own level let the record through, so it lets the report through too.
        report = reporter.makeRecord(
            reporter.name, max(logging.ERROR, record.levelno), path, line,
            "a record of %s logged at %s:%s could not be written: message %s, "
            "arguments of types %s", (record.name, record.pathname, record.lineno,
                                      message, ", ".join(type(arg).__name__ for arg in args)
                                      or "none"),
            (type(stand_in), stand_in, error.__traceback__), function)
        try:
            # ``handle`` runs the handler's filters outside ``emit``'s guard: one that
            # reads what its records carry (``extra=``) fails on the report, and that
            # must not reach the caller, for whom logging never raises.
            handler.handle(report)
        except RecursionError:  # as Python's own report: the stack is spent
            raise
        except Exception:
            _reporting.report_failed = True
            _drop("report_failed")  # the report, failed: it never became a line
        if _reporting.report_failed:
            _drop("report_failed")  # the record it reported: lost with its report
    finally:
        _reporting.handler_error = _reporting.report_failed = False


def log_foreign_handler_error(handler: logging.Handler, record: logging.LogRecord) -> None:
    """``handleError`` of every handler without one of its own once ``install`` ran
    (``logging.Handler.handleError``): a handler not the log's (a library's, that of a
    logger that does not propagate) failed to write ``record``, which is counted
    (``foreign_failed``), and nothing more. Nothing is written: not by ``handler``, which
    failed (on I/O, an ``HTTPHandler`` to a collector that is down, a file on a full
    disk, it would fail again, a second blocking attempt on the thread that logged), nor
    by the log's handler, whose lock would be taken inside ``handler``'s (see the
    module's docstring), and which would show a library's text, its own secrets
    included, a line per record it fails. Nothing is called that could log or take a
    lock: a ``RecursionError``, the stack spent, reaches the caller, as from Python's
    own report."""
    next(_foreign_failures)


def _text_left_out(error: BaseException) -> BaseException:
    """An exception that tracebacks show as ``error`` (its type's name and module, its
    frames) but with ``TEXT_LEFT_OUT`` for its text, and no chain nor notes: a new
    one, raised nowhere, so that what ``error`` was raised while handling is not shown.

    >>> import traceback
    >>> try:
    ...     raise KeyError("token=s3cr3t")
    ... except KeyError as error:
    ...     shown = _text_left_out(error)
    >>> print(*traceback.format_exception_only(shown), end="")
    KeyError: (its text is left out: it may hold a value that was never logged)
    """
    kind = type(error)
    shown: BaseException = type(kind.__name__, (Exception,), {
        "__module__": kind.__module__, "__qualname__": kind.__qualname__,
        "__str__": lambda self: TEXT_LEFT_OUT})()
    return shown.with_traceback(error.__traceback__)


def log_warning(message: warnings.WarningMessage) -> None:
    """``warnings._showwarnmsg_impl`` once ``install`` ran: a warning logged
    (``WARNINGS``), in the words Python would write to stderr, without their final
    newline; with its source's allocation (a ResourceWarning's "Object allocated at",
    under ``-X tracemalloc``), which ``warnings.showwarning`` never gets. One shown
    into a file of the caller's goes there, as Python's own would. Warnings raised
    while it logs one are logged at most ``WARNINGS_NESTED_MAX`` deep. One that a
    ``catch_warnings(record=True)`` records (a context-aware one's, from 3.14) goes to
    Python's own hook, which records it."""
    get_context = getattr(warnings, "_get_context", None)
    if (get_context is not None and get_context().log is not None
            and _python_showwarnmsg is not None):
        _python_showwarnmsg(message)
        return
    depth = getattr(_reporting, "warning_depth", 0)
    if depth >= WARNINGS_NESTED_MAX:
        _drop("warning_nested")
        return
    _reporting.warning_depth = depth + 1
    try:
        # Python's own formatting: a replaced ``warnings.formatwarning`` is honoured.
        text: str = warnings._formatwarnmsg(message)  # type: ignore[attr-defined]
        if message.file is not None:
            with contextlib.suppress(OSError):  # as Python's: a file that fails loses it
                message.file.write(text)
            return
        logging.getLogger(WARNINGS).warning("%s", text.rstrip("\n"))
    finally:
        _reporting.warning_depth = depth


def log_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """``sys.unraisablehook`` once ``install`` ran: Python's report of an exception
    nothing could catch, as the default hook words it, logged (``UNRAISABLE``) rather
    than written to stderr by the thread it happened in."""
    what = unraisable.err_msg or "Exception ignored in"
    if unraisable.object is not None:
        what += f": {_safe_repr(unraisable.object)}"
    error = unraisable.exc_value
    logging.getLogger(UNRAISABLE).error(
        "%s", what, exc_info=None if error is None else (
            unraisable.exc_type, error, unraisable.exc_traceback))


def log_thread_error(args: threading.ExceptHookArgs) -> None:
    """``threading.excepthook`` once ``install`` ran: an exception that ended a
    thread, logged (``THREAD_ERRORS``) as Python's hook words it; a ``SystemExit``
    ends its thread quietly, as there."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else threading.get_ident()
    error = args.exc_value
    logging.getLogger(THREAD_ERRORS).error(
        "Exception in thread %s", name, exc_info=None if error is None else (
            args.exc_type, error, args.exc_traceback))


def log_uncaught(kind: type[BaseException], error: BaseException,
                 traceback: TracebackType | None) -> None:
    """``sys.excepthook`` once ``install`` ran: an exception nothing caught in the
    main thread, logged (``UNCAUGHT``) with its traceback. The process ends next: its
    exit waits for the queued lines, boundedly (``node.logs.EXIT_FLUSH_S``), not
    forever for a stalled reader."""
    logging.getLogger(UNCAUGHT).error("Uncaught exception", exc_info=(kind, error, traceback))


def install() -> None:
    """Route what Python would write to stderr itself through logging (the log's
    handler reports a record it failed to write itself, ``log_handler_error``); a record
    any other handler fails to write is counted instead of reported
    (``log_foreign_handler_error``); the counts of reports dropped start at 0 again, as
    those of ``configure``'s new stream do."""
    # Python writes its warnings, the exceptions it can only report and those nothing
    # caught to stderr itself, from the thread they happen in, the event loop's too:
    # once a stalled reader filled the pipe, that write would hold the node. Through
    # logging, they are queued. The warnings' hook is the one ``warnings.showwarning``
    # calls: it is given a warning's source, which ``showwarning`` is not, and a
    # ``showwarning`` set by others still comes first. ``catch_warnings(record=True)``
    # replaces it while it records, but from 3.14, with context-aware warnings (``-X
    # context_aware_warnings``, the default when free-threaded), it leaves it in place
    # and sets its context's ``log``, which Python's own hook appends to: that hook is
    # kept, for ``log_warning`` to hand it those warnings.
    global _python_showwarnmsg, _foreign_failures, _foreign_reads
    with _dropped_lock:
        _dropped.update(dict.fromkeys(_dropped, 0))
        _foreign_failures, _foreign_reads = itertools.count(), 0
    current = warnings._showwarnmsg_impl  # type: ignore[attr-defined]
    if current is not log_warning:  # installed twice: the first kept Python's
        _python_showwarnmsg = current
    warnings._showwarnmsg_impl = log_warning  # type: ignore[attr-defined]
    sys.unraisablehook = log_unraisable
    threading.excepthook = log_thread_error
    sys.excepthook = log_uncaught
    # A handler of another's (a library's, a logger's that does not propagate) that
    # fails a record would report it as Python does: its arguments' values and the
    # error's text to stderr. It is counted instead. A handler with its own
    # ``handleError`` keeps it.
    logging.Handler.handleError = log_foreign_handler_error  # type: ignore[method-assign,assignment]
