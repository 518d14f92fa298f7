"""The cursor keeps an entry per session of the agent: those of sessions OpenClaw deleted
(a transcript file gone, a session's rows gone and not in cold storage) are dropped, so
the cursor holds only the sessions the agent's stores hold (OpenClaw's own maintenance
mostly archives sessions, which keep theirs); a session that comes back is read from its
start, what was stored of it answered as stored. The tests of sessions moved between
stores are in ``test_bridge_cursor_moves``, of an agent over the cursor's limits in
``test_bridge_cursor_limits``, of the room for the files' tail marks in
``test_bridge_cursor_marks``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from crdt.log.cursors import read_cursor
from crdt.log.store import EventStore
from node.openclaw.cursor_room import unmarked
from node.openclaw.jsonl import AgentSessions
from node.openclaw.sqlite import AgentDatabase
from node.openclaw.state import cursor_name
from tests.node.openclaw.support import (
    delete_session,
    delete_transcript,
    records,
    saving_bridge,
)
from tests.node.openclaw.waiting import (
    DRIFT_MS,
    GONE,
    KEY_A,
    KEY_B,
    A,
    B,
    Clock,
    one_pass,
    saved_cursor,
    waiting_bridge,
)
from tests.support.openclaw import FakeGateway, iso_ms, turn_records, write_jsonl


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
