"""Running a command with its output on a pseudo-terminal of a given width, as a person's
terminal is: what rich draws there (widths, wrapping) is not what it writes to a pipe."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import termios

from tests.support.processes import CLI_TIMEOUT_S

#: The escape sequences rich writes to a terminal (colours, styles), to be removed
#: before the lines are compared.
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_a_terminal(args: list[str], env: dict[str, str], columns: int) -> tuple[str, bytes]:
    """Run ``args`` with stdout on a pseudo-terminal ``columns`` wide (24 rows), until it
    exits, which must be with 0; what it wrote to the terminal, and its stderr."""
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=secondary,
                               stderr=subprocess.PIPE, env=env)
    os.close(secondary)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the command exited and closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
    _out, err = process.communicate(timeout=CLI_TIMEOUT_S)
    assert process.returncode == 0, err
    return b"".join(chunks).decode(), err
