"""Logging set-up: tracebacks never show local variables (they hold tokens and secrets);
what Python reports itself is logged; requests aiohttp's parser refuses are logged in
one short line each, a bounded number. The stream the lines go through:
``test_log_stream.py``; as the process exits: ``test_log_exit.py``; records a handler
cannot write, beyond the first report below: ``test_log_failures.py``."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
import structlog
from aiohttp.http_exceptions import BadHttpMessage

from node import log_hooks, log_stream, logs
from node.http.metrics import LogCollector
from node.logs import RefusedRequests
from node.server.command import serve
from tests.support.clock import Clock

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


def test_the_levels_are_those_serve_takes() -> None:
    """``configure`` takes the levels ``--log-level`` does, and no other (``critical``
    is no choice of the option's, the environment's or the config file's)."""
    [option] = [param for param in serve.params if param.name == "log_level"]
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == logs.LEVELS == ("debug", "info", "warning", "error")
    with pytest.raises(ValueError, match="log level 'critical' is not one of debug, info,"):
        logs.configure("critical")


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


def test_lines_held_back_are_counted_though_no_line_comes_after(tmp_path: Path) -> None:
    """A flood that stops says its count with no next line: the lines held back are
    counted among those not logged (``held``), and in the metric, as they are held."""
    with open(tmp_path / "node.log", "w") as file:
        logs.configure("info", stream=log_stream.LogStream(file))
        refused = RefusedRequests(lines_max=3, interval_s=60.0, clock=Clock())
        passed = [record for record in (refused_record() for _ in range(100))
                  if refused.filter(record)]
        assert len(passed) == 3
        assert logs.lines_dropped() == dict.fromkeys(logs.REASONS, 0) | {"held": 97}
        [family] = LogCollector().collect()
        held = [sample.value for sample in family.samples
                if sample.name.endswith("_total") and sample.labels["reason"] == "held"]
        assert held == [97]
        logs.configure("info", stream=log_stream.LogStream(file))
        assert logs.lines_dropped()["held"] == 0  # counted since ``configure``


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
