"""An agent whose sessions are more than the cursor holds stops the import at the step
that would go over, named with what to do, and only that step is read again at the next
run; what fits is saved."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import node.openclaw.cursor_room as cursor_room
import node.openclaw.sqlite as sqlite_module
from crdt import codec
from crdt.log.cursors import CURSOR_BYTES_MAX, CURSOR_ENTRIES_MAX, read_cursor, save_cursor
from crdt.log.store import EventStore
from node.cli.openclaw_run import _summary
from node.openclaw.cursor_room import CursorFull
from node.openclaw.state import cursor_name
from node.openclaw.tally import PassFull
from tests.node.openclaw.support import (
    SMALL,
    SavingSink,
    cli,
    records,
    saving_bridge,
)
from tests.node.openclaw.waiting import (
    DRIFT_MS,
    KEY_A,
    A,
    Clock,
    one_pass,
    saved_cursor,
    waiting_bridge,
)
from tests.support.openclaw import FakeGateway, turn_records, write_jsonl


def full_pass(state: Path, store: EventStore) -> tuple[str, SavingSink]:
    """One pass of a new bridge that stops at an agent over its cursor's limits: what it
    says of it, and the sink it saved through."""
    bridge, sink, folder = saving_bridge(state, store)
    try:
        with pytest.raises(CursorFull) as raised:
            one_pass(bridge)
    finally:
        folder.close()
    return str(raised.value), sink


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
                said, sink = full_pass(tmp_path, store)
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
            said, sink = full_pass(tmp_path, store)
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
        said, sink = full_pass(tmp_path, store)
        assert "bytes encoded" in said
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


def test_a_pass_over_the_limits_counts_the_records_still_waiting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A watch's pass that stops at an agent over the limits sums up the records still
    waiting for the node's clock, met in an earlier pass, as every other summary does."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    now_ms = int(time.time() * 1000)
    write_jsonl(tmp_path, KEY_A, A, turn_records(A, [now_ms - 2000, now_ms + 3_600_000]))
    gateway = FakeGateway(tmp_path, "x")
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            for n in range(SMALL + 1):  # the last one over the limit, at the second pass
                session_id = f"{n:08d}-0000-4000-8000-000000000000"
                gateway.open_session(f"agent:x:s{n}", session_id)
                gateway.add(session_id, records(session_id))
                if n == SMALL - 1:
                    assert len(one_pass(bridge).waiting) == 1  # A's record, an hour ahead
            with pytest.raises(PassFull) as raised:
                one_pass(bridge)  # not yet time to try A's again
        finally:
            folder.close()
            gateway.close()
    assert raised.value.tally.waiting == []
    assert _summary(raised.value.tally).endswith(", 1 record waiting for the node's clock")
