"""The ``clawsync`` client commands: they talk to a node over HTTP and never load the
server. ``group`` is the command group; ``serve`` is added to it by ``node.main``.

May import: crdt, node, node.client, node.openclaw
"""

from __future__ import annotations

import sys
from typing import NoReturn

from node.interrupt import die_of


def interrupted() -> NoReturn:
    """End the command after Ctrl-C: one line on stderr, no traceback, and death by
    SIGINT (a shell shows 130). Standard library only: ``node.main`` calls it while the
    commands are still loading."""
    sys.stderr.write("\ninterrupted\n")  # the newline ends the terminal's "^C" echo
    die_of()
