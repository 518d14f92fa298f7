"""Records a handler cannot write: the node's handler reports each as a line of the log
(without the record's arguments' or the error's text: a secret, maybe), wherever the
record went and at its own level; a report that fails in turn is counted; a record
another library's handler cannot write is only counted (``foreign_failed``), never
written, and takes no lock of the node's. The first such report, as a line of each
format: ``test_logs.py``."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from node import log_hooks, logs

SECRET = "local-secret-4c1d"

#: Each test configures logging; the fixture (tests/node/conftest.py) puts it back.
pytestmark = pytest.mark.usefixtures("restore_logging")


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
    the record's level, ERROR at least, and past the loggers' levels as the record was:
    a CRITICAL record's report is CRITICAL, and a DEBUG record's, of a logger set lower
    than the root, shows (it is not filtered out: lost, unseen and uncounted)."""
    logs.configure("error", "json")
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
