"""What both campaigns share: nodes with a skewed clock, log scans, memory, the table."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.support.processes import NodeProcess

#: Where Debian's libfaketime lives (``apt-get install faketime``); the multithreaded one,
#: since a node runs threads (storage reads, commits).
FAKETIME_LIBS = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/local/lib/faketime/libfaketimeMT.so.1")
#: What marks a traceback in a node's log.
TRACEBACK = b"Traceback (most recent call last)"


def faketime_lib() -> str | None:
    """The libfaketime to preload, or None when it is not installed (skew is skipped)."""
    return next((lib for lib in FAKETIME_LIBS if os.path.exists(lib)), None)


class CampaignNode(NodeProcess):
    """A node whose wall clock can run ``skew_s`` ahead (or behind) the machine's, through
    libfaketime; monotonic time stays real. The skew is read at each start, so a restart
    can change it (a clock corrected, or set wrong)."""

    skew_s: float = 0.0
    #: With a number, the node's address space is capped there (``prlimit --as``): a
    #: node that would exhaust the machine's memory fails alone, and visibly.
    memory_max_mib: int | None = None

    def command(self) -> list[str]:
        args = super().command()
        prlimit = shutil.which("prlimit")
        if self.memory_max_mib is not None and prlimit is not None:
            args = [prlimit, f"--as={self.memory_max_mib * 1024 * 1024}", "--", *args]
        lib = faketime_lib()
        if self.skew_s == 0 or lib is None:
            return args
        # ``env`` execs the node, so the pid (signals, /proc) is the node's own.
        env = shutil.which("env") or "/usr/bin/env"
        return [env, f"LD_PRELOAD={lib}", f"FAKETIME={self.skew_s:+.0f}",
                "FAKETIME_DONT_FAKE_MONOTONIC=1", "FAKETIME_NO_CACHE=1", *args]


def node_log(node: NodeProcess) -> bytes:
    """The node's whole log without the lines the harness writes (its command line)."""
    try:
        raw = node.log_path.read_bytes()
    except FileNotFoundError:
        return b""
    return b"\n".join(line for line in raw.splitlines() if not line.startswith(b"--- start "))


def tracebacks(nodes: Iterable[NodeProcess]) -> int:
    return sum(node_log(node).count(TRACEBACK) for node in nodes)


def traceback_samples(nodes: Iterable[NodeProcess], limit: int = 3) -> list[str]:
    """The first lines of up to ``limit`` tracebacks' surroundings, to show what failed."""
    samples: list[str] = []
    for node in nodes:
        lines = node_log(node).decode(errors="replace").splitlines()
        for n, line in enumerate(lines):
            if "Traceback (most recent call last)" in line and len(samples) < limit:
                end = next((m for m in range(n + 1, min(n + 400, len(lines)))
                            if lines[m] and not lines[m].startswith((" ", "\t", "│", "╭",
                                                                    "╰", "Traceback"))),
                           n + 1)
                samples.append(f"{node.name}: {lines[max(0, n - 1)][:200]} ... "
                               f"{lines[end][:200] if end < len(lines) else ''}")
    return samples


def log_size(node: NodeProcess) -> int:
    """Bytes of the node's log so far: where what it writes next begins."""
    try:
        return node.log_path.stat().st_size
    except FileNotFoundError:
        return 0


def log_lines_from(node: NodeProcess, start: int, end: int, limit: int = 40) -> list[str]:
    """The lines the node logged between the byte offsets ``start`` and ``end`` of its
    log (``log_size`` before and after a step: offsets, not the lines' times, since a
    restart may set the node's clock elsewhere), from its "stopping" line if it has one;
    of more than ``limit``, the first and last halves."""
    with open(node.log_path, "rb") as file:
        file.seek(start)
        lines = file.read(max(0, end - start)).decode(errors="replace").splitlines()
    first = next((n for n, line in enumerate(lines) if "] stopping" in line), 0)
    lines = [line[:240] for line in lines[first:]]
    if len(lines) <= limit:
        return lines
    return [*lines[:limit // 2], f"... {len(lines) - limit} lines ...", *lines[-(limit // 2):]]


def secrets_in_logs(nodes: Iterable[NodeProcess], secrets: Sequence[str]) -> int:
    """How many times any secret appears in the nodes' logs (as text or escaped bytes)."""
    found = 0
    for node in nodes:
        log = node_log(node)
        for secret in secrets:
            found += log.count(secret.encode())
    return found


def peak_rss_mib(node: NodeProcess) -> float | None:
    """The node's peak resident memory (VmHWM), while it runs."""
    if node.process is None:
        return None
    try:
        status = Path(f"/proc/{node.process.pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def print_table(title: str, rows: Sequence[tuple[str, object, str]]) -> None:
    """Rows of (what, figure, verdict): verdict is "ok", "FAIL" or "" (a figure only)."""
    width = max(len(what) for what, _, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 30))
    for what, figure, verdict in rows:
        print(f"{what:<{width}}  {figure!s:>14}  {verdict}")
    print("-" * (width + 30))


def verdict(ok: bool) -> str:
    return "ok" if ok else "FAIL"


def run(name: str, title: str, args: argparse.Namespace,
        campaign: Callable[[argparse.Namespace, Path], Coroutine[Any, Any, bool]]) -> int:
    """Run one campaign in a new folder with a printed seed; keep the folder on failure
    (or with ``--keep``) and say how to replay it. The exit code: 0 when every check held,
    130 when interrupted (Ctrl-C: the nodes are stopped, the folder kept)."""
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    tmp = Path(tempfile.mkdtemp(prefix=f"clawsync-{name}-"))
    print(f"{title}: seed {args.seed}, folder {tmp}", flush=True)
    try:
        ok = asyncio.run(campaign(args, tmp))
    except KeyboardInterrupt:
        print(f"interrupted: logs and data kept in {tmp}; rerun with --seed {args.seed}",
              file=sys.stderr)
        return 130
    if ok and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    elif not ok:
        print(f"FAILED: logs and data kept in {tmp}; rerun with --seed {args.seed}")
    return 0 if ok else 1
