"""Logging set-up: tracebacks never show local variables (they hold tokens and secrets);
what Python reports itself is logged; requests aiohttp's parser refuses are logged in
one short line each, a bounded number. The stream the lines go through:
``test_log_stream.py``; as the process exits: ``test_log_exit.py``."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import structlog
from aiohttp.http_exceptions import BadHttpMessage

from node import log_hooks, log_stream, logs
from node.logs import RefusedRequests

SECRET = "local-secret-4c1d"


#: Each test configures logging; the fixture (tests/node/conftest.py) puts it back.
pytestmark = pytest.mark.usefixtures("restore_logging")


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
    assert warned["logger"] == log_hooks.WARNINGS and warned["level"] == "warning"
    assert "test_logs.py" in warned["event"] and "RuntimeWarning: careful" in warned["event"]
    assert not warned["event"].endswith("\n")  # a line, not a line and an empty one
    assert ignored["logger"] == log_hooks.UNRAISABLE and ignored["level"] == "error"
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
    assert log_stream.LogStream(io.StringIO(), queued_bytes_max=0).queued_bytes_max == 0


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


def raise_in_a_thread() -> None:
    raise RuntimeError("the thread failed")


def test_exceptions_nothing_caught_are_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """An exception that ends a thread, and one that reaches the top of the main thread,
    are log lines through the log's stream (JSON objects in JSON, traceback kept), not
    written to stderr on their own; a thread's ``SystemExit`` is quiet, as in Python."""
    logs.configure("info", "json")
    for target in (raise_in_a_thread, sys.exit):
        thread = threading.Thread(target=target, name=f"doomed-{target.__name__}")
        thread.start()
        thread.join()
    try:
        fail_with_a_secret_local()
    except ValueError as error:
        sys.excepthook(type(error), error, error.__traceback__)
    logs.drain()
    in_thread, uncaught = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert in_thread["logger"] == log_hooks.THREAD_ERRORS and in_thread["level"] == "error"
    assert in_thread["event"] == "Exception in thread doomed-raise_in_a_thread"
    assert in_thread["exception"][0]["exc_value"] == "the thread failed"
    assert uncaught["logger"] == log_hooks.UNCAUGHT and uncaught["level"] == "error"
    assert "fail_with_a_secret_local" in json.dumps(uncaught["exception"])
    assert SECRET not in json.dumps(uncaught)


