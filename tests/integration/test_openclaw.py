"""``clawsync openclaw`` against real node processes: cursors kept by the node, import,
and ``watch`` following an OpenClaw store that is written while it runs."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from crdt.log.cursors import CURSOR_ENTRIES_MAX
from crdt.storage.lock import LOCK_NAME
from node.cli.common import TOKEN_REFUSED_EXIT
from node.http.errors import STOPPING_RETRY_AFTER_S
from node.openclaw.session_names import session_key_for
from node.server.cursors import BODY_BYTES_MAX
from tests.node.openclaw import transcript
from tests.support.cluster import all_events, wait_until
from tests.support.held_import import HOLD_ENV
from tests.support.openclaw import (
    WATCH_STOP_S,
    FakeGateway,
    RecordedGateway,
    cursor_read_to,
    watching,
    write_jsonl,
)
from tests.support.processes import (
    CLI_TIMEOUT_S,
    LineReader,
    NodeProcess,
    child_env,
    cli_args,
    free_port,
    run_cli,
    spawn_cli,
    stop_cli,
)

pytestmark = pytest.mark.integration

SID, KEY = transcript.SESSION_ID, transcript.SESSION_KEY
CLAWSYNC_KEY = session_key_for("main", KEY)


def export(node: NodeProcess, locks: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``clawsync openclaw export ARGS``, with OpenClaw's per-machine lock folders under
    ``locks`` instead of the shared ``/tmp`` (``tests.support.private_locks``)."""
    python, _, program, *rest = cli_args(node, "openclaw", "export", *args)
    assert program == "node.main"
    return subprocess.run([python, "-m", "tests.support.private_locks", str(locks), *rest],
                          text=True, capture_output=True, env=child_env(), timeout=CLI_TIMEOUT_S,
                          check=False)


