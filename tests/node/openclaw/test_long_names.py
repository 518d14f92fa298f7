"""A ``.jsonl`` whose cursor entry would be over an entry's 256 bytes
(``crdt.keys.NAME_BYTES_MAX``: a forum topic's file with a long name), or not a valid
entry (a name with a control character or a byte not UTF-8), is kept under a hash of
it (``cursor_room.within_limit``), as its tail mark is: the agent's import goes on, each
run reading only what is new of the file, and a rewrite of it is seen. A cursor holding
such an entry keeps the shape the release before reads."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

import node.openclaw.cursor_room as cursor_room
from crdt.errors import LimitExceeded
from crdt.log.cursors import check_cursor, read_cursor
from crdt.log.store import EventStore
from node.cli.openclaw_sink import EmbeddedSink, HttpSink
from node.client.api import Client, ClientError
from node.openclaw.bridge import Bridge
from node.openclaw.cursor_room import (
    CursorFull,
    copy_entry,
    entry_owners,
    in_both_stores,
    session_of,
    tail_entry,
)
from node.openclaw.file_marks import tail_mark
from node.openclaw.session_names import session_key_for
from node.openclaw.state import StateFolder, cursor_name
from tests.node.openclaw.waiting import CountingSink, one_pass
from tests.support.openclaw import (
    FakeGateway,
    iso_ms,
    turn_records,
    write_jsonl,
    write_sessions,
)
from tests.support.processes import NodeProcess

TOPIC = "00000000-0000-4000-8000-00000000000a"
OTHER = "00000000-0000-4000-8000-00000000000b"
#: The forum topic's file: 230 characters, its entry 282 bytes.
NAME = f"{TOPIC}-topic-" + "7" * (230 - len(TOPIC) - len("-topic-.jsonl")) + ".jsonl"
PLAIN = f"jsonl-file:{len(NAME)}:{NAME}:{TOPIC}"
HASHED = "jsonl-file:#"
REWOUND_KEY = "agent:main:telegram:group:-1:topic:7"


def lines(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def topic_file(state: Path, key: str, records: list[dict[str, Any]]) -> Path:
    """The topic's ``records`` in ``NAME``, its index entry under ``key`` beside the
    other session's (``write_jsonl``'s)."""
    folder = state / "agents" / "main" / "sessions"
    path = folder / NAME
    path.write_bytes(lines(records))
    index = json.loads((folder / "sessions.json").read_text())
    index[key] = {"sessionId": TOPIC, "updatedAt": 1, "sessionFile": NAME}
    (folder / "sessions.json").write_text(json.dumps(index))
    return path


def runs(state: Path, store: EventStore) -> tuple[int, dict[str, int]]:
    """One import of ``state`` into ``store``: the records it read, the cursor saved."""
    folder = StateFolder(state)
    try:
        read = one_pass(Bridge(folder, CountingSink(store))).records
    finally:
        folder.close()
    return read, read_cursor(store, cursor_name(state.resolve(), "main")) or {}


def test_a_topic_file_with_a_long_name_imports_and_reads_on(tmp_path: Path) -> None:
    """Its entry is over 256 bytes: kept under ``jsonl-file:#<hash>``, its tail mark
    beside it; the other session imports with it. A second import reads nothing again;
    a record appended is read alone; the file rewritten in place at the same length
    while no import ran is read again from its start (its mark found from its hashed
    entry), once."""
    assert len(PLAIN.encode()) == 282
    first_ms = int(time.time() * 1000) - 60_000
    write_jsonl(tmp_path, "agent:main:other", OTHER, turn_records(OTHER, [first_ms]))
    records = turn_records(TOPIC, [first_ms + n * 1000 for n in range(3)])
    path = topic_file(tmp_path, "agent:main:telegram:group:-1001:topic:7", records[:3])
    rewrite = lines(turn_records(TOPIC, [first_ms + 7000, first_ms + 8000, first_ms + 9000]))
    read, cursors = [], []
    with EventStore.open("memory:") as store:
        for run in range(5):
            if run == 2:  # a record appended
                path.write_bytes(lines(records))
            if run == 3:  # other records, the same length, over the file's own bytes
                assert len(rewrite) == path.stat().st_size
                with path.open("r+b") as file:
                    file.write(rewrite)
            got, cursor = runs(tmp_path, store)
            read.append(got)
            cursors.append(cursor)
    assert read == [3 + 2, 0, 1, 4, 0]
    [entry] = [entry for entry in cursors[-1] if entry.startswith(HASHED)]
    assert len(entry.encode()) <= 256 and PLAIN not in cursors[-1]
    assert cursors[-1][entry] == len(rewrite)
    assert cursors[-1][tail_entry(entry)] == tail_mark(rewrite)


def test_a_long_name_under_a_key_over_the_nodes_limit_imports(tmp_path: Path) -> None:
    """The topic's key is over a session key's 512 bytes too: its events go under the
    key's hash (``session_names.session_key_for``), as any such key's; nothing is
    skipped."""
    key = "agent:main:telegram:group:-1001:topic:" + "k" * 600
    now_ms = int(time.time() * 1000)
    write_jsonl(tmp_path, "agent:main:other", OTHER, turn_records(OTHER, [now_ms]))
    topic_file(tmp_path, key, turn_records(TOPIC, [now_ms - 1000]))
    with EventStore.open("memory:") as store:
        read, cursor = runs(tmp_path, store)
        sessions = set(store.sessions_by_key())
    assert read == 4 and any(entry.startswith(HASHED) for entry in cursor)
    assert sessions == {"agent:main:other", session_key_for("main", key)}


def test_a_hashed_entry_keeps_the_shape_the_release_before_reads(tmp_path: Path) -> None:
    """The release before hashed no file's entry: it reads a cursor with one as ever
    (every entry a valid name, ``check_cursor``), takes it for a JSONL session's entry
    of no file (neither ``db:`` nor ``copy:``, its own entry for the file being the
    plain one) and drops it at its next save. The entry keeps its session id
    (``jsonl-file:#<hash of the name>:<id>``): this release's ``in_both_stores`` finds
    the session in both stores."""
    now_ms = int(time.time() * 1000)
    write_jsonl(tmp_path, "agent:main:other", OTHER, turn_records(OTHER, [now_ms]))
    topic_file(tmp_path, "agent:main:telegram:group:-1001:topic:7",
               turn_records(TOPIC, [now_ms - 1000]))
    with EventStore.open("memory:") as store:
        _read, cursor = runs(tmp_path, store)
    assert check_cursor(cursor) == cursor
    [entry] = [entry for entry in cursor if entry.startswith(HASHED)]
    assert session_of(entry) == entry and not entry.startswith("db:")
    assert entry != PLAIN and entry.endswith(f":{TOPIC}")
    assert in_both_stores({**cursor, f"db:{TOPIC}": 1}) == {entry}


def rewound_topic(state: Path) -> tuple[str, list[dict[str, Any]]]:
    """A topic file whose entry is 254 bytes, which fits, and whose first record begins
    a rewind's copy (the header newer than the record after it), under ``REWOUND_KEY``
    in the index beside what is there: its entry and records."""
    folder = state / "agents" / "main" / "sessions"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{TOPIC}-topic-" + "7" * (202 - len(TOPIC) - len("-topic-.jsonl")) + ".jsonl"
    entry = f"jsonl-file:{len(name)}:{name}:{TOPIC}"
    assert len(entry.encode()) == 254 and len(("copy:" + entry).encode()) > 256
    header_ms = int(time.time() * 1000)
    records = turn_records(TOPIC, [header_ms - 9000, header_ms - 8000])
    records[0] = {**records[0], "timestamp": iso_ms(header_ms)}
    (folder / name).write_bytes(lines(records))
    index = folder / "sessions.json"
    known = json.loads(index.read_text()) if index.exists() else {}
    index.write_text(json.dumps({**known, REWOUND_KEY: {"sessionId": TOPIC, "updatedAt": 1,
                                                        "sessionFile": name}}))
    return entry, records


def test_a_rewinds_copy_in_a_file_whose_entry_just_fits_imports(tmp_path: Path) -> None:
    """The topic's entry is 254 bytes, which fits, but its first record begins a rewind's
    copy (the header newer than the record after it): the copy's time is kept under
    ``copy:#<hash>`` (``copy_entry``), not refused by the node, and goes with its file's
    entry. A second import reads nothing again."""
    entry, _records = rewound_topic(tmp_path)
    with EventStore.open("memory:") as store:
        assert runs(tmp_path, store)[0] == 3
        read, cursor = runs(tmp_path, store)
    assert read == 0 and entry in cursor
    assert copy_entry(entry).startswith("copy:#") and copy_entry(entry) in cursor
    assert session_of(copy_entry(entry), entry_owners(cursor)) == entry


def test_a_session_of_a_long_id_moved_into_sqlite_imports(tmp_path: Path) -> None:
    """A JSONL session whose id is 254 characters (its file named otherwise) is kept
    under ``jsonl-file:#``; moved into SQLite (``openclaw doctor --session-sqlite
    import``: its rows in, its file moved away), its entry there is ``db:#<hash of its
    id>`` (``sqlite.session_entry``), not refused by the node: the import goes on, and
    reads on from where the rows were read."""
    long_id = "s" * 254
    now_ms = int(time.time() * 1000)
    records = turn_records(long_id, [now_ms - 2000, now_ms - 1000])
    key = "agent:main:long"
    write_jsonl(tmp_path, "agent:main:other", OTHER, turn_records(OTHER, [now_ms]))
    folder = tmp_path / "agents" / "main" / "sessions"
    (folder / "long.jsonl").write_bytes(lines(records))
    index = json.loads((folder / "sessions.json").read_text())
    index[key] = {"sessionId": long_id, "updatedAt": 1, "sessionFile": "long.jsonl"}
    (folder / "sessions.json").write_text(json.dumps(index))
    gateway = None
    with EventStore.open("memory:") as store:
        try:
            assert runs(tmp_path, store)[0] == 3 + 2
            gateway = FakeGateway(tmp_path)
            gateway.open_session(key, long_id)
            gateway.add(long_id, records)
            (folder / "long.jsonl").rename(tmp_path / "long.jsonl.imported")
            del index[key]
            (folder / "sessions.json").write_text(json.dumps(index))
            read, cursor = runs(tmp_path, store)
            assert runs(tmp_path, store)[0] == 0
        finally:
            if gateway is not None:
                gateway.close()
    [entry] = [entry for entry in cursor if entry.startswith("db:")]
    assert read == 3 and entry.startswith("db:#") and cursor[entry] == 3


def moved_midway(tmp_path: Path, store: EventStore, gateway: FakeGateway, key: str,
                 records: list[dict[str, Any]]) -> str:
    """The topic session's rows written into SQLite under ``key``, its file not moved yet:
    what the next run says of the agent over its limits."""
    gateway.open_session(key, TOPIC)
    gateway.add(TOPIC, records)
    with pytest.raises(CursorFull) as raised:
        runs(tmp_path, store)
    return str(raised.value)


def test_a_long_name_midway_through_the_move_into_sqlite_is_told_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The topic's rows are in SQLite, its file (of a long name) not moved yet, and the
    agent is over its limits with the session counted twice: the pass stops telling the
    move under way, to wait for, not to delete sessions."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", 2)
    now_ms = int(time.time() * 1000)
    key = "agent:main:telegram:group:-1001:topic:7"
    write_jsonl(tmp_path, "agent:main:other", OTHER, turn_records(OTHER, [now_ms]))
    records = turn_records(TOPIC, [now_ms - 1000])
    topic_file(tmp_path, key, records)
    gateway = FakeGateway(tmp_path)
    try:
        with EventStore.open("memory:") as store:
            assert runs(tmp_path, store)[0] == 4
            said = moved_midway(tmp_path, store, gateway, key, records)
    finally:
        gateway.close()
    assert "1 of its sessions are in both its SQLite store" in said
    assert "once the move is done" in said and "delete" not in said


def test_a_rewinds_copy_midway_through_the_move_into_sqlite_is_told_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As above, for a topic file whose copy time is kept under a hash (``copy:#``): it
    goes with its file's entry, which the move drops, so the agent fits once the move is
    done; it was counted as an entry of no session, and deleting sessions was advised."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", 3)
    write_jsonl(tmp_path, "agent:main:other", OTHER,
                turn_records(OTHER, [int(time.time() * 1000)]))
    entry, records = rewound_topic(tmp_path)
    gateway = FakeGateway(tmp_path)
    try:
        with EventStore.open("memory:") as store:
            _read, cursor = runs(tmp_path, store)
            assert {entry, copy_entry(entry)} <= set(cursor)
            assert copy_entry(entry).startswith("copy:#")
            said = moved_midway(tmp_path, store, gateway, REWOUND_KEY, records)
    finally:
        gateway.close()
    assert "1 of its sessions are in both its SQLite store" in said
    assert "once the move is done" in said and "delete" not in said


@pytest.mark.parametrize("name", ["topic\x01x.jsonl", "topic\udcffx.jsonl"],
                         ids=["control-character", "not-utf-8"])
def test_a_file_name_the_node_refuses_in_an_entry_imports(tmp_path: Path, name: str) -> None:
    """A topic file whose name has a control character, or a byte that is not UTF-8 (the
    index names it with the lone surrogate Python reads it as), has an entry the node
    refuses: it is kept under ``jsonl-file:#<hash of the name>:<id>``, and read on from.
    Before, its agent's import failed at every run (the node refused the cursor, or it
    could not be encoded)."""
    folder = tmp_path / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    (folder / name).write_bytes(lines(turn_records(TOPIC, [int(time.time() * 1000)])))
    (folder / "sessions.json").write_text(json.dumps(
        {"agent:main:t": {"sessionId": TOPIC, "updatedAt": 1, "sessionFile": name}}))
    with EventStore.open("memory:") as store:
        assert runs(tmp_path, store)[0] == 2
        read, cursor = runs(tmp_path, store)
    [entry] = [entry for entry in cursor if not entry.startswith("tail:")]
    assert read == 0 and entry.startswith(HASHED) and entry.endswith(f":{TOPIC}")
    assert check_cursor(cursor) == cursor


def test_a_file_no_entry_names_whose_name_is_not_utf_8_imports(tmp_path: Path) -> None:
    """Two files no index entry names, each's name with a byte that is not UTF-8 (two
    bytes Node would both read as U+FFFD), are each a session of an id events can hold
    (``session_names.nameable``), one per name and the same at each run: stored once,
    beside the other session. Before, no event could name the id (a lone surrogate), and
    its agent's import failed at every run, its other sessions with it."""
    now_ms = int(time.time() * 1000)
    write_jsonl(tmp_path, "agent:main:other", OTHER, turn_records(OTHER, [now_ms]))
    folder = tmp_path / "agents" / "main" / "sessions"
    stems = ["topic\udcffx", "topic\udcfex"]  # the bytes 0xff and 0xfe, as Python reads them
    for stem in stems:
        (folder / f"{stem}.jsonl").write_bytes(lines(turn_records(TOPIC, [now_ms - 1000])))
    with EventStore.open("memory:") as store:
        assert runs(tmp_path, store)[0] == 2 + 2 + 2
        head = store.head
        read, cursor = runs(tmp_path, store)
        assert store.head == head
        stored = {key: store.get_events(key) for key in store.sessions_by_key()}
    assert read == 0 and check_cursor(cursor) == cursor
    keys = [session_key_for("main", stem) for stem in stems]
    assert set(stored) == {"agent:main:other", *keys} and len(set(keys)) == 2
    assert {len(events) for events in stored.values()} == {2}


