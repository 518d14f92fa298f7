"""Argument types for the command lines of the campaigns and the benchmarks: a bad value
is a usage error before any node starts or any folder is made (a zero or a typo used to
fail part way, with a traceback).

>>> at_least(2)("1")
Traceback (most recent call last):
argparse.ArgumentTypeError: must be at least 2, not 1
>>> positive_seconds("0.5")
0.5
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


def at_least(low: float, kind: Callable[[str], float] = int, *, high: float | None = None,
             why: str = "") -> Callable[[str], Any]:
    """A ``kind`` number, ``low`` or more, and at most ``high`` if given (``why`` says
    why, in the error).

    >>> at_least(1, high=256, why="the node's connections per address")("300")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be at most 256 (the node's connections per address), not 300
    """

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            whole = " whole" if kind is int else ""
            raise argparse.ArgumentTypeError(f"{text!r} is not a{whole} number") from None
        if not value >= low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}, not {text}")
        if high is not None and not value <= high:
            because = f" ({why})" if why else ""
            raise argparse.ArgumentTypeError(f"must be at most {high:g}{because}, not {text}")
        return value

    return parse


def above_zero(unit: str = "") -> Callable[[str], float]:
    """A finite number more than 0, of ``unit`` (named in the error)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be more than 0{unit}, not {text}")
        return value

    return parse


positive_int = at_least(1)
positive_seconds = above_zero(" seconds")
