"""What the benchmarks' command lines share.

- ``parser``: ``python -m bench.NAME --help`` names the command as it is typed, takes
  its description from the module's docstring and shows every option's default;
- argument types (``at_least``, ``positive_int``, ``positive_float`` from
  ``tests.support.argtypes``, as the campaigns take them, and ``comma_list``);
- ``run``: Ctrl-C (or SIGTERM) ends a benchmark with one line and exit status 130 (143)
  once its ``with`` blocks have stopped its processes and removed its folders;
- ``Cluster``: ``tests.support.cluster.Cluster`` without its node logs on Ctrl-C or
  SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType

from node.limits import Limits
from tests.support import argtypes, cluster


class HelpFormatter(argparse.RawDescriptionHelpFormatter,
                    argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the docstring's line breaks (its lists stay lists) and adds each option's
    default to its help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # Flags have no value to show, and a missing value is described by the help.
        if action.default is None or action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


def parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of ``bench.<module>``, described by its docstring ``doc``."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=description(doc),
                                   epilog=needs(doc), formatter_class=HelpFormatter)


def paragraphs(doc: str | None) -> list[str]:
    return [part.strip("\n") for part in (doc or "").strip().split("\n\n")]


def description(doc: str | None) -> str:
    """The docstring's first paragraph, and the ones after it as long as the last ends
    with ':' (what it introduces), never the usage lines."""
    parts = paragraphs(doc)
    taken = parts[:1]
    for part in parts[1:]:
        if not taken[-1].endswith(":") or part.lstrip().startswith("python -m"):
            break
        taken.append(part)
    return "\n\n".join(taken)


def needs(doc: str | None) -> str | None:
    """The docstring's paragraph saying what the benchmark needs installed, if any."""
    return next((part for part in paragraphs(doc) if part.startswith("Needs ")), None)


at_least = argtypes.at_least
positive_int = argtypes.positive_int
positive_float = argtypes.above_zero()
#: Clients of one benchmark all connect from 127.0.0.1, and a node takes at most
#: ``connections_per_address_max`` connections from one address (README, Limits), the
#: benchmark's own among them (scrapes, a console, a loading client): more clients would
#: be refused part way.
CLIENTS_MAX = Limits().connections_per_address_max - 8


def clients(low: int = 1) -> Callable[[str], int]:
    """An argparse type: a number of local clients, ``low`` to ``CLIENTS_MAX``."""
    return at_least(low, high=CLIENTS_MAX,
                    why="a node's connections from one address, less the benchmark's own")


def comma_list(item: Callable[[str], float]) -> Callable[[str], list[float]]:
    """An argparse type: values separated by commas, each read by ``item``."""

    def values(text: str) -> list[float]:
        if not text.strip():
            raise argparse.ArgumentTypeError("an empty list")
        return [item(part.strip()) for part in text.split(",")]

    return values


def refuse(message: str) -> None:
    """Stop before anything starts, as argparse does with a usage error (status 2)."""
    print(message, file=sys.stderr)
    sys.exit(2)


def require_npm_packages(folder: Path, install: str) -> None:
    """Refuse to start unless ``node`` runs and every dependency of ``folder``'s
    package.json is installed there; the message gives the ``install`` command."""
    if shutil.which("node") is None:
        refuse("this benchmark needs Node.js: no node command on PATH")
    wanted = json.loads((folder / "package.json").read_text())["dependencies"]
    missing = [name for name in wanted
               if not (folder / "node_modules" / name / "package.json").is_file()]
    if missing:
        refuse(f"npm packages missing in {folder}: {', '.join(missing)}; "
               f"run `{install}` in the repository's root")


#: Set by the first Ctrl-C (SIGINT) or SIGTERM of a benchmark started by ``run``.
interrupted = threading.Event()
#: What ``run`` says and exits with after each signal: 128 + its number, as a shell
#: reports a process that signal ended.
STOPS = {signal.SIGINT: ("interrupted", 130), signal.SIGTERM: ("terminated", 143)}
#: The first of those signals received.
stopped_by: list[int] = []


def on_stop(signum: int, frame: FrameType | None) -> None:
    if not stopped_by:
        stopped_by.append(signum)
    interrupted.set()
    signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt


def run(main: Callable[[], None]) -> None:
    """Run a benchmark's ``main``; Ctrl-C prints one line and exits with 130 (the shell's
    status for SIGINT) instead of a traceback, SIGTERM likewise with 143.

    SIGTERM (``kill``, ``timeout``, a cancelled CI job) raises the same KeyboardInterrupt
    as Ctrl-C: its default action ends the process on the spot, leaving no ``with``
    block, so the temporary folders (Chromium's scratch folder among them) stayed in
    TMPDIR, and the nodes kept running when the signal reached this process alone.

    Ctrl-C in a terminal reaches the benchmark's nodes, browser and scripts too (they
    share its process group) and they stop at once, so a request to one may fail before
    the interrupt is raised here: whatever ends ``main`` after a SIGINT counts as the
    interrupt (after a SIGTERM to the group, as ``timeout`` sends it, likewise)."""
    for number in STOPS:
        signal.signal(number, on_stop)
    try:
        main()
    except BaseException:
        if not interrupted.is_set():
            raise
        # Futures of a stopped browser driver, collected at exit, would each log that
        # their exception was never retrieved.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        # Likewise a coroutine made just before the interrupt and never awaited: its
        # warning, written at exit, would come after the one line said here.
        warnings.filterwarnings("ignore", message="coroutine .* was never awaited",
                                category=RuntimeWarning)
        said, status = STOPS[signal.Signals(stopped_by[0])]
        print(said, file=sys.stderr)
        sys.exit(status)


class Cluster(cluster.Cluster):
    """A cluster whose nodes are stopped on Ctrl-C or SIGTERM without their logs printed
    (it prints them for a failing test; an interrupted benchmark has not failed)."""

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if interrupted.is_set():
            self.stop()
        else:
            super().__exit__(kind, error, trace)