def test_an_index_entry_with_a_lone_surrogate_imports(tmp_path: Path) -> None:
    """``sessions.json`` names a key, and another entry a session id, each with a lone
    surrogate (``\\udcff``: how JavaScript writes a string cut inside a surrogate pair):
    each is named as events can (``session_names.nameable``), its clawsync key the one
    ``session_key_for`` gives its key; stored once, beside the other session. Before,
    no event could name either, and its agent's import failed at every run."""
    now_ms = int(time.time() * 1000)
    write_jsonl(tmp_path, "agent:main:other", OTHER, turn_records(OTHER, [now_ms]))
    folder = tmp_path / "agents" / "main" / "sessions"
    for name, session_id in (("a.jsonl", TOPIC), ("b.jsonl", "b\udcff")):
        (folder / name).write_bytes(lines(turn_records(session_id, [now_ms - 1000])))
    index = json.loads((folder / "sessions.json").read_text())
    index["agent:main:topic\udcff"] = {"sessionId": TOPIC, "updatedAt": 1, "sessionFile": "a.jsonl"}
    index["agent:main:b"] = {"sessionId": "b\udcff", "updatedAt": 1, "sessionFile": "b.jsonl"}
    (folder / "sessions.json").write_text(json.dumps(index))  # escapes the surrogates
    with EventStore.open("memory:") as store:
        assert runs(tmp_path, store)[0] == 2 + 2 + 2
        head = store.head
        read, cursor = runs(tmp_path, store)
        assert store.head == head
        keys = store.sessions_by_key()
    assert read == 0 and check_cursor(cursor) == cursor
    assert set(keys) == {"agent:main:other", "agent:main:b",
                         session_key_for("main", "agent:main:topic\udcff")}


