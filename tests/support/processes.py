"""Real node processes for integration tests.

``NodeProcess`` runs ``python -m node.main serve`` on a free loopback port with its own
data folder, waits until ``/healthz`` answers, writes the node's output to a log file
(shown when something fails), and can be killed and restarted on the same port and data.
``run_cli`` and ``spawn_cli`` run the ``clawsync`` command line the same way a person
would, in a subprocess.

    with NodeProcess(tmp_path) as node:
        run_cli(node, "append", "s1", "message_received", "content=hi")
        node.kill(signal.SIGKILL)
        node.restart()
"""

from __future__ import annotations

import json
import os
import queue
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from tests.support.ports import free_port as free_port  # tests import it from here

if TYPE_CHECKING:  # scripts outside the test tools import this module too
    import pytest

#: The repository root, put on the children's PYTHONPATH so they import this checkout.
ROOT = Path(__file__).resolve().parents[2]
#: Seconds a node may take to answer /healthz after starting (imports, opening the log).
START_TIMEOUT_S = 30.0
#: Seconds a node may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 10.0
#: Seconds a CLI command may take; generous for slow CI machines, bounded so a hung
#: command fails the test instead of stalling the run.
CLI_TIMEOUT_S = 60.0
#: Pause between /healthz polls while a node starts.
POLL_INTERVAL_S = 0.05


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: this checkout importable, no CLAWSYNC_*
    settings leaking in from the developer's shell, unbuffered output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWSYNC_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class NodeProcess:
    """One ``clawsync serve`` process on 127.0.0.1; a context manager that always stops it."""

    def __init__(self, tmp_dir: Path, port: int | None = None, token: str | None = None,
                 extra_args: Sequence[str] = (), name: str = "node",
                 tls_ca: Path | None = None, program: str = "node.main",
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        #: Variables set in the node's environment (``child_env`` leaves out CLAWSYNC_*).
        self.env = dict(env or {})
        #: The module run as ``python -m``: the ``clawsync`` command, or a build of it.
        self.program = program
        #: With a CA (PEM), the node serves HTTPS (its --tls-* options are in
        #: ``extra_args``) and the test's own requests trust that CA.
        self.tls_ca = tls_ca
        self.port = port if port is not None else free_port()
        self.token = token
        self.extra_args = list(extra_args)
        self.data_dir = Path(tmp_dir) / f"{name}-data"
        self.log_path = Path(tmp_dir) / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "http" if self.tls_ca is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """What the test's requests to this node trust (None over plain HTTP)."""
        if self.tls_ca is None:
            return None
        return ssl.create_default_context(cafile=str(self.tls_ca))

    def command(self) -> list[str]:
        args = [sys.executable, "-m", self.program, "serve", "--data-dir", str(self.data_dir),
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "debug"]
        if self.token is not None:
            args += ["--token", self.token]
        return args + self.extra_args

    def start(self, timeout_s: float = START_TIMEOUT_S) -> NodeProcess:
        """Start the process and wait until it answers /healthz."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        # Appending keeps the log of every run of this node in one file.
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop())
        self._log.write(f"--- start {' '.join(self.command())}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(self.command(), stdout=self._log,
                                        stderr=subprocess.STDOUT, env=child_env(self.env),
                                        cwd=self.data_dir.parent)
        try:
            self.wait_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
        """Poll /healthz until it answers 200; fail early if the process exits."""
        deadline = time.monotonic() + timeout_s
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} while "
                                   f"starting:\n{self.log_tail()}")
            try:
                return self.get("/healthz", timeout_s=1.0)
            except (OSError, ValueError) as error:
                last_error = str(error)
            time.sleep(POLL_INTERVAL_S)
        raise TimeoutError(f"{self.name} did not answer /healthz within {timeout_s} s "
                           f"({last_error}):\n{self.log_tail()}")

    def get(self, path: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """GET a JSON object from the node (with its token), for checks in tests."""
        request = urllib.request.Request(self.url + path, headers={"Accept": "application/json"})
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=timeout_s,
                                    context=self.ssl_context()) as response:
            body: dict[str, Any] = json.loads(response.read())
        return body

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Send ``sig`` and wait for the process to exit; returns its exit code. A process
        that outlives ``timeout_s`` is killed, so a hung shutdown cannot hang the tests."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()
        return int(self.process.returncode)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), if running."""
        if self.process is not None:
            self.kill(signal.SIGTERM)
        self._close_log()

    def restart(self, sig: int = signal.SIGTERM) -> NodeProcess:
        """Stop with ``sig`` (if running) and start again on the same port and data."""
        if self.running:
            self.kill(sig)
        return self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def cli_args(node: NodeProcess | str, *args: str, token: str | None = None) -> list[str]:
    """The command line of ``clawsync --node URL [--token T] ARGS``."""
    url = node if isinstance(node, str) else node.url
    token = token if token is not None or isinstance(node, str) else node.token
    command = [sys.executable, "-m", "node.main", "--node", url]
    if token is not None:
        command += ["--token", token]
    return command + list(args)


def run_cli(node: NodeProcess | str, *args: str, input: str | None = None,
            token: str | None = None,
            timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run one CLI command to completion; returns its exit code, stdout and stderr."""
    return subprocess.run(cli_args(node, *args, token=token), input=input, text=True,
                          capture_output=True, env=child_env(), timeout=timeout_s,
                          check=False)


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    """``clawsync serve`` on 127.0.0.1 with ``args``, run to its end (a start that is to
    fail): its exit code, stdout and stderr."""
    command = NodeProcess(Path("/nonexistent")).command()[:4]  # python -m node.main serve
    return subprocess.run([*command, "--host", "127.0.0.1", *args], capture_output=True,
                          text=True, env=child_env(), timeout=CLI_TIMEOUT_S)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """A command's error line, after checking it ended with exit 1 and said only that,
    without a traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr[-1000:])
    assert "Traceback" not in result.stderr, result.stderr[-1000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), \
        result.stderr[-1000:]
    return result.stderr


def spawn_cli(node: NodeProcess | str, *args: str) -> subprocess.Popen[str]:
    """Start a long-running CLI command (``tail``) with piped, line-buffered output."""
    return subprocess.Popen(cli_args(node, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1, env=child_env())


def stop_cli(process: subprocess.Popen[str], sig: int = signal.SIGTERM,
             timeout_s: float = CLI_TIMEOUT_S) -> None:
    """End a long-running CLI command (``spawn_cli``) with ``sig``; killed if it has not
    ended within ``timeout_s``."""
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()


class LineReader:
    """Reads a pipe in a thread so a test can wait for a line with a deadline (a plain
    ``readline`` on a silent pipe would block the test forever)."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # end of stream

    def wait_for(self, text: str, timeout_s: float = CLI_TIMEOUT_S) -> str:
        """The first new line containing ``text``; fails at the deadline or end of stream."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise EOFError(f"stream ended without {text!r}; saw {self.seen}")
            self.seen.append(line)
            if text in line:
                return line
        raise TimeoutError(f"no line with {text!r} within {timeout_s} s; saw {self.seen}")


def children() -> set[int]:
    """This process's child processes (zombies too: a child not yet waited for).

    Read from each process's parent id rather than from ``/proc/self/task/*/children``:
    those lists are per thread, and a thread that ends between the listing and the read
    takes its file with it (its children move to a thread already read)."""
    me = os.getpid()
    found: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses
                fields = stat.read().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the process ended meanwhile
        if int(fields[1]) == me:
            found.add(int(name))
    return found


def never_ready_module(folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The name of a module whose import blocks for an hour, importable by a worker
    process (its ``PYTHONPATH`` is ``sys.path``): preloaded, the worker never gets ready,
    so its start lasts until its timeout."""
    (folder / "never_ready.py").write_text("import time\ntime.sleep(3600)\n")
    monkeypatch.syspath_prepend(str(folder))
    return "never_ready"