@pytest.mark.parametrize("log_format", logs.FORMATS)
def test_a_record_the_handler_cannot_write_is_reported_as_a_line(
        log_format: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A message whose arguments do not fit it fails in the handler: logging's report of
    it is a line of the log (JSON in JSON), with its traceback and where it was logged,
    and the arguments' types but not their values (never logged: a secret, maybe)."""
    logs.configure("info", log_format)
    logging.getLogger("node.peers").warning("dialed %d times", SECRET)
    logging.getLogger("node.peers").warning("logged after it")
    logs.drain()
    logged = capsys.readouterr().err
    assert SECRET not in logged
    assert "logged after it" in logged
    if log_format == "json":
        reported = json.loads(logged.splitlines()[0])
        assert (reported["logger"], reported["level"]) == (log_hooks.LOGGING_ERRORS, "error")
        assert reported["exception"][0]["exc_type"] == "TypeError"
        event = reported["event"]
    else:
        event = logged
        assert f"[ERROR] {log_hooks.LOGGING_ERRORS}: " in logged
        assert f"TypeError: {log_hooks.TEXT_LEFT_OUT}" in logged  # the traceback
        assert "in getMessage" in logged  # where it was raised
    assert "a record of node.peers logged at " in event and "test_logs.py" in event
    assert "message 'dialed %d times', arguments of types str" in event


class Warns(logging.Filter):
    """A filter that warns each time a record passes it, as a library's might."""

    def filter(self, record: logging.LogRecord) -> bool:
        warnings.warn("a filter's warning", DeprecationWarning, stacklevel=1)
        return True


def test_a_warning_raised_while_one_is_logged_does_not_recurse(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Logging a warning raises another (under the filter "always", each time): the one
    raised is logged, it says what went wrong; the one it raises in turn is dropped,
    not logged without end."""
    warned = logging.getLogger(log_hooks.WARNINGS)
    warns = Warns()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        logs.configure("info", "json")
        warned.addFilter(warns)
        try:
            warnings.warn("careful", RuntimeWarning, stacklevel=1)
        finally:
            warned.removeFilter(warns)
    logs.drain()
    events = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert len(events) == log_hooks.WARNINGS_NESTED_MAX
    assert "DeprecationWarning: a filter's warning" in events[0]
    assert "RuntimeWarning: careful" in events[1]
    assert logs.lines_dropped()["warning_nested"] == 1  # the one dropped is counted


UNCLOSED_FILE = """
import gc, os
from node import logs

logs.configure("info", "json")
left = open(os.devnull)
del left
gc.collect()
"""


def test_a_warning_keeps_its_source() -> None:
    """A ResourceWarning names the object left open; under ``-X tracemalloc`` Python's
    own words say where it was allocated, and so does its log line."""
    done = subprocess.run([sys.executable, "-X", "tracemalloc", "-W", "always::ResourceWarning",
                           "-c", UNCLOSED_FILE], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    [warned] = [json.loads(line) for line in done.stderr.splitlines()]
    assert warned["logger"] == log_hooks.WARNINGS
    assert "ResourceWarning: unclosed file" in warned["event"]
    assert "Object allocated at (most recent call last):" in warned["event"]
    assert 'File "<string>", lineno 6' in warned["event"]


@pytest.mark.parametrize("log_format", logs.FORMATS)
def test_the_report_of_a_record_leaves_out_the_exception_being_handled(
        log_format: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad log call in an ``except`` block: logging's error is raised while that
    exception is handled, and would carry it along; the report shows logging's error
    only, not the exception the caller never logged (here, a URL with its token)."""
    logs.configure("info", log_format)
    try:
        raise ConnectionError(f"GET http://hub:7878/v1/events?token={SECRET} failed")
    except ConnectionError:
        logging.getLogger("node.peers").warning("retry in %d s", "5")
    logs.drain()
    logged = capsys.readouterr().err
    assert "retry in %d s" in logged and "TypeError" in logged  # reported, with its error
    assert SECRET not in logged
    assert "ConnectionError" not in logged


def test_a_warning_a_context_records_is_recorded_not_logged(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """From 3.14, with context-aware warnings (``-X context_aware_warnings``, the default
    when free-threaded), ``catch_warnings(record=True)`` leaves the warnings' hook in
    place and sets its context's ``log``, which Python's own hook appends to: such a
    warning is recorded, not logged. 3.11 has no such context: one is made here, with
    a hook that records as 3.14's own begins (the real ones cannot run on 3.11)."""
    context = SimpleNamespace(log=None)

    def pythons_hook(message: warnings.WarningMessage) -> None:
        assert context.log is not None, "Python's hook wrote a warning the log should take"
        context.log.append(message)

    monkeypatch.setattr(warnings, "_get_context", lambda: context, raising=False)
    monkeypatch.setattr(warnings, "_showwarnmsg_impl", pythons_hook)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        logs.configure("info", "json")
        context.log = recorded = []
        warnings.warn("recorded", UserWarning, stacklevel=1)
        context.log = None
        warnings.warn("logged", UserWarning, stacklevel=1)
    logs.drain()
    assert [str(message.message) for message in recorded] == ["recorded"]
    [logged] = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert "UserWarning: logged" in logged


class FailingFormatter(logging.Formatter):
    """A formatter that fails on every record, as a broken one of a library's might."""

    def format(self, record: logging.LogRecord) -> str:
        raise ValueError("the formatter failed")


def test_a_report_that_fails_in_turn_is_counted(capsys: pytest.CaptureFixture[str]) -> None:
    """A record the handler cannot write is reported; when that report fails too, it is
    dropped (it would fail again), and so is the record: both are counted, as every
    line the log drops is."""
    logs.configure("info", "json")
    [handler] = logging.getLogger().handlers
    handler.setFormatter(FailingFormatter())
    logging.getLogger("node.peers").warning("linked")
    logging.getLogger("node.peers").warning("linked again")
    logs.drain()
    assert capsys.readouterr().err == ""
    assert logs.lines_dropped() == dict.fromkeys(logs.REASONS, 0) | {"report_failed": 4}


class Leaky:
    """An argument whose ``__str__`` fails with an error that quotes a secret, and whose
    ``repr`` holds it too."""

    def __str__(self) -> str:
        raise ValueError(f"cannot show http://hub:7878/?token={SECRET}")

    def __repr__(self) -> str:
        return f"Leaky(token={SECRET!r})"


@pytest.mark.parametrize("log_format", logs.FORMATS)
@pytest.mark.parametrize("as_message", [False, True], ids=["argument", "message"])
def test_the_report_of_a_record_leaves_out_its_errors_text(
        log_format: str, as_message: bool, capsys: pytest.CaptureFixture[str]) -> None:
    """An argument (or a message that is not a string) whose ``__str__`` fails with a
    secret in its error: the report names the error's type and where it was raised,
    not its text, nor the object's ``repr``."""
    logs.configure("info", log_format)
    if as_message:
        logging.getLogger("node.peers").warning(Leaky())
    else:
        logging.getLogger("node.peers").warning("linked to %s", Leaky())
    logs.drain()
    logged = capsys.readouterr().err
    assert SECRET not in logged
    assert "in __str__" in logged or '"__str__"' in logged  # where it was raised
    if log_format == "json":
        [reported] = [json.loads(line) for line in logged.splitlines()]
        [error] = reported["exception"]
        assert (error["exc_type"], error["exc_value"]) == ("ValueError",
                                                           log_hooks.TEXT_LEFT_OUT)
        assert error["frames"][-1]["name"] == "__str__"
        event = reported["event"]
    else:
        event = logged
        assert f"ValueError: {log_hooks.TEXT_LEFT_OUT}" in logged
    wanted = "message of type Leaky" if as_message else "arguments of types Leaky"
    assert wanted in event


@pytest.mark.parametrize("logged_at", ["critical", "debug"])
def test_a_record_the_handler_cannot_write_is_reported_where_it_got(
        logged_at: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The report of a record the handler cannot write goes wherever the record went: at
    the record's level, ERROR at least, and past the loggers' levels as the record was.
    Under ``--log-level critical`` a CRITICAL record's report shows (at ERROR it was
    filtered out: lost, unseen and uncounted); so does a DEBUG record's, of a logger set
    lower than the root."""
    logs.configure("critical", "json")
    logger = logging.getLogger("node.peers.loud")
    if logged_at == "debug":
        logger.setLevel(logging.DEBUG)
    try:
        getattr(logger, logged_at)("dialed %d times", SECRET)
    finally:
        logger.setLevel(logging.NOTSET)
    logs.drain()
    [reported] = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert (reported["logger"], reported["level"]) == (
        log_hooks.LOGGING_ERRORS, "critical" if logged_at == "critical" else "error")
    assert "a record of node.peers.loud logged at " in reported["event"]
    assert SECRET not in json.dumps(reported)
    assert logs.lines_dropped() == dict.fromkeys(logs.REASONS, 0)


def test_a_record_of_a_logger_that_does_not_propagate_is_reported_by_its_handler(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A logger that does not propagate, with the log's handler of its own (here writing
    elsewhere than the root's): the report of a record that handler cannot write is
    written by it too, where the record would have gone, not by the root's handler."""
    logs.configure("info", "json")
    [root_handler] = logging.getLogger().handlers
    written = io.StringIO()
    own = logs._Handler(written)
    own.setFormatter(root_handler.formatter)
    logger = logging.getLogger("node.quiet")
    logger.propagate = False
    logger.addHandler(own)
    try:
        logger.warning("dialed %d times", SECRET)
    finally:
        logger.removeHandler(own)
        logger.propagate = True
    logs.drain()
    assert capsys.readouterr().err == ""
    [reported] = [json.loads(line) for line in written.getvalue().splitlines()]
    assert (reported["logger"], reported["level"]) == (log_hooks.LOGGING_ERRORS, "error")
    assert "a record of node.quiet logged at " in reported["event"]
    assert SECRET not in written.getvalue()


class Seen(logging.Filter):
    """Counts the records a handler is handed (each an attempt to write one)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record.name)
        return True


def test_a_record_a_handler_of_anothers_cannot_write_is_counted_not_written(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A logger that does not propagate, with a plain ``logging.StreamHandler`` of its own
    (a library's, writing to stderr): a record it cannot write is counted
    (``foreign_failed``), and nothing of it is written: not as Python does (``--- Logging
    error ---``, the arguments and the error's text), nor a report by the log's handler,
    which is not handed anything."""
    logs.configure("info", "json")
    [root_handler] = logging.getLogger().handlers
    seen = Seen()
    root_handler.addFilter(seen)
    own = logging.StreamHandler()
    logger = logging.getLogger("vendor.foreign")
    logger.propagate = False
    logger.addHandler(own)
    try:
        logger.warning("dialed %d times", SECRET)
        logger.warning("linked to %s", Leaky())
    finally:
        logger.removeHandler(own)
        logger.propagate = True
    logs.drain()
    assert capsys.readouterr().err == ""
    assert seen.records == []
    assert logs.lines_dropped() == dict.fromkeys(logs.REASONS, 0) | {"foreign_failed": 2}


def blocks_tenant(record: logging.LogRecord) -> bool:
    """A filter as a library's: it reads what its records carry (``extra=``), and fails
    on a record without it."""
    return bool(record.tenant != "blocked")  # type: ignore[attr-defined]


@pytest.mark.parametrize("whose", ["the log's", "another's"])
def test_a_handlers_filter_that_fails_on_the_report_does_not_raise_into_the_caller(
        whose: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A record a handler cannot write, whose report its filter would fail on (the
    filter reads an attribute its records are given with ``extra=``): the log call
    returns, as logging's never raises into what logged. The log's record, lost with its
    report, is counted with it; another's is counted, no report made."""
    logs.configure("info", "json")
    [root_handler] = logging.getLogger().handlers
    handler = root_handler if whose == "the log's" else logging.StreamHandler()
    handler.addFilter(blocks_tenant)
    logger = logging.getLogger("node.tenants")
    if handler is not root_handler:
        logger.propagate = False
        logger.addHandler(handler)
    try:
        logger.warning("dialed %d times", SECRET, extra={"tenant": "t1"})
        logger.warning("logged after it", extra={"tenant": "t1"})
    finally:
        handler.removeFilter(blocks_tenant)
        logger.removeHandler(handler)
        logger.propagate = True
    logs.drain()
    logged = capsys.readouterr().err
    assert SECRET not in logged and "logged after it" in logged
    counted = {"report_failed": 2} if whose == "the log's" else {"foreign_failed": 1}
    assert logs.lines_dropped() == dict.fromkeys(logs.REASONS, 0) | counted


@pytest.mark.parametrize("failing", ["full disk", "closed stream"])
def test_a_handler_of_anothers_failing_on_io_has_its_records_counted(
        failing: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A library's handler that fails on every write (a file on a full disk, a closed
    stream): its records are counted, each tried once (not handed back to it for a
    report, a second blocking attempt failing again), and nothing of them reaches the
    log: not a message the library formatted itself, a token in it."""
    logs.configure("info", "json")
    if failing == "full disk":
        if not Path("/dev/full").exists():
            pytest.skip("no /dev/full here")
        handler: logging.Handler = logging.FileHandler("/dev/full")
    else:
        stream = (tmp_path / "closed.log").open("w")
        stream.close()
        handler = logging.StreamHandler(stream)
    seen = Seen()
    handler.addFilter(seen)
    logger = logging.getLogger("vendor.shipped")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("shipped %s", SECRET)
        logger.warning(f"login token={SECRET}")  # formatted by the library itself
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        with contextlib.suppress(OSError):  # what it holds is flushed, to the full disk
            handler.close()
    logs.drain()
    assert seen.records == ["vendor.shipped"] * 2
    assert capsys.readouterr().err == ""
    assert logs.lines_dropped() == dict.fromkeys(logs.REASONS, 0) | {"foreign_failed": 2}


#: A handler beside the log's on the root (a collector's) fails a record (thread a), while
#: the log's handler formats another (thread b), whose argument warns: the warning goes to
#: the root's handlers, the failing one too. Each thread holds one handler's lock; were
#: the failure reported through the log's handler, each would wait for the other's.
CROSSED_HANDLERS = """
import logging, os, threading, warnings
from node import logs
logs.configure("info", "json")
warnings.simplefilter("always")
failing_holds_its_lock, formatting = threading.Event(), threading.Event()

class Failing(logging.Handler):
    def emit(self, record):
        try:
            failing_holds_its_lock.set()
            formatting.wait(10)
            raise OSError(28, "No space left on device")
        except OSError:
            self.handleError(record)

class Old:
    def __str__(self):
        formatting.set()
        warnings.warn("Old.__str__ is deprecated", DeprecationWarning)
        return "old"

logging.getLogger().addHandler(Failing())
a = threading.Thread(target=logging.getLogger("node.a").warning, args=("plain",))
b = threading.Thread(target=logging.getLogger("node.b").warning, args=("value %s", Old()))
a.start()
failing_holds_its_lock.wait(10)
b.start()
a.join(20)
b.join(20)
logs.drain()  # the lines queued: os._exit does not wait for them
try:
    print("stuck" if a.is_alive() or b.is_alive() else "done", flush=True)
    print(logs.lines_dropped()["foreign_failed"], flush=True)
finally:
    os._exit(0)  # a thread stuck on a handler's lock would hold logging's shutdown
"""


def test_a_handler_of_anothers_failing_beside_the_logs_does_not_deadlock() -> None:
    """The failure of a handler beside the log's, counted under its own lock alone, lets
    the thread that formats for the log's handler, and logs to it, go on: both log calls
    return, and the three records it failed (a's, b's warning, b's) are counted."""
    done = subprocess.run([sys.executable, "-c", CROSSED_HANDLERS], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["done", "3"], done.stderr
    logged = [json.loads(line)["event"] for line in done.stderr.splitlines()]
    assert logged[0] == "plain" and logged[-1] == "value old"
