"""Records the node refuses for their time (dated ahead of its clock): they wait without
holding back other sessions, are not tried again at every look, are sent once taken, and
what follows them in their session is neither imported nor reported before them."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import pytest

from crdt.log.store import EventStore
from node.cli.openclaw_run import _summary, import_failure
from node.openclaw import sqlite
from node.openclaw.pace import AHEAD_RETRY_MAX_S, AHEAD_RETRY_MIN_S
from node.openclaw.tally import Tally
from tests.node.openclaw.support import look_as_python_314
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
    widened,
    write_a,
)
from tests.support.openclaw import (
    FakeGateway,
    database_path,
    turn_records,
    write_jsonl,
    write_sessions,
)


def test_a_waiting_session_leaves_the_read_to_the_sessions_after_it(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    # A sorts first; its second turn is an hour ahead, with more rows after it than a
    # read takes.
    a = turn_records(A, [now_ms - 5000, now_ms + 3_600_000]
                + [now_ms - 4000] * (sqlite.ROWS_PER_READ + 10))
    b = turn_records(B, [now_ms - 3000, now_ms - 2000])
    write_sessions(tmp_path, {(KEY_A, A): a, (KEY_B, B): b})
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            tally = one_pass(bridge, only_changed=False)
        finally:
            folder.close()
        assert len(tally.waiting) == 1 and tally.problems == []
        assert saved_cursor(tmp_path, store) == {f"db:{A}": 2, f"db:{B}": len(b)}


def test_a_waiting_session_is_tried_again_when_the_node_should_take_it(
        tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    ahead_s = 30  # well within AHEAD_RETRY_MAX_S: tried again after about this, not before
    assert ahead_s - 10 > AHEAD_RETRY_MIN_S and ahead_s + 10 < AHEAD_RETRY_MAX_S
    write_sessions(tmp_path, {(KEY_A, A): turn_records(A, [now_ms - 5000,
                                                            now_ms + ahead_s * 1000])})
    told: list[str] = []
    clock = Clock()
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, sink, folder = waiting_bridge(tmp_path, store, told, clock)
        try:
            assert len(one_pass(bridge).waiting) == 1
            sent = len(sink.sent)
            for _look in range(5):  # looks before its time: no request
                clock.now_s += (ahead_s - 10) / 5
                assert one_pass(bridge).waiting == []
            assert len(sink.sent) == sent
            clock.now_s += 20  # its time has come: tried once, refused (the store's
            one_pass(bridge)      # clock has not moved on), and not said again
            assert len(sink.sent) == sent + 1
            one_pass(bridge)
            assert len(sink.sent) == sent + 1
            assert sum("dated" in text for text in told) == 1
        finally:
            folder.close()


def _taken_once(state: Path, done: dict[str, int], looks: int = 1) -> None:
    """Import ``state`` (one record waits; ``looks`` passes), then let a store with a
    wider bound take it: every event is sent once, none twice, and the cursor ends at
    ``done``."""
    told: list[str] = []
    clock = Clock()
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store, \
            EventStore.open("memory:", clock_drift_max_ms=10 * 3_600_000) as wide:
        bridge, _sink, folder = waiting_bridge(state, store, told, clock)
        try:
            assert len(one_pass(bridge).waiting) == 1
            for _look in range(looks - 1):
                assert one_pass(bridge).waiting == []
            bridge.sink = later = widened(state, store, wide)
            clock.now_s += AHEAD_RETRY_MAX_S
            tally = one_pass(bridge)
        finally:
            folder.close()
        sent = [event for events in later.sent for event in events]
        assert len(sent) == len(set(sent)) == tally.created == tally.events > 0
        assert saved_cursor(state, wide) == done
        assert any(text.endswith("the node has taken it now") for text in told)


def test_a_waiting_record_once_taken_is_sent_once(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms + 3_600_000, now_ms - 4000])
    write_sessions(tmp_path, {(KEY_A, A): a})
    _taken_once(tmp_path, {f"db:{A}": len(a)})


def test_a_waiting_record_in_a_jsonl_transcript(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms + 3_600_000, now_ms - 4000])
    write_jsonl(tmp_path, KEY_A, A, a)
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, [], Clock())
        try:
            tally = one_pass(bridge)
        finally:
            folder.close()
        assert len(tally.waiting) == 1 and tally.records == 2
        lines = (tmp_path / "agents/main/sessions" / f"{A}.jsonl").read_bytes().split(b"\n")
        assert saved_cursor(tmp_path, store) == {f"jsonl:{A}": len(lines[0]) + len(lines[1]) + 2}
    _taken_once(tmp_path, {f"jsonl:{A}": len(b"\n".join(lines))})
    # Taken from what an earlier look kept of its unchanged file: the same.
    _taken_once(tmp_path, {f"jsonl:{A}": len(b"\n".join(lines))}, looks=3)


def test_a_problem_after_a_waiting_record_is_reported_once_passed(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    gateway = FakeGateway(tmp_path)
    gateway.open_session(KEY_A, A)
    gateway.add(A, turn_records(A, [now_ms - 5000, now_ms + 3_600_000]))
    gateway.add_row(A, 3, "{not json", None)
    gateway.close()
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            tally = one_pass(bridge)
        finally:
            folder.close()
        assert tally.problems == [] and len(tally.waiting) == 1
        assert not any("seq 3" in text for text in told)
        assert saved_cursor(tmp_path, store) == {f"db:{A}": 2}


def test_an_import_that_skipped_and_waits_says_both() -> None:
    said = import_failure(Tally(problems=["p"], waiting=["w", "v"]))
    assert said is not None
    assert said.startswith("1 record or file was skipped (named above); 2 records are "
                           "dated ahead of the node's clock (named above): they and the "
                           "records after them in their sessions")
    assert "the rest is imported" in said and "openclaw watch" in said
    assert import_failure(Tally(records=3)) is None


def test_counts_of_one_read_as_one() -> None:
    """"1 records read", "1 records are dated": each count agrees with its noun."""
    said = import_failure(Tally(problems=["p", "q"], waiting=["w"]))
    assert said is not None
    assert said.startswith("2 records or files were skipped (named above); 1 record is "
                           "dated ahead of the node's clock (named above): it and the "
                           "records after it in its session are not imported yet"), said
    assert _summary(Tally(records=1, events=1, created=1, problems=["p"], waiting=["w"])) \
        == ("1 record read: 1 new event, 0 already stored, 1 record or file skipped, "
            "1 record waiting for the node's clock")


def test_a_waiting_transcript_whose_file_is_deleted_no_longer_waits(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms + 3_600_000])
    path = write_jsonl(tmp_path, KEY_A, A, a)
    write_jsonl(tmp_path, KEY_B, B, turn_records(B, [now_ms - 3000]))
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            assert len(one_pass(bridge).waiting) == 1
            cursor, stored = saved_cursor(tmp_path, store), dict(store.version)
            path.unlink()  # its index entry outlives it
            one_pass(bridge)
            assert sum(GONE in text and f"{A}.jsonl" in text for text in told) == 1
            # Nothing stored is undone; the deleted session's cursor entry is dropped.
            del cursor[f"jsonl:{A}"]
            assert saved_cursor(tmp_path, store) == cursor and dict(store.version) == stored
            one_pass(bridge)
            assert sum(GONE in text for text in told) == 1
            # Back again, its record waits again, and is said to.
            write_jsonl(tmp_path, KEY_A, A, a)
            assert len(one_pass(bridge).waiting) == 1
        finally:
            folder.close()


def test_a_waiting_session_whose_rows_are_removed_no_longer_waits(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms + 3_600_000])
    gateway = FakeGateway(tmp_path)
    gateway.open_session(KEY_A, A)
    gateway.add(A, a)
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            assert len(one_pass(bridge).waiting) == 1
            stored = dict(store.version)
            gateway.db.execute("DELETE FROM transcript_events WHERE session_id = ?", (A,))
            # OpenClaw deleted it: said once, not counted with what a pass skipped; its
            # cursor entry is dropped, and nothing stored is undone.
            assert one_pass(bridge).problems == []
            assert sum(GONE in text and f"session {A}" in text for text in told) == 1
            assert saved_cursor(tmp_path, store) == {} and dict(store.version) == stored
            gateway.add(A, a)  # back again: read from its start, and waits again
            assert len(one_pass(bridge).waiting) == 1
        finally:
            folder.close()
            gateway.close()


def test_a_waiting_session_past_a_full_read_still_waits(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    first = "00000000-0000-4000-8000-000000000009"  # sorts before A: read first
    gateway = FakeGateway(tmp_path)
    gateway.open_session("agent:main:explicit:first", first)
    gateway.open_session(KEY_A, A)
    gateway.add(first, turn_records(first, [now_ms - 6000]))
    gateway.add(A, turn_records(A, [now_ms - 5000, now_ms + 3_600_000]))
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            assert len(one_pass(bridge).waiting) == 1
            # More rows before A than a read takes: A is still read, and still waits.
            gateway.add(first, [{"type": "custom", "id": f"x{n}"}
                                for n in range(sqlite.ROWS_PER_READ + 10)])
            one_pass(bridge)
            assert not any(GONE in text for text in told)
            assert one_pass(bridge).waiting == []
        finally:
            folder.close()
            gateway.close()


@pytest.mark.parametrize("kind", ["db", "jsonl"])
def test_a_waiting_session_whose_whole_store_is_deleted_no_longer_waits(
        tmp_path: Path, kind: str) -> None:
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms + 3_600_000])
    write_a(tmp_path, kind, a)
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            assert len(one_pass(bridge).waiting) == 1
            cursor = saved_cursor(tmp_path, store)
            if kind == "db":
                for path in database_path(tmp_path).parent.glob("openclaw-agent.sqlite*"):
                    path.unlink()
            else:
                shutil.rmtree(tmp_path / "agents/main/sessions")
            assert one_pass(bridge).problems == []  # said, not counted
            assert one_pass(bridge).problems == []
            assert sum(GONE in text for text in told) == 1
            assert saved_cursor(tmp_path, store) == cursor
            # Back with a record ahead where the cursor is: it waits, said anew; nothing
            # is said taken of the record deleted.
            later = turn_records(A, [now_ms - 5000, now_ms + 7_200_000])
            write_a(tmp_path, kind, later)
            assert len(one_pass(bridge).waiting) == 1
            assert not any("taken it now" in text for text in told)
        finally:
            folder.close()


@pytest.mark.parametrize("kind", ["db", "jsonl"])
def test_a_waiting_session_outlives_a_look_that_could_not_list_the_agents(
        tmp_path: Path, kind: str) -> None:
    """The agents folder not listed for one look (here a file in its place; root reads
    a folder whatever its mode) says nothing of what is gone: the session waits on."""
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms + 3_600_000])
    write_a(tmp_path, kind, a)
    told: list[str] = []
    agents = tmp_path / "agents"
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            assert len(one_pass(bridge).waiting) == 1
            cursor = saved_cursor(tmp_path, store)
            agents.rename(tmp_path / "away")
            agents.write_text("")
            assert one_pass(bridge) == Tally()
            agents.unlink()
            (tmp_path / "away").rename(agents)
            one_pass(bridge, only_changed=False)
            assert not any(GONE in text for text in told)
            assert saved_cursor(tmp_path, store) == cursor
        finally:
            folder.close()


@pytest.mark.parametrize("python", ["this", "3.14"])
@pytest.mark.parametrize("kind", ["db", "jsonl"])
def test_a_waiting_session_outlives_a_look_that_could_not_read_its_agent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, python: str) -> None:
    """The agent's folder not looked into for one look (here a link to a name too long
    to be one, in its place: root looks into a folder whatever its mode) says nothing of
    what is gone: the session waits on, and the agent is read again once it can be. So
    too where ``Path.is_dir`` says False for it (Python 3.14 on)."""
    if python == "3.14":
        look_as_python_314(monkeypatch)
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms + 3_600_000])
    write_a(tmp_path, kind, a)
    told: list[str] = []
    agent = tmp_path / "agents" / "main"
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            assert len(one_pass(bridge).waiting) == 1
            cursor = saved_cursor(tmp_path, store)
            agent.rename(tmp_path / "away")
            agent.symlink_to("x" * 300)
            assert len(one_pass(bridge).problems) == 1
            agent.unlink()
            (tmp_path / "away").rename(agent)
            one_pass(bridge, only_changed=False)
            assert not any(GONE in text for text in told)
            assert saved_cursor(tmp_path, store) == cursor
        finally:
            folder.close()


def test_a_waiting_transcript_named_anew_by_the_index_goes_in_under_its_key(
        tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    folder_path = tmp_path / "agents/main/sessions"
    folder_path.mkdir(parents=True)
    path = folder_path / f"{A}.jsonl"  # no index entry: keyed by its session id
    path.write_bytes(b"".join(json.dumps(record).encode() + b"\n" for record in
                              turn_records(A, [now_ms - 5000, now_ms + 3_600_000])))
    told: list[str] = []
    clock = Clock()
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store, \
            EventStore.open("memory:", clock_drift_max_ms=10 * 3_600_000) as wide:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, clock)
        try:
            assert len(one_pass(bridge).waiting) == 1
            one_pass(bridge, only_changed=False)  # read as waiting: what it found is kept
            # The transcript unchanged, the index now names it under a key.
            (folder_path / "sessions.json").write_text(json.dumps(
                {KEY_A: {"sessionId": A, "updatedAt": 0, "sessionFile": str(path)}}))
            bridge.sink = later = widened(tmp_path, store, wide)
            clock.now_s += AHEAD_RETRY_MAX_S
            one_pass(bridge)
        finally:
            folder.close()
        sent = {event for events in later.sent for event in events}
        keyed, _forgotten = asyncio.run(later.events(KEY_A))
        assert sent and sent <= {event.id for event in keyed}


def test_a_waiting_transcript_is_not_gone_from_its_agents_sqlite_store(
        tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    # One agent, both stores (one cursor): A waits in its transcript, B grows in SQLite.
    write_jsonl(tmp_path, KEY_A, A, turn_records(A, [now_ms - 5000, now_ms + 3_600_000]))
    gateway = FakeGateway(tmp_path)
    gateway.open_session(KEY_B, B)
    gateway.add(B, turn_records(B, [now_ms - 3000]))
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            assert len(one_pass(bridge).waiting) == 1
            for n in range(3):
                gateway.add(B, [{"type": "custom", "id": f"x{n}"}])
                tally = one_pass(bridge)
                assert tally.records == 1 and tally.waiting == []
            assert not any(GONE in text for text in told)
        finally:
            folder.close()
            gateway.close()
