"""Stop signals to ``clawsync serve``, on real processes: Ctrl-C, a service manager's
SIGTERM and its terminal hanging up stop it gracefully, its store closed (SIGHUP kept
ignored when started so, by ``nohup``); a stop while it starts is kept, once started or
though the start fails, and a second Ctrl-C then ends it at once."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.cluster import all_events
from tests.support.processes import (
    CLI_TIMEOUT_S,
    POLL_INTERVAL_S,
    ROOT,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    NodeProcess,
    child_env,
    free_port,
    run_cli,
)

#: This process ignores SIGHUP (run by nohup): so would a node it starts.
HUP_IGNORED = signal.getsignal(signal.SIGHUP) is signal.SIG_IGN


@pytest.mark.parametrize(("stop", "code"), [
    pytest.param(signal.SIGINT, -signal.SIGINT, id="ctrl-c"),
    pytest.param(signal.SIGTERM, 0, id="a-service-managers-stop"),
    pytest.param(signal.SIGHUP, 0, id="its-terminal-closing", marks=pytest.mark.skipif(
        HUP_IGNORED, reason="the tests run with SIGHUP ignored"))])
def test_serve_stops_gracefully_and_dies_by_sigint_on_ctrl_c_exits_0_on_sigterm(
        node: NodeProcess, stop: signal.Signals, code: int) -> None:
    run_cli(node, "append", "s1", "message_received", "content=kept")
    assert node.kill(stop) == code
    log = node.log_path.read_text(errors="replace")
    assert "stopped" in log and "Traceback" not in log
    node.start()  # the same data folder: closed cleanly, opened again
    assert [event["kind"].get("content") for event in all_events(node)
            if event["session_key"] == "s1"] == ["kept"]


class NohupNode(NodeProcess):
    """A node started by ``nohup``: SIGHUP ignored."""

    def command(self) -> list[str]:
        return ["nohup", *super().command()]


def hangup_ignored(pid: int) -> bool:
    """Whether process ``pid`` ignores SIGHUP, as Linux tells (``SigIgn``, a hex mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGHUP - 1) & 1)
    raise AssertionError("no SigIgn line")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_serve_started_with_sighup_ignored_keeps_it_ignored(tmp_path: Path) -> None:
    with NohupNode(tmp_path) as node:
        assert node.process is not None
        assert hangup_ignored(node.process.pid)
        node.process.send_signal(signal.SIGHUP)
        run_cli(node, "append", "s1", "message_received", "content=after the hang-up")
        assert node.running and node.get("/healthz")["head"] == 2
        assert node.kill(signal.SIGTERM) == 0
    log = node.log_path.read_text(errors="replace")
    assert log.count("stopping") == 1 and "Traceback" not in log


#: Makes the terminal on its stdin the controlling terminal of its new session (that of
#: a shell's window), then runs the command given after it in its place (the same pid).
TAKE_TERMINAL = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
                 "os.execv(sys.argv[1], sys.argv[1:])")


class TerminalNode(NodeProcess):
    """A node run in a terminal (a pseudo-terminal, its controlling one), as from a shell
    in a window; ``close_terminal`` closes the window. Its output is copied to its log
    until then. No ``PYTHONUNBUFFERED``: stderr is buffered, as it is for a person."""

    def start(self, timeout_s: float = START_TIMEOUT_S) -> NodeProcess:
        terminal, self._tty = os.openpty()
        env = {k: v for k, v in child_env().items() if k != "PYTHONUNBUFFERED"}
        self.process = subprocess.Popen(  # type: ignore[assignment]
            [sys.executable, "-c", TAKE_TERMINAL, *self.command()], stdin=self._tty,
            stdout=self._tty, stderr=self._tty, env=env, cwd=self.data_dir.parent,
            start_new_session=True)
        os.close(self._tty)
        self._closing = threading.Event()
        self._copier = threading.Thread(target=self._copy, args=(terminal,), daemon=True)
        self._copier.start()
        try:
            self.wait_healthy(timeout_s)
        except BaseException:
            self.close_terminal()
            self.stop()
            raise
        return self

    def _copy(self, terminal: int) -> None:
        with open(self.log_path, "ab") as log:
            while not self._closing.is_set():
                if select.select([terminal], [], [], POLL_INTERVAL_S)[0]:
                    try:
                        log.write(os.read(terminal, 65536))
                    except OSError:  # EIO: the node closed its end
                        break
        # Only now, with no read of it under way (one would keep it open): the kernel
        # hangs the terminal up, sending SIGHUP to the node, whose writes then fail.
        os.close(terminal)

    def close_terminal(self) -> None:
        self._closing.set()
        self._copier.join()


