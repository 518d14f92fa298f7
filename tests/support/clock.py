"""A clock the tests move by hand, for what takes one to bound lines by window."""

from __future__ import annotations


class Clock:
    """Seconds that move only when a test sets ``now_s``, or by ``step_s`` each time the
    clock is read."""

    def __init__(self, step_s: float = 0.0) -> None:
        self.now_s, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        self.now_s += self.step_s
        return self.now_s