@pytest.mark.parametrize("store", ["jsonl", "db"])
def test_a_session_id_the_node_refuses_in_an_entry_imports(tmp_path: Path,
                                                           store: str) -> None:
    """A session id with a control character, short as it is, makes an entry the node
    refuses (``jsonl:<id>`` of its ``<id>.jsonl``, ``db:<id>`` of its SQLite rows): kept
    under ``jsonl:#`` or ``db:#`` and a hash of the id (``cursor_room.within_limit``
    hashes what is not a valid entry, not only what is too long), and read on from."""
    session_id = "s\x01" + TOPIC[2:]
    records = turn_records(session_id, [int(time.time() * 1000)])
    if store == "jsonl":
        write_jsonl(tmp_path, "agent:main:t", session_id, records)
    else:
        write_sessions(tmp_path, {("agent:main:t", session_id): records})
    with EventStore.open("memory:") as events:
        assert runs(tmp_path, events)[0] == 2
        read, cursor = runs(tmp_path, events)
    [entry] = [entry for entry in cursor if entry.startswith(f"{store}:")]
    assert read == 0 and entry.startswith(f"{store}:#")
    assert check_cursor(cursor) == cursor


def with_foreign_entry(cursor: dict[str, int]) -> dict[str, int]:
    """``cursor`` with an entry over 256 bytes beside the bridge's own: one the node
    refuses, as it would any this release did not foresee."""
    return {**cursor, "x" * 300: 1}


