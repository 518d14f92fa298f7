"""Bounding the lines of one kind that others can make this node log.

A line logged for what a stranger sends (a malformed request, a device id a dialer
claims) costs the stranger nothing and fills the disk: at most ``lines_max`` such lines
per window of ``window_s`` are logged, and the count of those that were not is said
once the next window opens, by its first line. A kind of line that stops coming says
no count: every line held back is also counted in the process's lines not logged
(``lines_held``, the metric ``clawsync_log_lines_dropped_total`` as ``held``), so none
is lost unsaid.

>>> lines = LineWindow(lines_max=2, window_s=60.0)
>>> [lines.take(now=0.0) for _ in range(4)]
[0, 0, None, None]
>>> lines.take(now=60.0)  # a new window: logged, after the 2 of the last that were not
2
>>> lines.take(now=61.0)
0
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

#: Why the lines counted here were not logged (``node.logs.REASONS``): held back by a
#: full window.
REASONS = ("held",)

#: Lines held back by every window since ``reset``, under ``_held_lock`` (a window's
#: lines may be taken on any thread that logs: aiohttp's filter runs in the logging one).
_held_total = 0
_held_lock = threading.Lock()


def lines_held() -> int:
    """Lines held back by a window (of any kind) since ``reset``: the next line of a kind
    says how many of its own, if one comes."""
    with _held_lock:
        return _held_total


def reset() -> None:
    """Count the lines held back from 0 again (``node.logs.configure``)."""
    global _held_total
    with _held_lock:
        _held_total = 0


class LineWindow:
    """At most ``lines_max`` lines of one kind per ``window_s`` (a window opens with its
    first line), in seconds of whatever clock ``take`` is given."""

    def __init__(self, lines_max: int, window_s: float) -> None:
        self.lines_max = lines_max
        self.window_s = window_s
        self._window_start: float | None = None
        self._lines = 0
        self._held = 0

    def take(self, now: float) -> int | None:
        """None if a line may not be logged at ``now``; else how many were not logged
        before it, since the last that was (0 mostly), which it is to say."""
        if self._window_start is None or now - self._window_start >= self.window_s:
            self._window_start, self._lines = now, 0
        if self._lines >= self.lines_max:
            self._held += 1
            global _held_total
            with _held_lock:
                _held_total += 1
            return None
        self._lines += 1
        held, self._held = self._held, 0
        return held


def may_log(lines: LineWindow, now: float, event: str, say: Callable[..., Any]) -> bool:
    """Whether a line ``event`` may be logged at ``now`` (``lines`` bounds them); those
    not logged before it are counted in a line of their own, first (said with ``say``,
    at the line's level)."""
    held = lines.take(now)
    if held:
        say("lines not logged", line=event, count=held, window_s=lines.window_s)
    return held is not None


def level_on_change(said: str | None, saying: str, level: int) -> int:
    """The level of a line said once per change of its reason: ``level`` when ``saying``
    is not what was said last of the same thing (``said``), else debug, so that an
    address failing the same way at every try writes no line each time.

    >>> [logging.getLevelName(level_on_change(said, "refused", logging.INFO))
    ...  for said in (None, "timed out", "refused")]
    ['INFO', 'INFO', 'DEBUG']
    """
    return logging.DEBUG if saying == said else level
