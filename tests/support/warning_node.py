"""A build of clawsync that, told by SIGUSR1 once it serves, does what Python reports on
stderr itself unless the log takes it, as ``REPORT_ENV`` names (``REPORTS_MADE``):
raises warnings; drops objects whose finalizer raises ("Exception ignored in"); runs
threads that fail, each waited for; logs records whose arguments do not fit their
message (logging's handler reports each); or, ``uncaught``, ends once stopped with an
exception nothing catches. Each is done in the main thread, the event loop's, as a
library's would be. It stands for a node whose stderr reader stalled in
``tests/integration/test_serve_log.py``: run it as the ``clawsync`` command,
``python -m tests.support.warning_node serve ...``. Once the signal's work is done it
creates the file named by ``DONE_ENV``, so that a test knows it ran (a handler held by
its write never gets there). Importing this module changes nothing; only running it
does."""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from pathlib import Path
from types import FrameType
from typing import NoReturn

from node.interrupt import end_now
from node.main import main
from node.server import command

#: The environment variable naming the file created once a signal's work is done.
DONE_ENV = "WARNING_NODE_DONE"
#: The environment variable naming what SIGUSR1 makes Python report.
REPORT_ENV = "WARNING_NODE_REPORT"
REPORTS_MADE = ("warnings", "finalizer-errors", "thread-errors", "handler-errors",
                "uncaught")
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


class Uncaught(Exception):
    """What ends the process, once stopped, after SIGUSR1 under ``uncaught``."""


def fail(number: int) -> None:
    raise RuntimeError(f"thread {number} failed " + "t" * MESSAGE_CHARS)


uncaught_asked = False


def report(signum: int, frame: FrameType | None) -> None:
    global uncaught_asked
    made = os.environ[REPORT_ENV]
    for number in range(REPORTS):  # each message its own: each is shown
        if made == "warnings":
            warnings.warn(f"warning {number} " + "w" * MESSAGE_CHARS, RuntimeWarning,
                          stacklevel=1)
        elif made == "finalizer-errors":
            Broken(number)  # dropped at once: its finalizer runs here
        elif made == "thread-errors":
            thread = threading.Thread(target=fail, args=(number,), name=f"failing-{number}")
            thread.start()
            thread.join()  # held while the thread's report is held
        elif made == "handler-errors":
            logging.getLogger("report").warning(f"record {number} %d " + "h" * MESSAGE_CHARS,
                                                "not a number")
        elif made == "uncaught":
            uncaught_asked = True
    Path(os.environ[DONE_ENV]).touch()


def end_uncaught(code: int = 0) -> NoReturn:
    """``serve``'s end once its node stopped (``node.interrupt.end_now``), which under
    ``uncaught`` raises instead: the process ends with a long traceback."""
    if uncaught_asked:
        raise Uncaught("u" * REPORTS * MESSAGE_CHARS)
    end_now(code)


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, report)
    command.end_now = end_uncaught  # type: ignore[attr-defined]  # imported there by name
    main(prog_name="clawsync")