@pytest.mark.skipif(HUP_IGNORED, reason="the tests run with SIGHUP ignored")
def test_serve_in_a_terminal_that_closes_stops_cleanly_and_exits_0(tmp_path: Path) -> None:
    """Once its terminal has hung up, every write to it fails (EIO): the lines the node
    logs as it stops cannot be written, and must not stop it from closing its store."""
    node = TerminalNode(tmp_path)
    with node:
        run_cli(node, "append", "s1", "message_received", "content=kept")
        node.close_terminal()
        assert node.process is not None
        assert node.process.wait(STOP_TIMEOUT_S) == 0, node.log_tail()
    assert "serving" in node.log_path.read_text(errors="replace")
    with NodeProcess(tmp_path) as again:  # the same data folder: closed cleanly
        assert [event["kind"].get("content") for event in all_events(again)
                if event["session_key"] == "s1"] == ["kept"]


#: Runs ``clawsync serve`` with a SIGTERM arriving while the node starts (before its
#: store is opened): ``{data}`` and ``{port}`` are its data folder and port.
SIGTERM_WHILE_STARTING = """
import os, signal
import node.server.run as run

opening = run._start

async def stopped_while_opening(config, *prepared):
    os.kill(os.getpid(), signal.SIGTERM)
    return await opening(config, *prepared)

run._start = stopped_while_opening
from node.main import main
main(["serve", "--data-dir", {data!r}, "--port", "{port}"], prog_name="clawsync")
"""


def test_sigterm_while_serve_starts_stops_it_cleanly_once_started(tmp_path: Path) -> None:
    """Not killed half-open: started, then stopped gracefully, exit 0 (a service
    manager's stop), and the data folder opens again."""
    data = tmp_path / "node-data"  # NodeProcess(tmp_path)'s, to open it again after
    script = SIGTERM_WHILE_STARTING.format(data=str(data), port=free_port())
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, env=child_env(), timeout=CLI_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stderr and "Traceback" not in result.stderr
    assert "serving" not in result.stderr
    with NodeProcess(tmp_path) as again:
        assert again.data_dir == data and again.get("/healthz")["head"] >= 0


#: Runs ``clawsync serve`` whose start meets stop signals: ``{body}`` is what the start
#: does (``os``, ``signal``, ``asyncio`` and ``run`` at hand).
STOPPED_WHILE_STARTING = """
import asyncio, os, signal
import node.server.run as run

async def starting(config, *prepared):
{body}

run._start = starting
from node.main import main
main(["serve", "--data-dir", {data!r}, "--port", "{port}"], prog_name="clawsync")
"""


def serve_starting(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = STOPPED_WHILE_STARTING.format(body=body, data=str(tmp_path / "data"),
                                           port=free_port())
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, env=child_env(), timeout=CLI_TIMEOUT_S, check=False)


def test_a_stop_while_serve_starts_is_kept_though_the_start_fails(tmp_path: Path) -> None:
    """Told to stop while starting, then the start fails: stopped as asked (SIGTERM: 0),
    saying why it did not start, not a failure to start (1)."""
    result = serve_starting(tmp_path, "    os.kill(os.getpid(), signal.SIGTERM)\n"
                                      "    await asyncio.sleep(0.2)\n"
                                      "    raise run.StartError('the folder is odd')\n")
    assert result.returncode == 0, result.stderr
    assert "not started" in result.stderr and "the folder is odd" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_ctrl_c_while_serve_starts_ends_it_at_once(tmp_path: Path) -> None:
    """Opening a large store takes a while; a person who presses Ctrl-C again does not
    wait for it."""
    result = serve_starting(tmp_path, "    os.kill(os.getpid(), signal.SIGINT)\n"
                                      "    await asyncio.sleep(0.2)\n"
                                      "    os.kill(os.getpid(), signal.SIGINT)\n"
                                      "    await asyncio.sleep(60)\n")
    assert result.returncode == -signal.SIGINT, result.stderr
    assert "Traceback" not in result.stderr
