"""The processes of ``clawsync demo``: its three ``clawsync serve`` nodes on loopback, the
links B and C dial A through (``node.cli.linkproxy``), their ports, and their stopping.
Apart from ``node.cli.demo_run``, which tells the story against them: this part knows
processes and ports, nothing of what the demo writes or shows.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import node
from node.cli.linkproxy import LinkProxy
from node.ports import free_port, listen_error, listen_refusal

#: The demo's nodes: A, B and C (``--port`` takes as many ports from the one given).
NODES = 3
#: The nodes' ``--pull-interval``: short, so a lost push is repaired within the demo.
PULL_INTERVAL_S = 0.5
#: Seconds a node may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 10.0


class DemoFailed(Exception):
    """The demo could not go on; the message says why."""


def _free_port(avoid: list[int]) -> int:
    """``free_port``, none of ``avoid``; none found is the demo's failure, said plainly."""
    try:
        return free_port(avoid)
    except OSError as error:
        raise DemoFailed(f"no free loopback port for the demo's nodes and links ({error})"
                         ) from None


@dataclass
class DemoNode:
    """One ``clawsync serve`` process of the demo."""

    name: str
    role: str
    folder: Path
    port: int = 0
    link: LinkProxy | None = None  # how this node reaches A, if it dials A
    process: subprocess.Popen[bytes] | None = None
    node_id: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} ({self.role})"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name.lower()}.log"

    def start(self, secret: str) -> None:
        command = [sys.executable, "-m", "node.main", "serve", "--host", "127.0.0.1",
                   "--port", str(self.port), "--data-dir", f"{self.name.lower()}-data",
                   "--pull-interval", str(PULL_INTERVAL_S)]
        if self.link is not None:
            command += ["--peer", f"http://127.0.0.1:{self.link.port}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWSYNC_")}
        # The children import this same copy of clawsync, installed or not.
        root = str(Path(node.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        env["CLAWSYNC_CLUSTER_SECRET"] = secret  # not on the command line, seen by `ps`
        with open(self.log_path, "ab") as log:
            # Own process group: Ctrl-C reaches the demo only, which stops nodes in order.
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.folder,
                                            env=env, process_group=0)

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise DemoFailed(f"node {self.label} exited with code {self.process.returncode}:"
                             f"\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """The three nodes and the two cut-able links; ``stop`` always ends every process."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.secret = secrets.token_urlsafe(32)
        self.a = DemoNode("A", "hub", folder)
        self.b = DemoNode("B", "laptop", folder)
        self.c = DemoNode("C", "phone", folder)
        self.nodes = {n.name: n for n in (self.a, self.b, self.c)}
        self.keeping = False  # True once --keep waits for Ctrl-C

    @property
    def links(self) -> list[LinkProxy]:
        return [n.link for n in self.nodes.values() if n.link is not None]

    def start(self, port: int | None = None) -> None:
        """Start the nodes: on ``port`` and the two after it, else on free ports."""
        # Every node's port is chosen before anything listens, each avoiding those
        # chosen before it, and the links avoid them all: a port found free is not
        # taken until its node listens, and a link started first could take it.
        chosen: list[int] = []
        for offset, each in enumerate(self.nodes.values()):
            each.port = port + offset if port is not None else _free_port(chosen)
            chosen.append(each.port)
        self.a.start(self.secret)
        for dialer in (self.b, self.c):
            link_port = _free_port(chosen)
            try:
                dialer.link = LinkProxy(target_port=self.a.port, port=link_port).start()
            except OSError as error:  # found free, taken since: the demo's failure
                raise DemoFailed(f"the link from {dialer.label} to A cannot listen: "
                                 f"{listen_refusal(link_port, error)}") from None
            chosen.append(dialer.link.port)
            dialer.start(self.secret)

    def stop(self) -> None:
        """SIGTERM every node (they drain and close their logs), then wait; a node that
        outlives ``STOP_TIMEOUT_S`` is killed. A second Ctrl-C cannot cut this short."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            running = [n.process for n in self.nodes.values()
                       if n.process is not None and n.process.poll() is None]
            for process in running:
                process.terminate()
            deadline = time.monotonic() + STOP_TIMEOUT_S
            for process in running:
                try:
                    process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for link in self.links:
                link.stop()
        finally:
            signal.signal(signal.SIGINT, previous)


def port_refusal(port: int) -> str | None:
    """Why the nodes cannot listen on ``port`` and the ports after it (``--port``), or
    None if they can: tried as a node binds them (``listen_error``), so that ports left
    in TIME_WAIT by a demo that just ended (``--keep``) are taken again."""
    for each in range(port, port + NODES):
        error = listen_error(each)
        if error is not None:
            return (f"{listen_refusal(each, error)} "
                    f"(--port {port} takes {port} to {port + NODES - 1})")
    return None
