"""The cursor keeps an entry per session of the agent: those of sessions OpenClaw deleted
(a transcript file gone, a session's rows gone and not in cold storage) are dropped, so
the cursor holds only the sessions the agent's stores hold (OpenClaw's own maintenance
mostly archives sessions, which keep theirs); a session that comes back is read from its
start, what was stored of it answered as stored. Sessions moved from the JSONL folder
into SQLite lose their old entries before the SQLite step adds their new ones. An agent
whose sessions are more than the cursor holds stops the import at the step that would
go over, named with what to do, and only that step is read again at the next run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import node.openclaw.cursor_room as cursor_room
import node.openclaw.sqlite as sqlite_module
from crdt import codec
from crdt.log.cursors import CURSOR_BYTES_MAX, CURSOR_ENTRIES_MAX, read_cursor, save_cursor
from crdt.log.store import EventStore
from node.client.errors import ClientError
from node.openclaw.bridge import Bridge
from node.openclaw.cursor_entries import step_cursor
from node.openclaw.cursor_room import CursorFull, unmarked
from node.openclaw.file_marks import tail_mark
from node.openclaw.jsonl import AgentSessions
from node.openclaw.session_keys import KEYS_SUFFIX
from node.openclaw.sqlite import AgentDatabase
from node.openclaw.state import StateFolder, cursor_name
from tests.node.openclaw.support import cli
from tests.node.openclaw.waiting import (
    DRIFT_MS,
    GONE,
    KEY_A,
    KEY_B,
    A,
    B,
    Clock,
    CountingSink,
    one_pass,
    saved_cursor,
    waiting_bridge,
)
from tests.support.openclaw import FakeGateway, iso_ms, turn_records, write_jsonl


def records(session_id: str, turns: int = 2) -> list[dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    return turn_records(session_id, [now_ms - 9000 + n * 1000 for n in range(turns)])


def delete_session(gateway: FakeGateway, session_id: str) -> None:
    """What deleting a session leaves of it in OpenClaw's store: nothing, in one commit."""
    gateway.db.execute("BEGIN")
    tables = ["transcript_events", "transcript_event_identities", "session_windows"]
    for table in tables + (["transcript_rewrite_watermarks"] if gateway.rewrites else []):
        gateway.db.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
    gateway.db.execute("DELETE FROM session_nodes WHERE current_session_id = ?", (session_id,))
    gateway.db.execute("COMMIT")


def delete_transcript(state: Path, session_key: str, session_id: str) -> None:
    """As OpenClaw deletes a session of the older layout: its entry out of the index, its
    file renamed aside (``<id>.jsonl.deleted.<time>``, which no reader takes)."""
    folder = state / "agents" / "main" / "sessions"
    index = json.loads((folder / "sessions.json").read_text())
    del index[session_key]
    (folder / "sessions.json").write_text(json.dumps(index))
    (folder / f"{session_id}.jsonl").rename(folder / f"{session_id}.jsonl.deleted.2026-12-06")


def test_a_deleted_session_loses_its_entry_and_one_in_cold_storage_keeps_it(
        tmp_path: Path) -> None:
    gateway = FakeGateway(tmp_path, rewrites=True)
    a, b = records(A), records(B)
    for key, session_id, rows in ((KEY_A, A, a), (KEY_B, B, b)):
        gateway.open_session(key, session_id)
        gateway.add(session_id, rows)
    with EventStore.open("memory:") as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, [], Clock())
        try:
            assert one_pass(bridge).records == len(a) + len(b)
            assert saved_cursor(tmp_path, store) == {f"db:{A}": len(a), f"db:{B}": len(b)}
            stored = dict(store.version)
            delete_session(gateway, A)
            cold = gateway.archive_cold(B)
            tally = one_pass(bridge)
            assert tally.records == 0 and tally.problems == []
            assert saved_cursor(tmp_path, store) == {f"db:{B}": len(b)}
            assert dict(store.version) == stored  # nothing stored is undone
            gateway.restore_cold(B, cold)
            assert one_pass(bridge).records == 0  # back from cold storage: not read again
            # A comes back under the same id: read from its start; what was stored of it
            # is answered as stored, and only what is new goes in.
            gateway.open_session(KEY_A, A)
            gateway.add(A, a)
            tally = one_pass(bridge)
            assert tally.records == len(a) and tally.created == 0
            assert saved_cursor(tmp_path, store) == {f"db:{A}": len(a), f"db:{B}": len(b)}
            gateway.add(A, records(A, 3)[-1:])
            tally = one_pass(bridge)
            assert tally.records == 1 and tally.created == tally.events > 0
        finally:
            folder.close()
            gateway.close()


