"""The worker's side of ``node.workers``: the loop a worker process runs, started as
``python -m node.worker_loop MEMORY_BYTES MODULE...``.

A module of its own, importing only a few modules of the standard library: run as
``node.workers``, every worker imported asyncio and the pool's other needs first (about
30 ms of CPU per start), which the functions it runs never use. What those need, the
worker imports from its command line (``preload``) and when it unpickles a call. For
the same reason it reads and writes its pipes itself, in the frames of
``multiprocessing.connection.Connection`` that the node's end uses: importing that
module costs a start about 14 ms of CPU more, for a length and bytes per message.
"""

from __future__ import annotations

import importlib
import os
import pickle
import resource
import signal
import struct
import sys
from typing import Any

#: A frame's length, as ``Connection`` writes it: a signed 4-byte big-endian number; for
#: messages longer than ``_SHORT_MAX``, -1 there and the length in the next 8 bytes.
_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")
_SHORT_MAX = 0x7FFFFFFF


def serve(memory_bytes: int, preload: list[str]) -> None:
    """The worker's loop: limit memory, import ``preload``, say so, then answer calls
    until the pipe closes."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # Ctrl-C in a terminal, and the terminal closing (SIGHUP), reach the whole process
    # group: the node stops on them, and its worker ends when the node closes its pipe
    # (or exits), not in the middle of a call, with a traceback on the node's terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    calls, answers = os.dup(0), os.dup(1)
    os.dup2(2, 1)  # stray prints must not corrupt the answers
    for module in preload:
        importlib.import_module(module)
    try:
        send(answers, b"ready")
    except OSError:
        return  # the node is gone (killed while this worker started): nothing to serve
    while True:
        try:
            call = receive(calls)
        except (EOFError, OSError):
            return
        try:
            fn, args = pickle.loads(call)
            answer: tuple[bool, Any] = (True, fn(*args))
        except Exception as exc:  # the caller decides; the worker stays usable
            answer = (False, (type(exc).__name__, str(exc)[:200]))
        try:
            send(answers, pickle.dumps(answer))
        except OSError:
            return


def send(fd: int, data: bytes) -> None:
    """``data`` as one frame (``Connection.send_bytes``'s) on ``fd``."""
    if len(data) > _SHORT_MAX:
        head = _SHORT.pack(-1) + _LONG.pack(len(data))
    else:
        head = _SHORT.pack(len(data))
    view = memoryview(head + data)
    while view:
        view = view[os.write(fd, view):]  # a pipe may take a long frame in parts


def receive(fd: int) -> bytes:
    """The bytes of the next frame on ``fd`` (as ``Connection.recv_bytes``); EOFError if
    the pipe closed before it, OSError if it closed inside it."""
    (size,) = _SHORT.unpack(_read(fd, _SHORT.size, first=True))
    if size == -1:
        (size,) = _LONG.unpack(_read(fd, _LONG.size))
    return _read(fd, size)


def _read(fd: int, size: int, first: bool = False) -> bytes:
    """Exactly ``size`` bytes of ``fd``; at its end, EOFError if nothing was read of
    the frame yet (``first``), else OSError."""
    parts, remaining = [], size
    while remaining > 0:
        part = os.read(fd, remaining)
        if not part:
            if first and remaining == size:
                raise EOFError
            raise OSError("the pipe closed inside a message")
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2:])
