"""The ``clawsync`` client commands: they talk to a node over HTTP and never load the
server. ``group`` is the command group; ``serve`` is added to it by ``node.main``.

May import: crdt, node, node.client, node.openclaw
"""

from __future__ import annotations

import sys
from typing import NoReturn

#: The exit code of a command that Ctrl-C interrupted: 128 + SIGINT, what a shell
#: reports for a program that SIGINT ended, so scripts can tell it from a failure (1).
INTERRUPTED = 130


def interrupted() -> NoReturn:
    """End the command after Ctrl-C: one line on stderr and ``INTERRUPTED``, no
    traceback. Standard library only: ``node.main`` calls it while the commands are
    still loading."""
    sys.stderr.write("\ninterrupted\n")  # the newline ends the terminal's "^C" echo
    raise SystemExit(INTERRUPTED)
