"""Text from elsewhere made safe to print on a terminal: kept in a module of its own,
without imports, so that the HTTP client (``node.client``) escapes a node's words where
it receives them, and the commands (``node.cli.output``) the content they print.
"""

from __future__ import annotations

import re

#: C0 and C1 control characters and DEL: a terminal obeys escape sequences made of them.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with each control character shown as an escape (``\\x1b``): content
    comes from whoever can write to a session, or from a node (its error messages), and
    printed raw, an escape sequence in it would retitle, clear or rewrite the reader's
    terminal. Escaping twice changes nothing more.

    >>> printable("T\\x1b]0;PWNED\\x07")
    'T\\\\x1b]0;PWNED\\\\x07'
    >>> printable(printable("a\\nb")) == printable("a\\nb")
    True
    """
    return _CONTROLS.sub(lambda found: f"\\x{ord(found.group()):02x}", text)
