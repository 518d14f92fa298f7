"""The ``clawsync`` command with OpenClaw's per-machine lock folders under a folder of
the test's own instead of the shared ``/tmp``: an export run by a test then leaves no
lock file where other people's OpenClaw keeps them.

    python -m tests.support.private_locks ROOT [clawsync arguments...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import node.openclaw.state_locks
from node.main import main


def run() -> None:
    root, *args = sys.argv[1:]
    node.openclaw.state_locks.LOCKS_ROOT = Path(root)
    main(args, prog_name="clawsync")


if __name__ == "__main__":
    run()