def test_a_deleted_transcript_loses_its_entry_and_is_read_anew_if_it_comes_back(
        tmp_path: Path) -> None:
    a, b = records(A), records(B)
    write_jsonl(tmp_path, KEY_A, A, a)
    write_jsonl(tmp_path, KEY_B, B, b)
    with EventStore.open("memory:") as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, [], Clock())
        try:
            assert one_pass(bridge).records == len(a) + len(b)
            size_b = saved_cursor(tmp_path, store)[f"jsonl:{B}"]
            delete_transcript(tmp_path, KEY_A, A)
            tally = one_pass(bridge)
            assert tally.records == 0 and tally.problems == []
            assert saved_cursor(tmp_path, store) == {f"jsonl:{B}": size_b}
            write_jsonl(tmp_path, KEY_A, A, a)  # back under the same id
            tally = one_pass(bridge)
            assert tally.records == len(a) and tally.created == 0
            assert set(saved_cursor(tmp_path, store)) == {f"jsonl:{A}", f"jsonl:{B}"}
        finally:
            folder.close()


@pytest.mark.parametrize("kind", ["db", "jsonl"])
def test_a_long_lived_agent_keeps_entries_of_its_sessions_only(tmp_path: Path,
                                                                kind: str) -> None:
    """Sessions opened and deleted one after another: the cursor holds the live ones."""
    gateway = FakeGateway(tmp_path) if kind == "db" else None
    with EventStore.open("memory:") as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, [], Clock())
        try:
            for n in range(12):
                session_id, key = f"{n:08d}-0000-4000-8000-000000000000", f"agent:main:s{n}"
                if gateway is not None:
                    gateway.open_session(key, session_id)
                    gateway.add(session_id, records(session_id))
                else:
                    write_jsonl(tmp_path, key, session_id, records(session_id))
                assert one_pass(bridge).records == 3
                assert len(saved_cursor(tmp_path, store)) == 1 + n % 2
                if n % 2 == 0:
                    continue  # kept till the next one is read
                for gone in (n - 1, n):
                    gone_id, gone_key = f"{gone:08d}-0000-4000-8000-000000000000", \
                        f"agent:main:s{gone}"
                    if gateway is not None:
                        delete_session(gateway, gone_id)
                    else:
                        delete_transcript(tmp_path, gone_key, gone_id)
                one_pass(bridge)
                assert saved_cursor(tmp_path, store) == {}
        finally:
            folder.close()
            if gateway is not None:
                gateway.close()


def test_nothing_is_dropped_while_what_the_store_holds_cannot_be_told(
        tmp_path: Path) -> None:
    """A ``sessions.json`` that does not read (being written, damaged) says nothing of
    which transcripts are gone: their entries stay until one that reads says so."""
    a, b = records(A), records(B)
    write_jsonl(tmp_path, KEY_A, A, a)
    write_jsonl(tmp_path, KEY_B, B, b)
    with EventStore.open("memory:") as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, [], Clock())
        try:
            one_pass(bridge)
            cursor = saved_cursor(tmp_path, store)
            index = tmp_path / "agents" / "main" / "sessions" / "sessions.json"
            good = index.read_bytes()
            delete_transcript(tmp_path, KEY_A, A)
            index.write_bytes(good[:10])
            assert len(one_pass(bridge).problems) == 1
            assert saved_cursor(tmp_path, store) == cursor
            index.write_bytes(good)  # A's entry in it again, its file still gone
            one_pass(bridge)
            assert saved_cursor(tmp_path, store) == {f"jsonl:{B}": cursor[f"jsonl:{B}"]}
        finally:
            folder.close()


