"""Logging set-up: tracebacks never show local variables (they hold tokens and secrets);
requests aiohttp's parser refuses are logged in one short line each, a bounded number."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from aiohttp.http_exceptions import BadHttpMessage

from node import logs
from node.logs import RefusedRequests

SECRET = "local-secret-4c1d"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


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


def test_lines_nobody_can_read_are_dropped_and_other_write_errors_raised() -> None:
    """A pipe whose reader exited (EPIPE, as a hung-up terminal's EIO): the line is lost,
    the caller goes on, and the pipe's descriptor writes nowhere from then on, so that
    what is buffered flushes too. A full disk is an error of the file, told as before."""
    reader, writer = os.pipe()
    os.close(reader)
    with os.fdopen(writer, "w") as pipe:
        stream = logs.LogStream(pipe)
        stream.write("stopping\n")
        stream.flush()
        stream.write("stopped\n")
        pipe.flush()  # /dev/null now
    full = open("/dev/full", "w")  # noqa: SIM115  (closed below, where it fails too)
    try:
        stream = logs.LogStream(full)
        stream.write("serving\n")
        with pytest.raises(OSError, match="No space left"):
            stream.flush()
    finally:
        with contextlib.suppress(OSError):
            full.close()


def test_every_line_dropped_once_the_reader_is_gone_is_counted() -> None:
    """A pipe whose reader exited, written line by line as stderr is: the line whose write
    failed and every one after it are counted, whoever writes them (structlog writes a
    line and its newline apart, logging at once; a traceback is as many lines)."""
    reader, writer = os.pipe()
    os.close(reader)
    with os.fdopen(writer, "w", buffering=1) as pipe:
        stream = logs.LogStream(pipe)
        stream.write("stopping\n")
        assert stream.lines_dropped == 1
        stream.write("stopped")
        stream.write("\n")
        stream.write("Traceback (most recent call last):\nValueError: x\n")
        stream.flush()
        assert stream.lines_dropped == 4


def test_a_disk_error_of_a_log_file_is_raised(tmp_path: Path) -> None:
    """EIO from a regular file is its disk failing, not a reader gone: raised, as a full
    disk is, and its descriptor still writes to the file. (A disk that fails on demand
    cannot be had here: the file's writes fail as a failing disk's would.)"""

    class FailingDisk(io.TextIOWrapper):
        def write(self, text: str) -> int:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    with FailingDisk(open(tmp_path / "node.log", "wb"), write_through=True) as file:
        stream = logs.LogStream(file)
        with pytest.raises(OSError, match="Input/output error"):
            stream.write("serving\n")
        assert stream.lines_dropped == 0
        os.write(file.fileno(), b"still the file\n")
    assert (tmp_path / "node.log").read_text() == "still the file\n"

