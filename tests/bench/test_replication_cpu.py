"""bench.replication's CPU figures: a node's worker process that ended and was waited
for during a run (replaced after a failure) still counts in its children's CPU."""

from __future__ import annotations

import subprocess
import sys

from bench.replication import children_cpu_s

PARENT = """
import subprocess, sys
burn = "import time\\nend = time.process_time() + 0.5\\nwhile time.process_time() < end: pass"
subprocess.run([sys.executable, "-c", burn], check=True)
print("child ended", flush=True)
sys.stdin.read()
"""


def test_children_that_ended_and_were_waited_for_still_count() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline() == "child ended\n"
        used = children_cpu_s(parent.pid)
        assert used is not None and used >= 0.4
    finally:
        parent.communicate("")
