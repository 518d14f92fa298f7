"""The README's three nodes by hand, pasted into a shell as a person would, with only
its ports changed: every command works as written, and the nodes are named as the
commands name them."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.cluster import wait_until
from tests.support.ports import free_port
from tests.support.processes import ROOT, child_env

pytestmark = pytest.mark.integration

#: Seconds the whole block may take: three starts, two adds, a sync (a device waiting
#: to be added dials again within the 5 s pull interval); generous for slow machines.
BLOCK_TIMEOUT_S = 120.0
README_PORTS = ("7878", "7879", "7880")


def with_ports(block: str, ports: dict[str, str]) -> str:
    """``block`` with each README port replaced by its own, all in one pass: a port
    given for one (27879, say) is not rewritten as another's.

    >>> with_ports("a:7878 b:7879 x17878", {"7878": "27879", "7879": "7880"})
    'a:27879 b:7880 x17878'
    """
    pattern = r"(?<!\d)(" + "|".join(map(re.escape, ports)) + r")(?!\d)"
    return re.sub(pattern, lambda found: ports[found[1]], block)


def three_nodes_block() -> str:
    """The ``sh`` block after "Three nodes by hand" in the README."""
    readme = (ROOT / "README.md").read_text()
    after = readme[readme.index("Three nodes by hand"):]
    return after.split("```sh\n", 1)[1].split("```", 1)[0]


def answers(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(url + "/healthz", timeout=1):
        return True
    return False


@pytest.mark.skipif(shutil.which("curl") is None, reason="the block waits with curl")
def test_the_three_nodes_of_the_readme_run_as_written(tmp_path: Path) -> None:
    ports = [str(free_port()) for _ in README_PORTS]
    block = with_ports(three_nodes_block(), dict(zip(README_PORTS, ports, strict=True)))
    # `.venv/bin/clawsync` as the README runs it, from the folder it is pasted in.
    program = tmp_path / ".venv" / "bin" / "clawsync"
    program.parent.mkdir(parents=True)
    program.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m node.main \"$@\"\n")
    program.chmod(0o755)
    # Its own process group, the nodes it starts in the background with it: ended as one.
    # Into files: the nodes outlive the block, and would hold a pipe open.
    out_path, logs_path = tmp_path / "out.txt", tmp_path / "logs.txt"
    with out_path.open("w") as out_file, logs_path.open("w") as logs_file:
        shell = subprocess.Popen(["bash", "-e", "-c", block], cwd=tmp_path, env=child_env(),
                                 stdout=out_file, stderr=logs_file, start_new_session=True)
    timed_out = False
    try:
        shell.wait(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        timed_out = True  # failed below, with what the block and the nodes said
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGTERM)
        shell.wait()
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    wait_until(lambda: not any(answers(url) for url in urls), BLOCK_TIMEOUT_S, "nodes stopped")
    out, logs = out_path.read_text(), logs_path.read_text()
    if timed_out:
        pytest.fail(f"the block ran for over {BLOCK_TIMEOUT_S:g} s; it printed:\n{out}\n"
                    f"and logged:\n{logs}")
    assert shell.returncode == 0, logs
    assert "inbound: hi from b" in out  # c's projection, b's event
    assert re.search(r"^\S+\s+in\s+node-b\s.*\sup\s", out, re.M), out  # a's peer links
    assert re.search(r"^\S+\s+in\s+node-c\s.*\sup\s", out, re.M), out
    # Each node is named as started, so what b and c say while they wait is what the
    # block then runs on a.
    for name in ("node-a", "node-b", "node-c"):
        assert f"name={name} " in logs
    waiting = re.findall(r"waiting to be added on (\S+) .*?--name (\S+) ", logs)
    assert waiting, logs  # b and c each waited, and said so
    assert {on for on, _ in waiting} <= {"node-a"}
    assert {named for _, named in waiting} <= {"node-b", "node-c"}
