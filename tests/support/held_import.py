"""clawsync's command line, held at its first read of a session file until a file named
by ``HOLD_ENV`` is gone: a real ``openclaw import`` that holds its data folder (its lock
taken, its words written) for as long as a test needs, now that a FIFO (what once held
it) is refused as no regular file without being waited on. Run it as the ``clawsync``
command: ``python -m tests.support.held_import --node URL openclaw import ...``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import BinaryIO

from node.main import main
from node.openclaw import jsonl, legacy_files

#: The environment variable naming the file whose removal lets the import read on.
HOLD_ENV = "CLAWSYNC_TEST_HOLD"
#: Seconds between looks at that file.
_LOOK_S = 0.05

_opened = legacy_files.opened


def _held_opened(path: Path) -> BinaryIO:
    hold = Path(os.environ[HOLD_ENV])
    while hold.exists():
        time.sleep(_LOOK_S)
    return _opened(path)


if __name__ == "__main__":
    # Set as jsonl's own name: it imported the function, and reads session files with it.
    vars(jsonl)["opened"] = _held_opened
    main(prog_name="clawsync")
