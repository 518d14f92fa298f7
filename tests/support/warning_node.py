"""A build of clawsync that, told by a signal once it serves, does what Python reports
on stderr itself unless the log takes it: SIGUSR1 raises warnings, SIGUSR2 drops
objects whose finalizer raises ("Exception ignored in"). Each is done in the main thread,
the event loop's, as a library's warning would be. It stands for a node whose stderr
reader stalled in ``tests/integration/test_serve_log.py``: run it as the ``clawsync``
command, ``python -m tests.support.warning_node serve ...``. Once the signal's work is
done it creates the file named by ``DONE_ENV``, so that a test knows it ran (a handler
held by its write never gets there). Importing this module changes nothing; only running
it does."""

from __future__ import annotations

import os
import signal
import warnings
from pathlib import Path
from types import FrameType

from node.main import main

#: The environment variable naming the file created once a signal's work is done.
DONE_ENV = "WARNING_NODE_DONE"
#: Reports each signal makes, and the characters of each message: together several
#: times what a full pipe of the test's takes.
REPORTS = 40
MESSAGE_CHARS = 300


class Broken:
    """An object whose finalizer raises: Python can only report it."""

    def __init__(self, number: int) -> None:
        self.number = number

    def __del__(self) -> None:
        raise RuntimeError(f"finalizer {self.number} failed " + "x" * MESSAGE_CHARS)


def report(signum: int, frame: FrameType | None) -> None:
    for number in range(REPORTS):  # each message its own: each is shown
        if signum == signal.SIGUSR1:
            warnings.warn(f"warning {number} " + "w" * MESSAGE_CHARS, RuntimeWarning,
                          stacklevel=1)
        else:
            Broken(number)  # dropped at once: its finalizer runs here
    Path(os.environ[DONE_ENV]).touch()


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, report)
    signal.signal(signal.SIGUSR2, report)
    main(prog_name="clawsync")