@pytest.mark.parametrize("figure", ["entries", "bytes"])
def test_an_agent_over_the_cursor_limits_is_named_with_what_to_do(tmp_path: Path,
                                                                  figure: str) -> None:
    """``clawsync openclaw import``: an agent with more sessions than its cursor holds
    (here: many in cold storage, which keep their entries, and one new) stops the import,
    naming the agent, the figure and its limit, and what the user can do."""
    state, data = tmp_path / "state", tmp_path / "data"
    gateway = FakeGateway(state, rewrites=True)
    if figure == "entries":
        cold = [f"cold-{n:05d}" for n in range(CURSOR_ENTRIES_MAX)]
    else:  # long ids (an entry is 256 bytes at most): the encoded size is over first
        # Each entry 252 bytes in CBOR ("db:" and 246 characters, 2 bytes of header, a
        # small integer), after a map's 3: the cursor just under the limit.
        cold = [f"{n:05d}-" + "c" * 240 for n in range((CURSOR_BYTES_MAX - 3) // 252)]
    gateway.db.execute("BEGIN")
    gateway.db.executemany(
        "INSERT INTO session_transcript_cold_archives VALUES (?, 'g', ?, ?, 1, 0, 0, 1, 0, "
        "'file', NULL)", [(sid, sid + ".jsonl.zst", "0" * 64) for sid in cold])
    gateway.db.execute("COMMIT")
    result = cli("import", "--state-dir", str(state), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    cursor = {f"db:{sid}": 2 for sid in cold}
    size = len(codec.encode_fast(cursor))
    assert len(cursor) <= CURSOR_ENTRIES_MAX and size <= CURSOR_BYTES_MAX
    assert figure == "entries" or size > CURSOR_BYTES_MAX - 40  # one more entry is over
    with EventStore.open(data) as store:  # imported before they went to cold storage
        save_cursor(store, cursor_name(state.resolve(), "main"), cursor)
    gateway.open_session(KEY_A, A)
    gateway.add(A, records(A))
    gateway.close()
    result = cli("import", "--state-dir", str(state), "--data-dir", str(data))
    assert result.exit_code == 1
    said = result.output
    assert f"agent 'main' ({state.resolve()}/agents/main)" in said
    if figure == "entries":
        assert f"{CURSOR_ENTRIES_MAX + 1} sessions" in said
        assert f"over the limit of {CURSOR_ENTRIES_MAX}" in said
    else:
        assert "bytes encoded" in said and f"over the limit of {CURSOR_BYTES_MAX}" in said
    assert "delete in OpenClaw the sessions of this agent it no longer needs" in said


#: The cursor's limit of entries in the tests of sessions moved into SQLite: an agent of
#: this many sessions fits, and each of them in both stores does not. A file's tail mark
#: (``cursor_room.TAIL_PREFIX``) is not counted: it is kept only while there is room.
SMALL = 4


class SavingSink(CountingSink):
    """An embedded store that keeps each agent's cursor saved (not the keys remembered
    beside it, ``node.openclaw.session_keys``: a cursor of their own, in their limits)."""

    def __init__(self, store: EventStore) -> None:
        super().__init__(store)
        self.saved: list[dict[str, int]] = []

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        if not name.endswith(KEYS_SUFFIX):
            self.saved.append(dict(cursor))
        await super().save_cursor(name, cursor)


def saving_bridge(state: Path, store: EventStore) -> tuple[Bridge, SavingSink, StateFolder]:
    sink, folder = SavingSink(store), StateFolder(state)
    return Bridge(folder, sink), sink, folder


def small_agent(state: Path) -> list[str]:
    """``SMALL`` sessions in the agent's JSONL folder."""
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(SMALL)]
    for n, session_id in enumerate(ids):
        write_jsonl(state, f"agent:main:s{n}", session_id, records(session_id))
    return ids


def into_sqlite(state: Path, ids: list[str]) -> FakeGateway:
    """The first half of ``openclaw doctor --session-sqlite import``: each session's rows
    in the agent's SQLite store (its JSONL file still there)."""
    gateway = FakeGateway(state)
    for n, session_id in enumerate(ids):
        gateway.open_session(f"agent:main:s{n}", session_id)
        gateway.add(session_id, records(session_id))
    return gateway


def files_moved_away(state: Path, ids: list[str]) -> None:
    """Its second half: the JSONL files moved out of the sessions folder, the index
    emptied."""
    sessions = state / "agents" / "main" / "sessions"
    for session_id in ids:
        (sessions / f"{session_id}.jsonl").rename(state / f"{session_id}.jsonl.imported")
    (sessions / "sessions.json").write_text("{}")


@pytest.mark.parametrize("restarted", [False, True])
def test_sessions_moved_into_sqlite_leave_a_cursor_under_its_limits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restarted: bool) -> None:
    """The SQLite store is read before the JSONL folder: its step adds the moved
    sessions' entries before the folder's drops their old ones, which together are over
    the limits. Not an agent with too many sessions: the pass goes through, the cursor
    saved holds the SQLite entries only, and no cursor over the limits is ever saved;
    whether ``watch`` goes on or starts again after the move."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    ids = small_agent(tmp_path)
    with EventStore.open("memory:") as store:
        bridge, sink, folder = saving_bridge(tmp_path, store)
        gateway = None
        try:
            assert one_pass(bridge).records == 3 * SMALL
            assert set(saved_cursor(tmp_path, store)) == {f"jsonl:{sid}" for sid in ids}
            gateway = into_sqlite(tmp_path, ids)
            files_moved_away(tmp_path, ids)
            if restarted:
                folder.close()
                bridge, sink, folder = saving_bridge(tmp_path, store)
            sink.saved.clear()
            tally = one_pass(bridge)
            assert tally.records == 3 * SMALL and tally.problems == []
            assert saved_cursor(tmp_path, store) == {f"db:{sid}": 3 for sid in ids}
            assert sink.saved and all(len(cursor) <= SMALL for cursor in sink.saved)
            assert one_pass(bridge, only_changed=False).records == 0  # and on from there
        finally:
            folder.close()
            if gateway is not None:
                gateway.close()


def test_sessions_in_both_stores_over_the_limits_stop_the_pass_and_save_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Midway through the move (the rows in SQLite, the files not moved yet) the cursor
    would hold each session twice: over the limits, which stops the pass naming the
    agent's folder and the move under way, to wait for (not deleting sessions, which
    the agent does not need); the cursor saved stays as it was (what was read is read
    again). Once the files are moved, a pass goes through."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    ids = small_agent(tmp_path)
    with EventStore.open("memory:") as store:
        bridge, sink, folder = saving_bridge(tmp_path, store)
        gateway = None
        try:
            one_pass(bridge)
            before = saved_cursor(tmp_path, store)
            assert set(before) == {f"jsonl:{sid}" for sid in ids}
            gateway = into_sqlite(tmp_path, ids)
            sink.saved.clear()
            with pytest.raises(CursorFull) as raised:
                one_pass(bridge)
            said = str(raised.value)
            assert f"agent 'main' ({tmp_path}/agents/main)" in said
            assert f"{2 * SMALL} sessions (an entry each), over the limit of {SMALL} entries" \
                in said
            assert f"{SMALL} of its sessions are in both its SQLite store" in said
            assert "once the move is done" in said and "delete" not in said
            assert saved_cursor(tmp_path, store) == before and sink.saved == []
            files_moved_away(tmp_path, ids)
            folder.close()
            bridge, sink, folder = saving_bridge(tmp_path, store)
            one_pass(bridge)
            assert saved_cursor(tmp_path, store) == {f"db:{sid}": 3 for sid in ids}
        finally:
            folder.close()
            if gateway is not None:
                gateway.close()


@pytest.mark.parametrize("kind", ["db", "jsonl"])
def test_a_rewinds_copy_time_goes_with_its_deleted_session_only(tmp_path: Path,
                                                                kind: str) -> None:
    """A session beginning a rewind's copy has a second entry (``copy:``, its header's
    time): dropped with its session when OpenClaw deletes it, kept for one still there."""
    header_ms = int(time.time() * 1000)

    def copied(session_id: str) -> list[dict[str, Any]]:
        rows = records(session_id)  # the header newer than the records after it: a copy
        return [{**rows[0], "timestamp": iso_ms(header_ms)}, *rows[1:]]

    gateway = FakeGateway(tmp_path) if kind == "db" else None
    for key, session_id in ((KEY_A, A), (KEY_B, B)):
        if gateway is not None:
            gateway.open_session(key, session_id)
            gateway.add(session_id, copied(session_id))
        else:
            write_jsonl(tmp_path, key, session_id, copied(session_id))
    with EventStore.open("memory:") as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, [], Clock())
        try:
            one_pass(bridge)
            cursor = saved_cursor(tmp_path, store)
            assert set(cursor) == {f"{kind}:{A}", f"copy:{kind}:{A}", f"{kind}:{B}",
                                   f"copy:{kind}:{B}"}
            assert cursor[f"copy:{kind}:{B}"] == header_ms
            if gateway is not None:
                delete_session(gateway, A)
            else:
                delete_transcript(tmp_path, KEY_A, A)
            one_pass(bridge)
            assert saved_cursor(tmp_path, store) == {
                entry: after for entry, after in cursor.items() if entry.endswith(B)}
        finally:
            folder.close()
            if gateway is not None:
                gateway.close()


def test_a_waiting_session_gone_keeps_its_entry_while_a_read_met_trouble(
        tmp_path: Path) -> None:
    """A's next record waits for the node's clock. Its file is deleted while B's last line
    is still being written (no newline yet): a read that met that may have missed A, so A
    waits on and keeps its entry; the next read without trouble ends the wait (said) and
    drops the entry."""
    now_ms = int(time.time() * 1000)
    write_jsonl(tmp_path, KEY_A, A, turn_records(A, [now_ms - 5000, now_ms + 3_600_000]))
    path_b = write_jsonl(tmp_path, KEY_B, B, records(B))
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            assert len(one_pass(bridge).waiting) == 1
            kept = saved_cursor(tmp_path, store)
            assert set(kept) == {f"jsonl:{A}", f"jsonl:{B}"}
            delete_transcript(tmp_path, KEY_A, A)
            line = json.dumps({"type": "message", "id": "b0000009", "parentId": None,
                               "timestamp": iso_ms(now_ms - 1000),
                               "message": {"role": "user", "content": "more",
                                           "timestamp": now_ms - 1000}}).encode() + b"\n"
            with path_b.open("ab") as file:
                file.write(line[:20])
            one_pass(bridge)
            assert saved_cursor(tmp_path, store) == kept
            assert not any(GONE in text for text in told)
            with path_b.open("ab") as file:
                file.write(line[20:])
            assert one_pass(bridge).records == 1
            assert set(saved_cursor(tmp_path, store)) == {f"jsonl:{B}"}
            assert any(GONE in text for text in told)
        finally:
            folder.close()


class FailingSink(SavingSink):
    """Its ``fail_at``-th cursor save from now (1: the next) fails as a node that is
    down does; ``watch`` then runs the same bridge again."""

    fail_at = 0

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        self.fail_at -= 1
        if self.fail_at == 0:
            raise ClientError("cannot reach the node", status=None)
        await super().save_cursor(name, cursor)


@pytest.mark.parametrize("failing", [1, 2])
def test_a_failed_save_during_the_move_is_tried_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: int) -> None:
    """The files moved away: the pass's first save drops their entries, its second saves
    the SQLite step's. Either failing (the node down), the pass stops with the node's
    error, and the same bridge's next pass goes through."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    ids = small_agent(tmp_path)
    with EventStore.open("memory:") as store:
        sink, folder = FailingSink(store), StateFolder(tmp_path)
        bridge = Bridge(folder, sink)
        gateway = None
        try:
            one_pass(bridge)
            gateway = into_sqlite(tmp_path, ids)
            files_moved_away(tmp_path, ids)
            sink.fail_at = failing
            with pytest.raises(ClientError):
                one_pass(bridge)
            tally = one_pass(bridge)
            assert tally.problems == []
            assert saved_cursor(tmp_path, store) == {f"db:{sid}": 3 for sid in ids}
            assert all(len(cursor) <= SMALL for cursor in sink.saved)
        finally:
            folder.close()
            if gateway is not None:
                gateway.close()