def call(node: NodeProcess, method: str, path: str, body: Any = None,
         token: str | None = None) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(node.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_cursors_are_kept_by_the_node_behind_its_token(token_node: NodeProcess) -> None:
    path = "/v1/cursors/openclaw:ab:cd"
    assert call(token_node, "GET", path)[0] == 401
    assert call(token_node, "PUT", path, {"cursor": {"db:s": 1}})[0] == 401
    status, body = call(token_node, "GET", path, token="s3cret")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert call(token_node, "PUT", path, {"cursor": {"db:s": 3}}, "s3cret") == (
        200, {"name": "openclaw:ab:cd", "cursor": {"db:s": 3}})
    assert call(token_node, "GET", path, token="s3cret")[1]["cursor"] == {"db:s": 3}
    # Bad input: a 4xx, and the cursor is as it was.
    for name, body, status in [
            (quote("a b"), {"cursor": {}}, 400), ("x" * 129, {"cursor": {}}, 400),
            ("ok", {"cursor": {"a": -1}}, 400), ("ok", {"cursor": {"a": "1"}}, 400),
            ("ok", {"cursor": []}, 400), ("ok", {"other": {}}, 400),
            ("openclaw:ab:cd", {"cursor": {f"e{n}": n for n in range(CURSOR_ENTRIES_MAX + 1)}},
             413)]:
        assert call(token_node, "PUT", f"/v1/cursors/{name}", body, "s3cret")[0] == status
    padded = b'{"cursor": {}}' + b" " * BODY_BYTES_MAX
    assert call(token_node, "PUT", path, padded, "s3cret")[0] == 413
    assert call(token_node, "GET", path, token="s3cret")[1]["cursor"] == {"db:s": 3}


def session_events(node: NodeProcess) -> list[dict[str, Any]]:
    try:
        return list(node.get(f"/v1/sessions/{quote(CLAWSYNC_KEY, safe='')}/events"
                             "?limit=1000")["events"])
    except urllib.error.HTTPError:
        return []


def test_import_twice_imports_nothing_new(node: NodeProcess, tmp_path: Path) -> None:
    state = tmp_path / "openclaw"
    gateway = FakeGateway(state)
    gateway.open_session(KEY, SID)
    gateway.add(SID, transcript.records(), zstd=True)
    first = run_cli(node, "openclaw", "import", "--state-dir", str(state))
    assert first.returncode == 0, first.stderr
    count = len(session_events(node))
    assert f"{len(transcript.records())} records read: {count} new events" in first.stderr
    second = run_cli(node, "openclaw", "import", "--state-dir", str(state))
    assert second.returncode == 0, second.stderr
    assert "0 records read: 0 new events" in second.stderr
    assert len(session_events(node)) == count


def test_watch_follows_new_rows_and_resumes_after_a_restart(node: NodeProcess,
                                                             tmp_path: Path) -> None:
    """A recorded OpenClaw store (three sessions, zstd rows), its rows committed again one
    at a time while ``watch`` runs."""
    state = tmp_path / "openclaw"
    gateway = RecordedGateway(state, "rich", keep=3)
    first = len(gateway.db.execute("SELECT 1 FROM transcript_events").fetchall())
    later_count = len(gateway.rows) - 30

    def on_node() -> set[tuple[str, str]]:
        """(session id, record id) of each record on the node: the recording's sessions
        share record ids (one was copied from another), so an id alone may stand for a
        row not read yet."""
        return {(extra.get("session_id"), extra.get("record", {}).get("id"))
                for e in all_events(node) if (extra := e["kind"].get("openclaw"))}

    def rows_of(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(row["session_id"], row["record"]["id"]) for row in rows}

    with watching(node, state) as (watch, said):
        said.wait_for(f"{first} records read")
        turn = rows_of(gateway.rows[:30])
        # Per session, the next seq its cursor names once the turn is read.
        read_to: dict[str, int] = {}
        for row in gateway.rows[:30]:
            read_to[row["session_id"]] = max(read_to.get(row["session_id"], 0), row["seq"] + 1)
        gateway.replay(30)  # OpenClaw commits, zstd rows among them
        assert gateway.db.execute("SELECT COUNT(*) FROM transcript_events "
                                  "WHERE event_zstd IS NOT NULL").fetchone()[0] > 0
        wait_until(lambda: on_node() >= turn, 30,
                   "the new records on the node")
        wait_until(lambda: cursor_read_to(node, state, read_to), 30, "the cursor past them")
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=WATCH_STOP_S)  # it ends when told to
    before = len(all_events(node))
    later = rows_of(gateway.rows)
    gateway.replay(len(gateway.rows))  # committed while watch is down
    with watching(node, state) as (_, said):
        line = said.wait_for("records read")
        assert line.startswith(f"{later_count} records read: ")  # only what is new
        assert ", 0 already stored" in line
        assert on_node() >= later
        assert len(all_events(node)) > before


def test_an_agent_that_cannot_be_read_is_named_and_the_watch_goes_on(
        node: NodeProcess, tmp_path: Path) -> None:
    """Agent b's folder cannot be looked into (a link to a name too long to be one: root
    looks into any folder whatever its mode, as it would not into another user's): it is
    named once, main's records go in, and the watch follows main on."""
    state = tmp_path / "openclaw"
    gateway = FakeGateway(state)
    gateway.open_session(KEY, SID)
    records = transcript.records()
    gateway.add(SID, records[:4])
    (state / "agents" / "b").symlink_to("x" * 300)
    unreadable = f"{state}/agents/b: cannot be read (File name too long)"
    with watching(node, state) as (watch, said):
        said.wait_for(unreadable)
        said.wait_for("4 records read")
        gateway.add(SID, records[4:])
        said.wait_for(f"{len(records) - 4} records read")
        assert watch.poll() is None
        assert sum(unreadable in line for line in said.seen) == 1
    # An --agent whose folder cannot be read is there: named, and skipped.
    only = run_cli(node, "openclaw", "import", "--state-dir", str(state), "--agent", "b")
    assert only.returncode == 1 and unreadable in only.stderr, only.stderr
    assert "Traceback" not in only.stderr


