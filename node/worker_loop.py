"""The worker's side of ``node.workers``: the loop a worker process runs, started as
``python -m node.worker_loop MEMORY_BYTES MODULE...``.

A module of its own, importing only the standard library's process and pipe plumbing:
run as ``node.workers``, every worker imported asyncio and the pool's other needs first
(about 30 ms of CPU per start), which the functions it runs never use. What those need,
the worker imports from its command line (``preload``) and when it unpickles a call.
"""

from __future__ import annotations

import importlib
import os
import pickle
import resource
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any


def serve(memory_bytes: int, preload: list[str]) -> None:
    """The worker's loop: limit memory, import ``preload``, say so, then answer calls
    until the pipe closes."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # Ctrl-C in a terminal, and the terminal closing (SIGHUP), reach the whole process
    # group: the node stops on them, and its worker ends when the node closes its pipe
    # (or exits), not in the middle of a call, with a traceback on the node's terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    calls = Connection(os.dup(0), writable=False)
    answers = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # stray prints must not corrupt the answers
    for module in preload:
        importlib.import_module(module)
    try:
        answers.send_bytes(b"ready")
    except OSError:
        return  # the node is gone (killed while this worker started): nothing to serve
    while True:
        try:
            call = calls.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            fn, args = pickle.loads(call)
            answer: tuple[bool, Any] = (True, fn(*args))
        except Exception as exc:  # the caller decides; the worker stays usable
            answer = (False, (type(exc).__name__, str(exc)[:200]))
        try:
            answers.send(answer)
        except OSError:
            return


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2:])
