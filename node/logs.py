"""Logging setup: structlog, as readable console lines or as JSON for log collectors.

Library logs that go through the standard ``logging`` module (aiohttp's) are routed to
the same stream at the same level, so one setting controls everything. Call
``configure`` once, at start-up (``node.server.run.run`` does).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

FORMATS = ("console", "json")
LEVELS = ("debug", "info", "warning", "error", "critical")


def configure(level: str = "info", log_format: str = "console") -> None:
    """Set up structlog and stdlib logging; ``ValueError`` for an unknown level or format."""
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
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *exceptions,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=numeric, stream=sys.stderr, force=True,
                        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")
