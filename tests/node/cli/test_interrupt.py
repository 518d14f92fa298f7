"""Ctrl-C in the ``clawsync`` command line, on real processes: one line on stderr, death
by SIGINT (a shell shows 130, and a script running the command stops), no traceback,
and what was stored before stays stored. How ``clawsync serve`` stops on signals:
``test_interrupt_serve``."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import pytest

from node.openclaw.state import cursor_name
from tests.support.cluster import all_events
from tests.support.openclaw import FakeGateway
from tests.support.processes import (
    CLI_TIMEOUT_S,
    ROOT,
    LineReader,
    NodeProcess,
    child_env,
    cli_args,
    run_cli,
)

#: Sessions and records per session of the state folder: more than one read of the
#: store (500 rows at most), so that an import is interrupted between two of them.
SESSIONS, RECORDS = 3, 400


def openclaw_state(state: Path) -> int:
    """A state folder of plain messages; the number of records written."""
    gateway = FakeGateway(state)
    for n in range(SESSIONS):
        session_id = f"00000000-0000-4000-8000-{n:012d}"
        gateway.open_session(f"agent:main:explicit:s{n}", session_id)
        records: list[dict[str, Any]] = [{"type": "session", "version": 3, "id": session_id,
                                          "timestamp": "2026-12-01T10:00:00.000Z", "cwd": "/w"}]
        for i in range(1, RECORDS):
            records.append({"type": "message", "id": f"{i:08x}",
                            "parentId": records[-1]["id"] if i > 1 else None,
                            "timestamp": f"2026-12-01T10:{i // 60:02d}:{i % 60:02d}.000Z",
                            "message": {"role": "user", "content": f"m{i}",
                                        "timestamp": 1796119200000 + i}})
        gateway.add(session_id, records)
    gateway.close()
    return SESSIONS * RECORDS


def records_on(node: NodeProcess) -> list[tuple[str, str]]:
    """(session key, OpenClaw record id) of each OpenClaw event the node holds."""
    return [(event["session_key"], event["kind"]["openclaw"]["record"]["id"])
            for event in all_events(node) if "openclaw" in event["kind"]]


def saved_cursor(method: str, path: str) -> bool:
    return method == "PUT" and path.startswith("/v1/cursors/")


def appended(method: str, path: str) -> bool:
    return method == "POST" and path.endswith("/events")


class Gate:
    """An HTTP proxy in front of a node: it passes requests on until one that ``holds``
    says holds (by default, the node has saved a cursor), then holds every later one
    unanswered. A command behind it is then certainly mid-import (waiting for the node),
    with a first part stored."""

    def __init__(self, node: NodeProcess,
                 holds: Callable[[str, str], bool] = saved_cursor) -> None:
        self.holding = threading.Event()
        #: A request came once holding: it is held.
        self.held = threading.Event()
        self._release = threading.Event()
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if gate.holding.is_set():
                    gate.held.set()
                    gate._release.wait()
                    self.close_connection = True
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                upstream = http.client.HTTPConnection("127.0.0.1", node.port,
                                                      timeout=CLI_TIMEOUT_S)
                upstream.request(self.command, self.path, body=body, headers={
                    key: value for key, value in self.headers.items()
                    if key.lower() not in ("host", "connection")})
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding",
                                           "connection", "date", "server"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if holds(self.command, self.path):
                    gate.holding.set()

            do_POST = do_PUT = do_GET

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Gate:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


def test_ctrl_c_mid_import_dies_by_sigint_and_keeps_what_was_stored(
        node: NodeProcess, tmp_path: Path) -> None:
    state = tmp_path / "openclaw"
    total = openclaw_state(state)
    with Gate(node) as gate:
        command = subprocess.Popen(
            cli_args(gate.url, "openclaw", "import", "--state-dir", str(state)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
        try:
            assert gate.holding.wait(CLI_TIMEOUT_S), "the import saved no cursor"
            assert command.poll() is None  # mid-import: its next request is held
            command.send_signal(signal.SIGINT)
            _out, err = command.communicate(timeout=CLI_TIMEOUT_S)
        finally:
            if command.poll() is None:
                command.kill()
                command.wait()
    assert command.returncode == -signal.SIGINT, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "interrupted"
    # What the node acknowledged stays, with the cursor saved after it, whole.
    stored = records_on(node)
    assert 0 < len(stored) < total
    name = quote(cursor_name(state.resolve(), "main"), safe="")
    cursor = node.get(f"/v1/cursors/{name}")["cursor"]
    assert cursor and all(isinstance(value, int) for value in cursor.values())
    # Run again, it imports the rest from that cursor: nothing twice, nothing missed.
    again = run_cli(node, "openclaw", "import", "--state-dir", str(state))
    assert again.returncode == 0, again.stderr
    assert (f"{total - len(stored)} records read: {total - len(stored)} new events, "
            "0 already stored") in again.stderr
    everything = records_on(node)
    assert len(everything) == len(set(everything)) == total


@pytest.mark.parametrize(("dated", "again"), [
    pytest.param(True, "Running the import again is safe: stored events are recognised",
                 id="dated"),
    pytest.param(False, "3 events stored or perhaps stored have no timestamp: running the "
                 "import again may store them a second time", id="undated")])
def test_ctrl_c_mid_append_file_says_what_was_stored_and_whether_to_run_again(
        node: NodeProcess, tmp_path: Path, dated: bool, again: str) -> None:
    """Two sessions, one batch each: the first is acknowledged, the second held."""
    file = tmp_path / "events.jsonl"
    file.write_text("".join(json.dumps(
        {"session_key": key, "agent_id": "main",
         "kind": {"type": "message_received", "content": key},
         **({"timestamp": 1796119200000 + n} if dated else {})}) + "\n"
        for n, key in enumerate(["s1", "s2", "s2"])))
    with Gate(node, appended) as gate:
        command = subprocess.Popen(cli_args(gate.url, "append", "--file", str(file)),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=child_env())
        try:
            # Its first batch acknowledged, its second held.
            assert gate.held.wait(CLI_TIMEOUT_S), "the append sent no second batch"
            assert command.poll() is None
            command.send_signal(signal.SIGINT)
            out, err = command.communicate(timeout=CLI_TIMEOUT_S)
        finally:
            if command.poll() is None:
                command.kill()
                command.wait()
    assert command.returncode == -signal.SIGINT, err
    assert "Traceback" not in err and out == ""
    said = " ".join(err.split())  # the note is wrapped to the terminal
    assert ("(interrupted: the node acknowledged 1 event of the file as stored; it may have "
            "stored the 2 events of session 's2' sent when the interrupt came, all, some or "
            f"none. {again})") in said, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert [event["session_key"] for event in all_events(node)
            if event["agent_id"] == "main"] == ["s1"]


#: Runs ``python -m node.main {argv}`` as the ``clawsync`` script would, with a Ctrl-C
#: arriving while module ``{module}`` is being imported (a command's modules take a
#: good part of a second to load, the moment a person most often presses Ctrl-C, on a
#: command typed wrong).
CTRL_C_WHILE_LOADING = """
import os, runpy, signal, sys

