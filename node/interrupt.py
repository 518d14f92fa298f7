"""Ending the process as a signal (Ctrl-C's SIGINT) ends it when nothing catches it, and
ending a stopped node's process without Python's teardown. Standard library only:
``node.main`` comes here while the commands are still loading."""

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
    _write_out()  # the process ends without Python's exit
    with contextlib.suppress(ValueError, OSError):
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    raise SystemExit(128 + number)


def end_now(code: int = 0) -> NoReturn:
    """End the process with exit code ``code`` at once, skipping Python's teardown, as
    ``die_of`` does: for ``serve`` once its node has stopped, when everything it had to
    write is written (its store closed, its log drained). The teardown of a node that ran
    a while (freeing its heap, closing SQLite connections other threads opened, which
    checkpoints the WAL) took 0.4 to 1.2 s on a busy two-core machine, counted in a
    service manager's stop timeout; what it would write is already durable (the log is
    crash-safe, and the WAL is part of the database)."""
    _write_out()
    os._exit(code)


def _write_out() -> None:
    """What the process has yet to write: stdout, stderr and the log's last lines."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if "logging" in sys.modules:  # serve's log: its last lines written out
        sys.modules["logging"].shutdown()
    for stream in (sys.stdout, sys.stderr):  # what the log's handlers wrote last
        with contextlib.suppress(Exception):
            stream.flush()
