"""The cursor keeps an entry per session of the agent: those of sessions OpenClaw deleted
(a transcript file gone, a session's rows gone and not in cold storage) are dropped, so
a long-lived agent does not creep to the cursor's limits; a session that comes back is
read from its start, what was stored of it answered as stored. An agent whose sessions
are still more than the cursor holds stops the import, named with what to do."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from crdt import codec
from crdt.log.cursors import CURSOR_BYTES_MAX, CURSOR_ENTRIES_MAX, save_cursor
from crdt.log.store import EventStore
from node.openclaw.state import cursor_name
from tests.node.openclaw.support import cli
from tests.node.openclaw.waiting import (
    KEY_A,
    KEY_B,
    A,
    B,
    Clock,
    one_pass,
    saved_cursor,
    waiting_bridge,
)
from tests.support.openclaw import FakeGateway, database_path, turn_records, write_jsonl


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
    assert f"agent 'main' ({database_path(state.resolve())})" in said
    if figure == "entries":
        assert f"{CURSOR_ENTRIES_MAX + 1} entries" in said
        assert f"over the limit of {CURSOR_ENTRIES_MAX}" in said
    else:
        assert "bytes encoded" in said and f"over the limit of {CURSOR_BYTES_MAX}" in said
    assert "delete in OpenClaw the sessions of this agent it no longer needs" in said
