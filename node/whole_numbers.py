"""``WholeRange``: click's ``IntRange`` with a refusal people read. click says of ``abc``
"'abc' is not a valid integer range" (its type's name), and of ``70000`` "70000 is not in
the range 0<=x<=65535"; this says what is wanted for both: "'abc' is not a whole number
from 0 to 65535". Shared by ``serve`` and the client commands.

>>> WholeRange(0, 65535).convert("7878", None, None)
7878
>>> WholeRange(0, 65535).convert("abc", None, None)
Traceback (most recent call last):
click.exceptions.BadParameter: 'abc' is not a whole number from 0 to 65535.
>>> WholeRange(0, 65535).convert("70000", None, None)
Traceback (most recent call last):
click.exceptions.BadParameter: '70000' is not a whole number from 0 to 65535.
>>> WholeRange(min=1).convert("x", None, None)
Traceback (most recent call last):
click.exceptions.BadParameter: 'x' is not a whole number of at least 1.
"""

from __future__ import annotations

from typing import Any

import click


class WholeRange(click.IntRange):
    """``IntRange`` whose refusal, of what is no whole number or one out of the range,
    names the range wanted."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:  # no whole number, or one out of the range
            self.fail(f"{value!r} is not {self.wanted()}.", param, ctx)

    def wanted(self) -> str:
        """What the range takes, in words.

        >>> WholeRange(max=9).wanted()
        'a whole number of at most 9'
        """
        if self.min is not None and self.max is not None:
            return f"a whole number from {self.min} to {self.max}"
        if self.min is not None:
            return f"a whole number of at least {self.min}"
        if self.max is not None:
            return f"a whole number of at most {self.max}"
        return "a whole number"