def test_import_names_what_it_skips_and_imports_the_rest(node: NodeProcess,
                                                         tmp_path: Path) -> None:
    state = tmp_path / "openclaw"
    gateway = RecordedGateway(state, keep=5)
    rows = gateway.replay(len(gateway.rows))
    # A row whose zstd frame is cut short (past the CHECKs of OpenClaw's schema, which
    # want a navigation summary of the record).
    gateway.db.execute("PRAGMA ignore_check_constraints = ON")
    gateway.db.execute("INSERT INTO transcript_events (session_id, seq, event_zstd, "
                       "event_utf8_bytes, created_at) VALUES ('s1', 99, x'28b52ffd0000', 9, 0)")
    result = run_cli(node, "openclaw", "import", "--state-dir", str(state))
    assert result.returncode == 1
    assert (f"{state}/agents/main/agent/openclaw-agent.sqlite, session s1, seq 99: "
            "event_zstd does not decode as zstd") in result.stderr
    assert "1 record or file was skipped (named above); the rest is imported" in result.stderr
    ids = {e["kind"].get("openclaw", {}).get("record", {}).get("id")
           for e in session_events(node)}
    assert ids >= {r["id"] for r in rows}
    again = run_cli(node, "openclaw", "import", "--state-dir", str(state))
    assert again.returncode == 0 and "0 records read" in again.stderr


def test_watch_waits_out_a_node_restart(node: NodeProcess, tmp_path: Path) -> None:
    """Rows committed while the node is down reach it once it is back, though OpenClaw
    commits nothing more."""
    state = tmp_path / "openclaw"
    gateway = RecordedGateway(state, keep=5)
    watch = spawn_cli(node, "openclaw", "watch", "--state-dir", str(state))
    try:
        said = LineReader(watch.stderr)  # type: ignore[arg-type]
        said.wait_for("5 records read")
        node.stop()
        rows = gateway.replay(len(gateway.rows))
        said.wait_for("trying again in")
        node.start()
        said.wait_for(f"{len(rows)} records read")
        ids = {e["kind"].get("openclaw", {}).get("record", {}).get("id")
               for e in session_events(node)}
        assert ids >= {r["id"] for r in rows}
    finally:
        watch.send_signal(signal.SIGINT)
        try:
            assert watch.wait(timeout=30) == -signal.SIGINT  # Ctrl-C, as for any command
        finally:
            if watch.poll() is None:
                watch.kill()


def test_watch_waits_as_long_as_a_closing_node_asks(tmp_path: Path) -> None:
    """A node whose store is closing answers 503 with the wait of a restart: watch says
    it and waits that long, not its own shorter pause, then imports the rows."""
    state = tmp_path / "openclaw"
    RecordedGateway(state, keep=5)
    with NodeProcess(tmp_path, program="tests.support.closing_node") as node, \
            watching(node, state) as (_watch, said):
        line = said.wait_for("trying again in")
        assert line.strip().endswith(
            f"(HTTP 503, try again in {STOPPING_RETRY_AFTER_S} s): the node is shutting "
            f"down; trying again in {STOPPING_RETRY_AFTER_S} s"), line
        said.wait_for("5 records read")  # those OpenClaw kept, once taken


def test_import_with_nothing_to_import_still_checks_the_node(token_node: NodeProcess,
                                                            tmp_path: Path) -> None:
    """A wrong --node or --token is an error at once, not only once OpenClaw wrote."""
    state = tmp_path / "openclaw"
    (state / "agents" / "main").mkdir(parents=True)  # an agent, no store yet
    nowhere = run_cli(f"http://127.0.0.1:{free_port()}", "openclaw", "import",
                      "--state-dir", str(state))
    assert nowhere.returncode == 1 and "cannot reach the node" in nowhere.stderr
    wrong = run_cli(token_node, "openclaw", "import", "--state-dir", str(state),
                    token="not-the-token")
    assert wrong.returncode == TOKEN_REFUSED_EXIT and "check --token" in wrong.stderr, \
        wrong.stderr
    right = run_cli(token_node, "openclaw", "import", "--state-dir", str(state))
    assert right.returncode == 0, right.stderr


