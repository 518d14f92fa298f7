"""A benchmark stopped with SIGTERM (``kill``, ``timeout``, a cancelled job) cleans up as
after Ctrl-C: its nodes stopped, its temporary folders removed, a non-zero exit and no
traceback. SIGTERM's default action ended it on the spot, leaving both behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import child_env
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

#: Bounds the waits, so a benchmark that never gets going fails the test instead of
#: hanging it; no figure is checked against it.
WAIT_S = 120.0


def processes_under(folder: Path) -> dict[int, str]:
    """The command lines of the processes that name ``folder`` (a node's --data-dir), by
    process id."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # ended meanwhile
            continue
        if str(folder) in command:
            found[int(entry.name)] = command
    return found


def answers(log: Path) -> bool:
    """Whether the server a NodeProcess started with its output in ``log`` answers
    /healthz (its port is on the log's first line, the command)."""
    try:
        port = re.search(r"--port (\d+)", log.read_text())
    except FileNotFoundError:
        return False
    if port is None:
        return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port[1]}/healthz", timeout=1):
            return True
    except OSError:
        return False


def test_sigterm_stops_the_nodes_and_removes_the_temporary_folders(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # Far more appends than the test waits for: it is stopped while measuring.
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench.http_append", "--events", "10000000", "--clients", "1",
         "--rounds", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env({"TMPDIR": str(scratch)}))
    try:
        # The bare server starts once the node answers: both run when it answers too.

        def servers_answer() -> bool:
            if any(answers(log) for log in scratch.glob("bench-http-*/bare.log")):
                return True
            assert bench.poll() is None, bench.communicate()
            return False

        wait_until(servers_answer, WAIT_S, "the benchmark's servers answering", poll_s=0.1)
        assert len(processes_under(scratch)) == 2
        # To the benchmark alone, as `kill PID` sends it: its nodes must be stopped by it.
        bench.send_signal(signal.SIGTERM)
        _, err = bench.communicate(timeout=WAIT_S)
        assert bench.returncode == 128 + signal.SIGTERM, err
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1] == "terminated"
        assert processes_under(scratch) == {}
        assert os.listdir(scratch) == []
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.communicate()
        for pid in processes_under(scratch):  # what a failure left running
            os.kill(pid, signal.SIGKILL)
