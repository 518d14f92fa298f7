"""Ending the process as a signal (Ctrl-C's SIGINT) ends it when nothing catches it.
Standard library only: ``node.main`` comes here while the commands are still loading."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import NoReturn


def die_of(number: int = signal.SIGINT) -> NoReturn:
    """End the process by signal ``number`` itself (SIGINT: Ctrl-C), once what it
    interrupted is cleaned up. A shell running a script stops the script only when its
    child died by SIGINT (an exit code of 130 is not enough), so a loop over clawsync
    commands stops on Ctrl-C; the shell shows 128 + the signal. ``SystemExit`` with that
    code when the signal cannot be sent or does not end the process (not the main
    thread, not a POSIX system)."""
    for stream in (sys.stdout, sys.stderr):  # the process ends without Python's exit
        with contextlib.suppress(Exception):
            stream.flush()
    if "logging" in sys.modules:  # serve's log: its last lines written out
        sys.modules["logging"].shutdown()
    with contextlib.suppress(ValueError, OSError):
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    raise SystemExit(128 + number)