def test_embedded_import_refuses_a_data_folder_a_node_serves(node: NodeProcess,
                                                             tmp_path: Path) -> None:
    state = tmp_path / "openclaw"
    RecordedGateway(state).replay(3)
    result = run_cli(node, "openclaw", "import", "--state-dir", str(state),
                     "--data-dir", str(node.data_dir))
    assert result.returncode == 1, result.stderr
    assert str(node.data_dir) in result.stderr
    assert session_events(node) == []


def test_export_from_a_node_after_a_forget(node: NodeProcess, tmp_path: Path) -> None:
    """The node's answer holds the forget record and the forgotten event, which no
    client may post: reading them for an export must not apply the rules of posting."""
    state = tmp_path / "openclaw"
    gateway = FakeGateway(state)
    gateway.open_session(KEY, SID)
    gateway.add(SID, transcript.records())
    assert run_cli(node, "openclaw", "import", "--state-dir", str(state)).returncode == 0
    last = session_events(node)[-1]["id"]
    forgot = run_cli(node, "forget", CLAWSYNC_KEY, "--event", last)
    assert forgot.returncode == 0, forgot.stderr
    other = tmp_path / "other"
    (other / "agents").mkdir(parents=True)
    locks = tmp_path / "locks"
    result = export(node, locks, KEY, "--state-dir", str(other))
    assert result.returncode == 0, result.stderr
    assert len(list(locks.glob("openclaw-state-locks-*/*"))) == 3  # OpenClaw's three, not in /tmp
    lines = (other / "agents" / "main" / "sessions" / f"{SID}.jsonl").read_text().splitlines()
    assert 0 < len(lines) < len(transcript.records())
    # Said, not only done: the conversation written is not the whole one.
    assert f"1 event(s) of {CLAWSYNC_KEY!r} were forgotten" in result.stderr


def test_the_path_an_export_wrote_is_printed_escaped(node: NodeProcess,
                                                    tmp_path: Path) -> None:
    """The line that names the file written quotes the OpenClaw folder and the session's
    agent and id: a control character in them reaches the terminal escaped."""
    state = tmp_path / "openclaw"
    gateway = FakeGateway(state)
    gateway.open_session(KEY, SID)
    gateway.add(SID, transcript.records())
    assert run_cli(node, "openclaw", "import", "--state-dir", str(state)).returncode == 0
    other = tmp_path / "other\x1b]0;PWNED\x07"
    (other / "agents").mkdir(parents=True)
    result = export(node, tmp_path / "locks", KEY, "--state-dir", str(other))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout, result.stdout
    assert result.stdout.startswith(f"{tmp_path}/other\\x1b]0;PWNED\\x07/agents/main/"), \
        result.stdout