class CtrlC:  # one Ctrl-C, the first time the module is looked for
    pressed = False

    def find_spec(self, name, path=None, target=None):
        if name == {module!r} and not self.pressed:
            self.pressed = True
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlC())
sys.argv = ["clawsync", *{argv!r}]
runpy.run_module("node.main", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(("module", "argv"), [
    pytest.param("node.cli", ["status"], id="the-first-import"),
    pytest.param("node.cli.group", ["status"], id="the-group"),
    # The group loads a command's module once it has read the command line.
    pytest.param("node.cli.status", ["status"], id="a-command"),
    pytest.param("node.client.api", ["status"], id="what-a-command-needs"),
    pytest.param("node.server.command", ["serve", "--help"], id="serve")])
def test_ctrl_c_while_the_commands_load_dies_by_sigint_without_a_traceback(
        module: str, argv: list[str]) -> None:
    script = CTRL_C_WHILE_LOADING.format(module=module, argv=argv)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT,
                            capture_output=True, text=True, env=child_env(),
                            timeout=CLI_TIMEOUT_S, check=False)
    assert result.returncode == -signal.SIGINT, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "interrupted"


#: What the shell runs to complete ``clawsync status --<TAB>``: the group loads status
#: to list its options, outside of reading a command line and running a command.
COMPLETING_STATUS = {"_CLAWSYNC_COMPLETE": "bash_complete",
                     "COMP_WORDS": "clawsync status --", "COMP_CWORD": "2"}


@pytest.mark.parametrize("module", [
    pytest.param("node.cli.status", id="a-command"),
    # (Not the HTTP client: a command loads it when it runs, not to list its options.)
    pytest.param("node.cli.common", id="what-a-command-needs")])
def test_ctrl_c_while_completion_loads_a_command_dies_by_sigint_without_a_traceback(
        module: str) -> None:
    script = CTRL_C_WHILE_LOADING.format(module=module, argv=[])
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT,
                            capture_output=True, text=True,
                            env=child_env(COMPLETING_STATUS),
                            timeout=CLI_TIMEOUT_S, check=False)
    assert result.returncode == -signal.SIGINT, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "interrupted"
    assert result.stdout == ""  # nothing the shell would take for a completion


#: Runs ``clawsync --token T status`` with a Ctrl-C arriving while the command line is
#: read (in the callback of ``--token``), before any command runs.
CTRL_C_WHILE_PARSING = """
import os, signal, sys
from node.main import main

token = next(param for param in main.params if param.name == "token")
check = token.callback

def pressed(ctx, param, value):
    os.kill(os.getpid(), signal.SIGINT)
    return check(ctx, param, value)

token.callback = pressed
main(["--token", "t", "status"], prog_name="clawsync")
"""


def test_ctrl_c_while_the_command_line_is_read_dies_by_sigint_not_aborted() -> None:
    result = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_PARSING], cwd=ROOT,
                            capture_output=True, text=True, env=child_env(),
                            timeout=CLI_TIMEOUT_S, check=False)
    assert result.returncode == -signal.SIGINT, result.stderr
    assert "Aborted" not in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip() == "interrupted"


def test_ctrl_c_stops_a_shell_script_running_a_command(node: NodeProcess) -> None:
    """bash goes on with a script after a child that exited 130; it stops only when the
    child died by SIGINT. Ctrl-C reaches the whole foreground process group."""
    script = f"{shlex.join(cli_args(node, 'tail'))}; echo after the tail"
    shell = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=child_env(),
                             cwd=ROOT, start_new_session=True)
    try:
        assert shell.stderr is not None
        LineReader(shell.stderr).wait_for("following")
        os.killpg(shell.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        shell.wait(CLI_TIMEOUT_S)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
    assert shell.stdout is not None
    assert "after the tail" not in shell.stdout.read()
    assert shell.returncode == -signal.SIGINT