def test_an_agent_truly_over_the_limits_reads_one_step_again_per_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three times as many sessions as the cursor holds, one session per read: the first
    run saves the cursor up to the limit and stops at the step that would go over it,
    with the advice to delete sessions; each run after it (systemd restarts ``watch``
    every 5 s) reads and sends that one step again, not all the sessions past the limit."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    monkeypatch.setattr(sqlite_module, "ROWS_PER_READ", 3)  # a session's rows: one a read
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(3 * SMALL)]
    gateway = FakeGateway(tmp_path)
    for n, session_id in enumerate(ids):
        gateway.open_session(f"agent:main:s{n}", session_id)
        gateway.add(session_id, records(session_id))
    sent: list[int] = []
    with EventStore.open("memory:") as store:
        try:
            for _run in range(3):
                bridge, sink, folder = saving_bridge(tmp_path, store)
                try:
                    with pytest.raises(CursorFull) as raised:
                        one_pass(bridge)
                finally:
                    folder.close()
                said = str(raised.value)
                assert f"{SMALL + 1} sessions" in said
                assert "delete in OpenClaw the sessions" in said and "move" not in said
                assert saved_cursor(tmp_path, store) == {f"db:{sid}": 3
                                                         for sid in ids[:SMALL]}
                assert all(len(cursor) <= SMALL for cursor in sink.saved)
                sent.append(sum(len(batch) for batch in sink.sent))
        finally:
            gateway.close()
    one_session = sent[0] // (SMALL + 1)  # the first run: the sessions saved, and one
    assert sent == [(SMALL + 1) * one_session, one_session, one_session]