def test_mistyped_agents_and_folders_are_caught(node: NodeProcess,
                                                      tmp_path: Path) -> None:
    """A typo writes nothing, or not unseen: an --agent the folder does not hold, a
    --data-dir that holds no node's data (it became a new node's folder without a word)
    or lies in a file (a usage error, as one that is a file), and an export into another
    agent's folder (the next import read it back as that agent's copy of the whole
    conversation)."""
    state = tmp_path / "openclaw"
    gateway = FakeGateway(state)
    gateway.open_session(KEY, SID)
    gateway.add(SID, transcript.records())
    nosuch = run_cli(node, "openclaw", "import", "--state-dir", str(state), "--agent", "mian")
    assert nosuch.returncode == 2 and "no agent 'mian'" in nosuch.stderr
    assert "(there: main)" in nosuch.stderr
    typo = tmp_path / "no-such-folder"
    folder = run_cli(node, "openclaw", "import", "--state-dir", str(state),
                     "--data-dir", str(typo))
    assert folder.returncode == 0, folder.stderr  # a new node's folder, said aloud:
    assert f"{typo} holds no node's data yet: a new node's data folder" in folder.stderr
    assert session_events(node) == []
    file = tmp_path / "f"  # a folder in a file: once "Not a directory" (exit 1) on import
    file.write_text("notes\n")
    for command in (("import",), ("watch",), ("export", KEY)):
        inside = run_cli(node, "openclaw", *command, "--state-dir", str(state),
                         "--data-dir", str(file / "sub"))
        assert inside.returncode == 2, (command, inside.stderr)
        assert f"'{file / 'sub'}' is in '{file}', a file, not a folder" in inside.stderr
    assert file.read_text() == "notes\n"
    assert run_cli(node, "openclaw", "import", "--state-dir", str(state)).returncode == 0
    other = tmp_path / "other"
    (other / "agents").mkdir(parents=True)
    wrong = export(node, tmp_path / "locks", CLAWSYNC_KEY, "--state-dir", str(other),
                   "--agent", "other")
    assert wrong.returncode == 2 and "agent 'main'" in wrong.stderr, wrong.stderr
    assert list((other / "agents").iterdir()) == []


def test_an_empty_openclaw_state_dir_variable_means_the_default(node: NodeProcess,
                                                                tmp_path: Path) -> None:
    """OPENCLAW_STATE_DIR set but empty is not set: ~/.openclaw, not the current folder."""
    home = tmp_path / "home"
    gateway = FakeGateway(home / ".openclaw")
    gateway.open_session(KEY, SID)
    gateway.add(SID, transcript.records())
    done = subprocess.run(cli_args(node, "openclaw", "import"), text=True,
                          capture_output=True, cwd=tmp_path, timeout=60, check=False,
                          env=child_env({"OPENCLAW_STATE_DIR": "", "HOME": str(home)}))
    assert done.returncode == 0, done.stderr
    assert len(session_events(node)) > 0


def test_an_event_the_store_refuses_exits_as_the_nodes_refusal(node: NodeProcess,
                                                                tmp_path: Path) -> None:
    """Written into a data folder (--data-dir) or sent to the node, an event dated ahead
    of the clock is refused alike, and exits alike: 1, its record named (not skipped:
    the same import takes it later)."""
    state = tmp_path / "openclaw"
    gateway = FakeGateway(state)
    gateway.open_session(KEY, SID)
    gateway.add(SID, [
        {"type": "session", "version": 3, "id": SID, "timestamp": "2999-01-01T00:00:00.000Z",
         "cwd": "/w"},
        {"type": "message", "id": "00000001", "parentId": None,
         "timestamp": "2999-01-01T00:00:01.000Z",
         "message": {"role": "user", "content": "from the future", "timestamp": 32472144001000}}])
    gateway.close()
    over_http = run_cli(node, "openclaw", "import", "--state-dir", str(state))
    folder = tmp_path / "data"
    embedded = run_cli(node, "openclaw", "import", "--state-dir", str(state),
                       "--data-dir", str(folder))
    for result in (over_http, embedded):
        assert result.returncode == 1, result.stderr
        assert f"session {SID}, seq 0: dated 2999-01-01T00:00:00" in result.stderr
        assert "s ahead of the node's clock" in result.stderr
        assert "Traceback" not in result.stderr
    assert session_events(node) == []