class ForeignEntrySink(HttpSink):
    """A node over HTTP, sent the agent's cursor ``with_foreign_entry``."""

    agent = ""  # the name of the agent's cursor

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        await super().save_cursor(name, with_foreign_entry(cursor) if name == self.agent
                                  else cursor)


class ForeignEntryFolder(EmbeddedSink):
    """A data folder opened here, given the agent's cursor ``with_foreign_entry``."""

    agent = ""  # the name of the agent's cursor

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        await super().save_cursor(name, with_foreign_entry(cursor) if name == self.agent
                                  else cursor)


def test_a_cursor_the_node_refuses_is_said_with_its_agent_and_entry(tmp_path: Path) -> None:
    """The node's refusal names the entry, cut to a readable length; the import adds
    whose cursor it is: the agent and its folder."""
    state = tmp_path / "state"
    write_jsonl(state, "agent:main:other", OTHER, turn_records(OTHER, [int(time.time() * 1000)]))

    async def run() -> str:
        folder = StateFolder(state)
        try:
            async with Client(node.url) as client:
                sink = ForeignEntrySink(client)
                sink.agent = cursor_name(state.resolve(), "main")
                with pytest.raises(ClientError) as refused:
                    await Bridge(folder, sink).run_pass()
        finally:
            folder.close()
        return str(refused.value)

    with NodeProcess(tmp_path) as node:
        said = asyncio.run(run())
    assert said.startswith("the node refused the cursor: cursor: an entry's name is 300 "
                           f"bytes; the limit is 256 ('{'x' * 60}'…)")
    assert said.endswith(f"; that is the cursor of agent 'main' ({state}/agents/main)")


def test_a_cursor_a_data_folder_refuses_is_said_with_its_agent_and_entry(
        tmp_path: Path) -> None:
    """Into a data folder opened here (``--data-dir``), the store's refusal names the
    entry as the node's does, and the import adds whose cursor it is, as over HTTP; the
    refusal keeps its class (the command's exit, as for a 413: ``store_refusal``). Before, it named
    the entry alone."""
    state = tmp_path / "state"
    write_jsonl(state, "agent:main:other", OTHER, turn_records(OTHER, [int(time.time() * 1000)]))
    folder = StateFolder(state)
    try:
        with EventStore.open(tmp_path / "data") as store:
            sink = ForeignEntryFolder(store)
            sink.agent = cursor_name(state.resolve(), "main")
            with pytest.raises(LimitExceeded) as refused:
                asyncio.run(Bridge(folder, sink).run_pass())
    finally:
        folder.close()
    said = str(refused.value)
    assert type(refused.value) is LimitExceeded and refused.value.field == "cursor"
    assert said.startswith(f"cursor: an entry's name is 300 bytes; the limit is 256 "
                           f"('{'x' * 60}'…)")
    assert said.endswith(f"; that is the cursor of agent 'main' ({state}/agents/main)")
