"""Sessions moved from the JSONL folder into SQLite (``openclaw doctor --session-sqlite
import``) lose their old entries before the SQLite step adds their new ones: the cursor
stays under its limits, and a pass midway through the move is stopped, naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

import node.openclaw.cursor_room as cursor_room
from crdt.log.store import EventStore
from node.client.errors import ClientError
from node.openclaw.bridge import Bridge
from node.openclaw.cursor_room import CursorFull
from node.openclaw.state import StateFolder
from tests.node.openclaw.support import (
    SMALL,
    FailingSink,
    files_moved_away,
    into_sqlite,
    saving_bridge,
    small_agent,
)
from tests.node.openclaw.waiting import (
    one_pass,
    saved_cursor,
)


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