def test_every_agent_over_the_limits_is_named(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two agents over the limits: both named, the other agents imported all the same."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    gateways = [FakeGateway(tmp_path, agent_id) for agent_id in ("a", "b", "c")]
    for gateway, sessions in zip(gateways, (SMALL + 1, SMALL, SMALL + 2), strict=True):
        for n in range(sessions):
            session_id = f"{n:08d}-0000-4000-8000-000000000000"
            gateway.open_session(f"agent:x:s{n}", session_id)
            gateway.add(session_id, records(session_id))
    with EventStore.open("memory:") as store:
        bridge, _sink, folder = saving_bridge(tmp_path, store)
        try:
            with pytest.raises(CursorFull) as raised:
                one_pass(bridge)
        finally:
            folder.close()
            for gateway in gateways:
                gateway.close()
        said = str(raised.value)
        assert f"agent 'a' ({tmp_path}/agents/a)" in said
        assert f"agent 'c' ({tmp_path}/agents/c)" in said and "agent 'b'" not in said
        assert said.endswith("\nThe other agents are imported.")
        assert len(read_cursor(store, cursor_name(tmp_path.resolve(), "b")) or {}) == SMALL


def test_a_pass_looks_across_stores_only_for_an_agent_with_two(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent with one store drops the entries of its gone sessions in its own step (its
    read's ``present``): watch passes over it never look at which sessions a store holds
    apart from that read, a look that costs about as much as the read (seconds for an
    agent of 20,000 files). Nor does one over an agent with two stores of which only one
    changed: the other's last read tells. Only a pass where both changed looks again,
    at the one read second."""
    looked: list[str] = []
    for reader in (AgentDatabase, AgentSessions):
        def counted(self: Any, _sessions: Any = reader.sessions) -> set[str] | None:
            looked.append(self.agent_id)
            return _sessions(self)  # type: ignore[no-any-return]
        monkeypatch.setattr(reader, "sessions", counted)
    db_only, files_only = FakeGateway(tmp_path, "d"), "f"
    both = FakeGateway(tmp_path, "main")
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(4)]
    with EventStore.open("memory:") as store:
        bridge, _sink, folder = saving_bridge(tmp_path, store)
        try:
            for n, session_id in enumerate(ids):
                db_only.open_session(f"agent:d:s{n}", session_id)
                db_only.add(session_id, records(session_id))
                write_jsonl(tmp_path, f"agent:f:s{n}", session_id, records(session_id),
                            agent_id=files_only)
                assert one_pass(bridge).records == 6
            delete_session(db_only, ids[0])
            (tmp_path / "agents" / "f" / "sessions" / f"{ids[0]}.jsonl").unlink()
            one_pass(bridge)
            assert looked == []
            assert len(read_cursor(store, cursor_name(tmp_path.resolve(), "d")) or {}) == 3
            files = read_cursor(store, cursor_name(tmp_path.resolve(), "f")) or {}
            assert len(unmarked(files)) == 3 and len(files) == 6  # each with its tail mark
            # Agent "main": rows in SQLite, then a file too; each pass changes one store.
            both.open_session(KEY_A, A)
            both.add(A, records(A))
            one_pass(bridge)
            write_jsonl(tmp_path, KEY_B, B, records(B))
            one_pass(bridge)
            both.add(A, records(A, 3)[-1:])
            one_pass(bridge)
            assert looked == []
            assert set(saved_cursor(tmp_path, store)) == {f"db:{A}", f"jsonl:{B}"}
            both.add(A, records(A, 4)[-1:])
            write_jsonl(tmp_path, KEY_A, A, records(A))
            one_pass(bridge)
            assert looked == ["main"]
        finally:
            folder.close()
            db_only.close()
            both.close()


def test_a_files_entries_go_though_only_sqlite_changed_since_the_command_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The files moved away and the index with them, the sessions folder left empty,
    while clawsync was stopped: the first pass of the next run sees the SQLite store
    changed but not the folder (nothing in it changed since it started looking), which it
    never read. The folder is looked at all the same, and its sessions' entries dropped
    before the SQLite step adds those of their rows: the cursor is under its limits."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    ids = small_agent(tmp_path)
    with EventStore.open("memory:") as store:
        bridge, _sink, folder = saving_bridge(tmp_path, store)
        one_pass(bridge)
        folder.close()
        gateway = into_sqlite(tmp_path, ids)
        try:
            files_moved_away(tmp_path, ids)
            (tmp_path / "agents" / "main" / "sessions" / "sessions.json").unlink()
            bridge, sink, folder = saving_bridge(tmp_path, store)
            try:
                tally = one_pass(bridge)
            finally:
                folder.close()
            assert tally.records == 3 * SMALL and tally.problems == []
            assert saved_cursor(tmp_path, store) == {f"db:{sid}": 3 for sid in ids}
            assert sink.saved and all(len(cursor) <= SMALL for cursor in sink.saved)
        finally:
            gateway.close()


def test_a_jsonl_agent_truly_over_the_limits_saves_the_sessions_that_fit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One JSONL step reads every file of the folder: an agent with three times as many
    sessions as the cursor holds goes over in its first step. Where the sessions that fit
    were read up to is saved all the same, and each run after (systemd restarts
    ``watch``) reads and sends again only the sessions that do not fit."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(3 * SMALL)]
    for n, session_id in enumerate(ids):
        write_jsonl(tmp_path, f"agent:main:s{n}", session_id, records(session_id))
    folder_of = tmp_path / "agents" / "main" / "sessions"
    sent: list[int] = []
    with EventStore.open("memory:") as store:
        for _run in range(3):
            bridge, sink, folder = saving_bridge(tmp_path, store)
            try:
                with pytest.raises(CursorFull) as raised:
                    one_pass(bridge)
            finally:
                folder.close()
            said = str(raised.value)
            assert f"{3 * SMALL} sessions" in said and "delete in OpenClaw" in said
            assert "each run reads again the records of those that do not" in said
            assert saved_cursor(tmp_path, store) == {
                f"jsonl:{sid}": (folder_of / f"{sid}.jsonl").stat().st_size
                for sid in ids[:SMALL]}
            assert all(len(cursor) <= SMALL for cursor in sink.saved)
            sent.append(sum(len(batch) for batch in sink.sent))
    one_session = sent[0] // (3 * SMALL)
    assert sent == [3 * SMALL * one_session, 2 * SMALL * one_session,
                    2 * SMALL * one_session]


def test_a_session_that_does_not_fit_is_passed_over_for_later_ones_that_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the limits in bytes, a new session whose long id does not fit is passed over,
    not stopped at: the shorter one after it fits, and is saved read on too; only the
    long one is named as over and read again at the next run."""
    ids = ["a-0000", "b-" + "x" * 120, "c-0000"]
    for n, session_id in enumerate(ids):
        write_jsonl(tmp_path, f"agent:main:s{n}", session_id, records(session_id))
    folder_of = tmp_path / "agents" / "main" / "sessions"
    fits = {f"jsonl:{sid}": (folder_of / f"{sid}.jsonl").stat().st_size
            for sid in (ids[0], ids[2])}
    monkeypatch.setattr(cursor_room, "CURSOR_BYTES_MAX", len(codec.encode_fast(fits)))
    with EventStore.open("memory:") as store:
        bridge, sink, folder = saving_bridge(tmp_path, store)
        try:
            with pytest.raises(CursorFull) as raised:
                one_pass(bridge)
        finally:
            folder.close()
        assert "bytes encoded" in str(raised.value)
        assert read_cursor(store, cursor_name(tmp_path.resolve(), "main")) == fits  # no mark
        assert all(len(codec.encode_fast(cursor)) <= len(codec.encode_fast(fits))
                   for cursor in sink.saved)


@pytest.mark.parametrize(("limit", "fits"), [
    (5, {"a": 5, "b": 1, "c": 2, "copy:c": 9, "d": 3}),
    (4, {"a": 5, "b": 1, "c": 2, "copy:c": 9}),
    (3, {"a": 5, "b": 1, "d": 3}),  # c does not fit with its copy time; d after it does
])
def test_what_fits_keeps_a_sessions_copy_time_with_it(
        monkeypatch: pytest.MonkeyPatch, limit: int, fits: dict[str, int]) -> None:
    """Over the limits, the sessions kept are saved read on, and each new one in their
    order that fits, each with its rewind's copy time or not at all. Over them, the
    figure counts the sessions, and the entries their copy times add."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", limit)
    after = {"a": 5, "b": 1, "c": 2, "copy:c": 9, "d": 3}
    assert cursor_room.room_over(after) == (None if limit == 5 else (
        "4 sessions (5 entries: one each, and one per rewind's copy being read), over "
        f"the limit of {limit} entries"))
    assert cursor_room.what_fits({"a": 1, "b": 1}, after) == fits
    # A session kept whose move adds its copy time: both, or neither if that is over.
    assert cursor_room.what_fits({"a": 1, "b": 1, "x": 1},
                                 {"a": 1, "b": 1, "x": 4, "copy:x": 2}) == (
        {"a": 1, "b": 1, "x": 4, "copy:x": 2} if limit >= 4 else {"a": 1, "b": 1, "x": 1})


@pytest.mark.parametrize("command", ["import", "watch"])
@pytest.mark.parametrize("others", [True, False])
def test_import_and_watch_sum_up_what_they_read_when_an_agent_is_over_the_limits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, others: bool, command: str) -> None:
    """``clawsync openclaw import`` (and ``watch``, whose first pass stops it) with an
    agent over the limits exits 1 naming it, after the summary of what it read; its words
    end saying the other agents are imported, when there are others."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    state, data = tmp_path / "state", tmp_path / "data"
    for agent_id, sessions in (("a", SMALL + 1), ("b", SMALL))[:2 if others else 1]:
        gateway = FakeGateway(state, agent_id)
        for n in range(sessions):
            session_id = f"{n:08d}-0000-4000-8000-000000000000"
            gateway.open_session(f"agent:{agent_id}:s{n}", session_id)
            gateway.add(session_id, records(session_id))
        gateway.close()
    result = cli(command, "--state-dir", str(state), "--data-dir", str(data))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    summary = next(n for n, line in enumerate(lines) if " records read: " in line)
    assert summary < next(n for n, line in enumerate(lines) if "agent 'a'" in line)
    # Agent a's one step goes over: its records are stored all the same, and counted.
    read = 3 * (2 * SMALL + 1 if others else SMALL + 1)
    assert lines[summary].startswith(f"{read} records read: {read} new events")
    assert result.output.rstrip().endswith("The other agents are imported.") == others


def test_a_files_tail_mark_is_saved_with_its_offset_only_while_there_is_room(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The limits are checked on the offsets (and copy times) alone; a file's tail mark
    is saved only after every one of them, while there is room, and only with the
    offset it was taken at: a mark of another offset would tell the file rewritten at
    each read."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", 3)
    moved = {"jsonl:a": 5, "tail:jsonl:a": 7, "jsonl:b": 3, "tail:jsonl:b": 9}
    # b's mark does not fit: it never costs b its offset.
    assert step_cursor({}, set(), moved) == (
        {"jsonl:a": 5, "jsonl:b": 3, "tail:jsonl:a": 7}, None)
    # b read on, its new mark does not fit: its old one goes in the same save.
    cursor = {"jsonl:b": 1, "tail:jsonl:b": 2, "jsonl:c": 4}
    assert step_cursor(cursor, set(), moved) == (
        {"jsonl:b": 3, "jsonl:c": 4, "jsonl:a": 5}, None)
    # An offset moved without a mark (read again from its start): its old mark goes.
    assert step_cursor(cursor, set(), {"jsonl:b": 0}) == (
        {"jsonl:b": 0, "jsonl:c": 4}, None)
    # A session gone leaves room for a mark kept.
    assert step_cursor(cursor, {"jsonl:c"}, {}) == ({"jsonl:b": 1, "tail:jsonl:b": 2}, None)
    # Over the limits without marks: what fits, and the figure said of the offsets.
    over = {"jsonl:a": 5, "jsonl:b": 3, "jsonl:c": 4, "jsonl:d": 1}
    assert step_cursor({"jsonl:c": 4, "tail:jsonl:c": 8}, set(),
                       {**moved, "jsonl:d": 1, "tail:jsonl:d": 6}) == (
        {"jsonl:c": 4, "jsonl:a": 5, "jsonl:b": 3}, over)


def test_the_marks_of_the_files_a_step_read_go_before_those_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Room for one mark: it goes to the file the step read (or read again), whose
    session is still written, not to one kept from an earlier step."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", 3)
    cursor = {"jsonl:a": 5, "tail:jsonl:a": 7, "jsonl:b": 1, "tail:jsonl:b": 2}
    assert step_cursor(cursor, set(), {"jsonl:b": 3, "tail:jsonl:b": 9}) == (
        {"jsonl:a": 5, "jsonl:b": 3, "tail:jsonl:b": 9}, None)
    # Its mark alone moved (read again up to its old offset): the same.
    assert step_cursor(cursor, set(), {"tail:jsonl:b": 9}) == (
        {"jsonl:a": 5, "jsonl:b": 1, "tail:jsonl:b": 9}, None)
    # A new session read: its mark, not the kept one.
    assert step_cursor({"jsonl:a": 5, "tail:jsonl:a": 7}, set(),
                       {"jsonl:c": 4, "tail:jsonl:c": 6}) == (
        {"jsonl:a": 5, "jsonl:c": 4, "tail:jsonl:c": 6}, None)


def test_an_agent_that_fits_without_its_marks_goes_through_with_those_that_fit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``SMALL - 1`` JSONL sessions under a limit of ``SMALL`` entries fit, as they did
    before files had tail marks: every offset is saved, and the mark of the first file
    read, the one there is room for; the next import reads nothing again."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(SMALL - 1)]
    paths = [write_jsonl(tmp_path, f"agent:main:s{n}", sid, records(sid))
             for n, sid in enumerate(ids)]
    with EventStore.open("memory:") as store:
        bridge, _sink, folder = saving_bridge(tmp_path, store)
        try:
            assert one_pass(bridge).records == 3 * len(ids)
        finally:
            folder.close()
        assert read_cursor(store, cursor_name(tmp_path.resolve(), "main")) == {
            **{f"jsonl:{sid}": path.stat().st_size for sid, path in zip(ids, paths, strict=True)},
            f"tail:jsonl:{ids[0]}": tail_mark(paths[0].read_bytes())}
        bridge, _sink, folder = saving_bridge(tmp_path, store)
        try:
            assert one_pass(bridge).records == 0
        finally:
            folder.close()


def test_a_cursor_full_of_offsets_saved_before_marks_still_reads_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cursor of the release before files had tail marks, as many sessions as the
    limit: a file that grew is read on, its offset moved (no room for its mark), and the
    pass goes through; the next reads nothing again."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(SMALL)]
    grown = records(ids[0], 3)
    paths = [write_jsonl(tmp_path, f"agent:main:s{n}", sid, grown[:-1] if n == 0 else
                         records(sid)) for n, sid in enumerate(ids)]
    name = cursor_name(tmp_path.resolve(), "main")
    with EventStore.open("memory:") as store:
        save_cursor(store, name, {f"jsonl:{sid}": path.stat().st_size
                                  for sid, path in zip(ids, paths, strict=True)})
        write_jsonl(tmp_path, "agent:main:s0", ids[0], grown)  # a third turn appended
        for expected in (1, 0):  # the third turn, then nothing
            bridge, _sink, folder = saving_bridge(tmp_path, store)
            try:
                assert one_pass(bridge).records == expected
            finally:
                folder.close()
            assert read_cursor(store, name) == {f"jsonl:{sid}": path.stat().st_size
                                                for sid, path in zip(ids, paths, strict=True)}


def test_a_file_read_on_whose_mark_no_longer_fits_keeps_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file read on whose new mark does not fit (a new session took the room) loses
    its old one in the same save: beside the new offset it would tell the file
    rewritten, and read it all again, at each run."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", 3)
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(3)]
    grown = records(ids[0], 3)
    paths = [write_jsonl(tmp_path, "agent:main:s0", ids[0], grown[:-1]),
             write_jsonl(tmp_path, "agent:main:s1", ids[1], records(ids[1]))]
    name = cursor_name(tmp_path.resolve(), "main")
    with EventStore.open("memory:") as store:
        bridge, _sink, folder = saving_bridge(tmp_path, store)
        try:
            one_pass(bridge)
            assert read_cursor(store, name) == {
                f"jsonl:{ids[0]}": paths[0].stat().st_size,
                f"tail:jsonl:{ids[0]}": tail_mark(paths[0].read_bytes()),
                f"jsonl:{ids[1]}": paths[1].stat().st_size}
            write_jsonl(tmp_path, "agent:main:s0", ids[0], grown)  # a third turn appended
            paths.append(write_jsonl(tmp_path, "agent:main:s2", ids[2], records(ids[2])))
            assert one_pass(bridge).records == 1 + 3  # s0's third turn, s2
        finally:
            folder.close()
        assert read_cursor(store, name) == {f"jsonl:{sid}": path.stat().st_size
                                            for sid, path in zip(ids, paths, strict=True)}
        bridge, _sink, folder = saving_bridge(tmp_path, store)  # a first look at each
        try:
            assert one_pass(bridge).records == 0
        finally:
            folder.close()
