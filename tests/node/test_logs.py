"""Logging set-up: tracebacks never show local variables (they hold tokens and secrets)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from node import logs

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
