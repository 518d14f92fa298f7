"""Bounding the lines of one kind that others can make this node log.

A line logged for what a stranger sends (a malformed request, a device id a dialer
claims) costs the stranger nothing and fills the disk: at most ``lines_max`` such lines
per window of ``window_s`` are logged, and the count of those that were not is said
once the next window opens, by its first line.

>>> lines = LineWindow(lines_max=2, window_s=60.0)
>>> [lines.take(now=0.0) for _ in range(4)]
[0, 0, None, None]
>>> lines.take(now=60.0)  # a new window: logged, after the 2 of the last that were not
2
>>> lines.take(now=61.0)
0
"""

from __future__ import annotations


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
            return None
        self._lines += 1
        held, self._held = self._held, 0
        return held