def test_a_second_watch_on_one_data_folder_is_refused(tmp_path: Path) -> None:
    """Two ``watch`` processes on one ``--data-dir`` would save its cursors without a
    condition, each over the other's: the second cannot open the folder the first holds
    (its lock, let go when the first process ends), and says so, exit 1; the first goes
    on, and once it has stopped the folder is free again."""
    state, data = tmp_path / "openclaw", tmp_path / "data"
    gateway = FakeGateway(state)
    gateway.open_session(KEY, SID)
    gateway.add(SID, transcript.records())
    gateway.close()
    nowhere = f"http://127.0.0.1:{free_port()}"  # never asked: the folder is the node
    first = spawn_cli(nowhere, "openclaw", "watch", "--state-dir", str(state),
                      "--data-dir", str(data))
    try:
        LineReader(first.stderr).wait_for(" records read: ")  # type: ignore[arg-type]
        second = run_cli(nowhere, "openclaw", "watch", "--state-dir", str(state),
                         "--data-dir", str(data))
        assert second.returncode == 1, second.stderr
        assert f"the data folder {data.resolve()} is in use by process {first.pid}" \
            in second.stderr, second.stderr
        # Said as what holds it, no node: its lock file says so.
        assert "openclaw watch) on " in second.stderr, second.stderr
        assert "; stop that watch first (its systemd unit too, if it runs as one), or give " \
            "this one another folder" in second.stderr, second.stderr
        assert "stop that node" not in second.stderr, second.stderr
        assert first.poll() is None
    finally:
        stop_cli(first, timeout_s=WATCH_STOP_S)
    again = run_cli(nowhere, "openclaw", "import", "--state-dir", str(state),
                    "--data-dir", str(data))
    assert again.returncode == 0, again.stderr
    assert " 0 new events" in again.stderr


def test_an_import_on_a_data_folder_another_import_holds_is_told_to_let_it_end(
        tmp_path: Path) -> None:
    """An ``import --data-dir`` is refused the folder another import holds in the words
    of its lock file: let that import end (it is no node to stop, nor a watch). The first
    is held at its read of the session file (``tests.support.held_import``) until the
    second has been refused, then imports it."""
    state, data = tmp_path / "openclaw", tmp_path / "data"
    write_jsonl(state, KEY, SID, transcript.records())
    hold = tmp_path / "hold"
    hold.touch()
    nowhere = f"http://127.0.0.1:{free_port()}"  # never asked: the folder is the node
    args = ("openclaw", "import", "--state-dir", str(state), "--data-dir", str(data))
    command = cli_args(nowhere, *args)
    command[command.index("node.main")] = "tests.support.held_import"
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**child_env(), HOLD_ENV: str(hold)})
    try:
        def held() -> str:
            # Written once it is locked; a first import that ended (the lock file stays)
            # fails the test at once, with what it said.
            assert first.poll() is None, first.communicate()
            return (data / LOCK_NAME).read_text()

        wait_until(held, CLI_TIMEOUT_S, "the first import holding the data folder")
        second = run_cli(nowhere, *args)
        assert second.returncode == 1, second.stderr
        # The folder named once: by the lock's words, not again before them.
        assert second.stderr.startswith(f"Error: the data folder {data.resolve()} is in use "
                                        f"by process {first.pid} ("), second.stderr
        assert "openclaw import) on " in second.stderr, second.stderr
        assert "; let that import end first, or give this one another folder" \
            in second.stderr, second.stderr
        hold.unlink()
        _, said = first.communicate(timeout=CLI_TIMEOUT_S)
        assert first.returncode == 0, said
    finally:
        hold.unlink(missing_ok=True)
        stop_cli(first)


def test_a_watch_on_the_folder_a_node_serves_is_told_to_stop_that_node(
        node: NodeProcess, tmp_path: Path) -> None:
    """A ``watch --data-dir`` on the folder a node serves is told to stop that node (or
    to give the watch another folder), as the node's lock file says: what makes way for
    a watch (or an import) goes only into the lock file of the folder it holds, never into
    a node's (which stays the one line an older release writes; ``test_lock.py``)."""
    state = tmp_path / "openclaw"
    gateway = FakeGateway(state)
    gateway.open_session(KEY, SID)
    gateway.add(SID, transcript.records())
    gateway.close()
    refused = run_cli(node, "openclaw", "watch", "--state-dir", str(state),
                      "--data-dir", str(node.data_dir))
    assert refused.returncode == 1, refused.stderr
    assert node.process is not None
    assert f"is in use by process {node.process.pid} (" in refused.stderr, refused.stderr
    assert "; stop that node first, or give this one another folder" in refused.stderr
    assert session_events(node) == []
