"""The keys an agent's ``.jsonl`` files were read under, as the bridge keeps them
(``node.openclaw.session_keys``): saved once learnt even if the first save fails, learnt
from the index for files read before they were kept, and what a file read before its
index named it gives when read again, with the keys saved as this release does and as
one that kept no mark of the sessions read under their id did."""

from __future__ import annotations

from pathlib import Path

import pytest

from crdt.log.cursors import read_cursor, save_cursor
from crdt.log.store import EventStore
from node.cli.openclaw_sink import EmbeddedSink
from node.client.errors import ClientError
from node.openclaw.bridge import Bridge
from node.openclaw.file_marks import FIRST_RECORD_BYTES, TAIL_BYTES, first_record
from node.openclaw.key_entries import entry_of, file_entry, file_of
from node.openclaw.session_keys import KEYS_SUFFIX, keys_name
from node.openclaw.session_names import session_key_for
from node.openclaw.source import FileIdentity
from node.openclaw.state import StateFolder, cursor_name
from tests.node.openclaw.keyed import (
    SESSION_A,
    byte_entries,
    bytes_read,
    events_by_session,
    lines,
    records,
)
from tests.node.openclaw.waiting import KEY_A, A, B, one_pass
from tests.support.openclaw import replaced_anew, turn_records, write_jsonl


class FailingKeysSink(EmbeddedSink):
    """An embedded store whose first ``failures`` saves of the keys fail (the node down)."""

    def __init__(self, store: EventStore, failures: int) -> None:
        super().__init__(store)
        self.failures = failures

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        if name.endswith(KEYS_SUFFIX) and self.failures:
            self.failures -= 1
            raise ClientError("the node cannot be reached")
        await super().save_cursor(name, cursor)


class RefusingKeysSink(EmbeddedSink):
    """An embedded store that refuses the keys cursor, as a node refuses one it cannot
    take (an entry another client saved there)."""

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        if name.endswith(KEYS_SUFFIX):
            raise ClientError("the node refused the cursor: cursor: '2:s1' must be an "
                              "integer from 0 to 9223372036854775807", status=400,
                              code="invalid_field", field="cursor")
        await super().save_cursor(name, cursor)


class KeylessSink(EmbeddedSink):
    """An embedded store as a release that kept no keys used it: none read, none saved."""

    async def cursor(self, name: str) -> dict[str, int] | None:
        return None if name.endswith(KEYS_SUFFIX) else await super().cursor(name)

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        if not name.endswith(KEYS_SUFFIX):
            await super().save_cursor(name, cursor)


def sessions(store: EventStore) -> list[str]:
    return sorted(row.session_key for row in store.list_sessions(0, 100))


def read_again_after_new(state: Path, store: EventStore) -> int:
    """``/new`` (the key names session B now) and a pass; then the agent's cursor reset
    and a pass of a bridge started anew: the events that pass found new."""
    bridge = Bridge(StateFolder(state), EmbeddedSink(store))
    write_jsonl(state, KEY_A, B, records(B))
    one_pass(bridge, only_changed=False)
    save_cursor(store, cursor_name(state.resolve(), "main"), {})
    return one_pass(Bridge(StateFolder(state), EmbeddedSink(store)), only_changed=False).created


def test_a_failed_save_of_the_keys_is_tried_again(tmp_path: Path) -> None:
    """The keys learnt are saved before the events they key are stored: a save that
    fails (the node down) fails the pass, and the next one (``watch`` goes on with the
    same bridge) saves them, though it learns nothing new."""
    write_jsonl(tmp_path, KEY_A, A, records(A))
    name = keys_name(cursor_name(tmp_path.resolve(), "main"))
    with EventStore.open("memory:") as store:
        bridge = Bridge(StateFolder(tmp_path), FailingKeysSink(store, failures=1))
        with pytest.raises(ClientError):
            one_pass(bridge, only_changed=False)
        assert read_cursor(store, name) is None and sessions(store) == []
        one_pass(bridge)
        assert byte_entries(store, name) == {entry_of(A, KEY_A): 0}
        assert read_again_after_new(tmp_path, store) == 0
        assert sessions(store) == [SESSION_A]


def test_a_refused_keys_cursor_is_named_with_how_to_go_on(tmp_path: Path) -> None:
    write_jsonl(tmp_path, KEY_A, A, records(A))
    name = keys_name(cursor_name(tmp_path.resolve(), "main"))
    with EventStore.open("memory:") as store:
        with pytest.raises(ClientError) as refused:
            one_pass(Bridge(StateFolder(tmp_path), RefusingKeysSink(store)), only_changed=False)
        said = str(refused.value)
        assert said.startswith("the node refused the cursor: cursor: '2:s1' must be")
        assert f"the keys remembered for the sessions of an agent's files ({name})" in said
        assert f'PUT /v1/cursors/{name} with {{"cursor": {{}}}}' in said
        assert ("a file sessions.json no longer names that is read again from its start "
                "then has its records stored a second time, under its session id") in said
        assert refused.value.status == 400 and sessions(store) == []


def test_files_read_before_the_keys_were_kept_get_their_key_from_the_index(
        tmp_path: Path) -> None:
    """A file read by a release that kept no keys, with nothing new to read since: the
    index names its key, which is learnt all the same, so once no longer named it is
    read under it."""
    write_jsonl(tmp_path, KEY_A, A, records(A))
    name = keys_name(cursor_name(tmp_path.resolve(), "main"))
    with EventStore.open("memory:") as store:
        one_pass(Bridge(StateFolder(tmp_path), KeylessSink(store)), only_changed=False)
        assert read_cursor(store, name) is None
        tally = one_pass(Bridge(StateFolder(tmp_path), EmbeddedSink(store)), only_changed=False)
        assert tally.records == 0
        assert byte_entries(store, name) == {entry_of(A, KEY_A): 0}
        assert read_again_after_new(tmp_path, store) == 0
        assert sessions(store) == [SESSION_A]


def written_before_named(tmp_path: Path, store: EventStore,
                         unmarked: bool = False) -> tuple[int, int]:
    """OpenClaw wrote the file before naming it: a pass reads its first records (under
    its session id), then the index names it and a record more is read (under the key).
    With ``unmarked``, the keys are saved between the two as a release that kept no mark
    of a session read under its id did. The events of the first pass, and of a pass
    reading the file again from its start (``read_again_after_new``)."""
    folder = tmp_path / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    written = records(A, 3)
    (folder / f"{A}.jsonl").write_bytes(lines(written[:2]))
    bridge = Bridge(StateFolder(tmp_path), EmbeddedSink(store))
    early = one_pass(bridge, only_changed=False).created
    assert sessions(store) == [session_key_for("main", A)]
    name = keys_name(cursor_name(tmp_path.resolve(), "main"))
    assert byte_entries(store, name) == {entry_of(A, None, len(lines(written[:2]))): 0}
    if unmarked:
        save_cursor(store, name, {})
        bridge = Bridge(StateFolder(tmp_path), EmbeddedSink(store))
    write_jsonl(tmp_path, KEY_A, A, written)  # named now, a record more
    one_pass(bridge, only_changed=False)
    return early, read_again_after_new(tmp_path, store)


def test_a_file_read_before_its_index_named_it_keeps_its_first_records_under_its_id(
        tmp_path: Path) -> None:
    """Its key applies from where the file had been read up to when it was learnt: read
    again from its start, the first records go under the id again, the rest under the
    key, all of them events stored before."""
    with EventStore.open("memory:") as store:
        early, again = written_before_named(tmp_path, store)
        assert early > 0 and again == 0
        assert sessions(store) == sorted([session_key_for("main", A), SESSION_A])
        size = len(lines(records(A, 3)[:2]))
        assert byte_entries(store, keys_name(cursor_name(tmp_path.resolve(), "main"))) == {
            entry_of(A, KEY_A): 1, entry_of(A, None, size): 1, entry_of(B, KEY_A): 2}


def test_a_file_read_under_its_id_unmarked_goes_whole_under_its_key(tmp_path: Path) -> None:
    """Keys saved by a release that kept no mark of the sessions read under their id:
    the key learnt applies from the file's start, as it did then. Read again, the first
    records are stored a second time, under the key (they stay under the id too), not
    the whole conversation under the id."""
    with EventStore.open("memory:") as store:
        early, again = written_before_named(tmp_path, store, unmarked=True)
        assert again == early
        assert sessions(store) == sorted([session_key_for("main", A), SESSION_A])


def test_a_cursor_reset_before_the_index_named_a_file_stores_nothing_twice(
        tmp_path: Path) -> None:
    """Read under its id, then its cursor entry dropped (the cursor reset) before the
    index names it: its key applies from where it was read under its id all the same,
    and the records read then are not stored a second time, under the key: the key's
    session holds what it holds with no reset."""
    counts = []
    for reset in (False, True):
        state = tmp_path / str(reset)
        with EventStore.open("memory:") as store:
            folder = state / "agents" / "main" / "sessions"
            folder.mkdir(parents=True)
            written = records(A, 3)
            (folder / f"{A}.jsonl").write_bytes(lines(written[:2]))
            one_pass(Bridge(StateFolder(state), EmbeddedSink(store)), only_changed=False)
            if reset:
                save_cursor(store, cursor_name(state.resolve(), "main"), {})
            write_jsonl(state, KEY_A, A, written)  # named now, a record more
            one_pass(Bridge(StateFolder(state), EmbeddedSink(store)), only_changed=False)
            counts.append(events_by_session(store))
            assert read_again_after_new(state, store) == 0
    assert counts[1] == counts[0]


def test_a_file_replaced_by_a_shorter_one_goes_under_its_key_from_its_start(
        tmp_path: Path) -> None:
    """Its key applied from a byte of the file it replaced: read again from its start
    (shorter than its offset), every record of the new file goes under the key the index
    names, none under the session id."""
    with EventStore.open("memory:") as store:
        written_before_named(tmp_path, store)
        before = events_by_session(store)
        replaced = turn_records(A, [1_700_000_100_000])
        replaced_anew(write_jsonl(tmp_path, KEY_A, A, replaced))
        assert len(lines(replaced)) < len(lines(records(A, 3)))
        assert one_pass(Bridge(StateFolder(tmp_path), EmbeddedSink(store)),
                        only_changed=False).created > 0
        after = events_by_session(store)
        assert after[session_key_for("main", A)] == before[session_key_for("main", A)]
        assert after[SESSION_A] > before[SESSION_A]


def test_a_mark_goes_with_its_file(tmp_path: Path) -> None:
    """A folder without an index: each file is marked as read under its id, till the
    folder no longer holds it."""
    folder = tmp_path / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    for session_id in (A, B):
        (folder / f"{session_id}.jsonl").write_bytes(lines(records(session_id)))
    name = keys_name(cursor_name(tmp_path.resolve(), "main"))
    with EventStore.open("memory:") as store:
        bridge = Bridge(StateFolder(tmp_path), EmbeddedSink(store))
        one_pass(bridge, only_changed=False)
        size = len(lines(records(A)))
        assert byte_entries(store, name) == {entry_of(A, None, size): 0, entry_of(B, None, size): 1}
        (folder / f"{A}.jsonl").unlink()
        one_pass(bridge)
        assert byte_entries(store, name) == {entry_of(B, None, size): 1}


def test_an_unnamed_file_replaced_by_a_shorter_one_is_marked_from_its_own_start(
        tmp_path: Path) -> None:
    """Read under its id, then replaced by a shorter file (read from its start): its
    mark says what of the new file was stored, not the old file's byte. Named then and
    grown, the new file's records past what was read under its id go under the key."""
    folder = tmp_path / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    (folder / f"{A}.jsonl").write_bytes(lines(records(A, 3)))
    name = keys_name(cursor_name(tmp_path.resolve(), "main"))
    with EventStore.open("memory:") as store:
        one_pass(Bridge(StateFolder(tmp_path), EmbeddedSink(store)), only_changed=False)
        replaced = turn_records(A, [1_700_000_100_000 + n * 1000 for n in range(2)])
        (folder / f"{A}.jsonl").write_bytes(lines(replaced[:1]))
        replaced_anew(folder / f"{A}.jsonl")
        one_pass(Bridge(StateFolder(tmp_path), EmbeddedSink(store)), only_changed=False)
        before = events_by_session(store)
        write_jsonl(tmp_path, KEY_A, A, replaced)  # named now, grown
        assert len(lines(replaced)) < len(lines(records(A, 3)))
        one_pass(Bridge(StateFolder(tmp_path), EmbeddedSink(store)), only_changed=False)
        after = events_by_session(store)
        assert after[session_key_for("main", A)] == before[session_key_for("main", A)]
        assert after.get(SESSION_A, 0) > 0
        assert set(byte_entries(store, name) or {}) == {
            entry_of(A, KEY_A), entry_of(A, None, len(lines(replaced[:1])))}


def test_a_pass_over_unchanged_files_reads_no_first_line(tmp_path: Path) -> None:
    """A file's first line tells another file from one only cut shorter: it is read
    when that is to be told or remembered, not at every pass. A pass over files named by
    their index, files read under their id (marked, their file remembered) and files
    read so before their index named them (their key applying from a byte, their file
    remembered), none changed, reads the index and nothing of the files."""
    header = {"cwd": "/w/" + "x" * 2000}  # heads bigger than the index
    folder = tmp_path / "agents" / "main" / "sessions"

    def written(session_id: str) -> list[dict[str, object]]:
        return [{**record, **header} if record["type"] == "session" else record
                for record in records(session_id)]

    for n in range(20):
        write_jsonl(tmp_path, f"agent:main:{n}", f"named-{n:02d}", written(f"named-{n:02d}"))
    for kind in ("unnamed", "early"):
        for n in range(20):
            (folder / f"{kind}-{n:02d}.jsonl").write_bytes(lines(written(f"{kind}-{n:02d}")[:2]))
    with EventStore.open("memory:") as store:
        bridge = Bridge(StateFolder(tmp_path), EmbeddedSink(store))
        assert one_pass(bridge, only_changed=False).records == 20 * 3 + 40 * 2
        for n in range(20):  # named now, a record more: their key applies from a byte
            write_jsonl(tmp_path, f"agent:main:early-{n}", f"early-{n:02d}",
                        written(f"early-{n:02d}"))
        assert one_pass(bridge, only_changed=False).records == 20
        name = keys_name(cursor_name(tmp_path.resolve(), "main"))
        saved = read_cursor(store, name) or {}
        assert sum(file_of(entry) is not None for entry in saved) == 40
        assert entry_of("early-00", None, len(lines(written("early-00")[:2]))) in saved
        index = (folder / "sessions.json").stat().st_size
        before = bytes_read()
        assert one_pass(bridge, only_changed=False).records == 0
        read = bytes_read() - before
    assert index <= read < index + 1024, (read, index)


def test_an_import_over_unchanged_files_reads_only_the_bytes_their_marks_are_of(
        tmp_path: Path) -> None:
    """A one-shot import (a bridge of its own, as each ``clawsync openclaw import``) over
    files imported before and unchanged reads the index and, of each, only the bytes
    before its offset (``TAIL_BYTES`` at most) that its cursor's tail mark is of: what
    tells it rewritten since, whoever read it; nothing more to tell it rewritten."""
    header = {"cwd": "/w/" + "x" * 2000}  # heads bigger than the index
    for n in range(20):
        write_jsonl(tmp_path, f"agent:main:{n}", f"named-{n:02d}",
                    [{**record, **header} if record["type"] == "session" else record
                     for record in records(f"named-{n:02d}")])
    with EventStore.open("memory:") as store:
        first = Bridge(StateFolder(tmp_path), EmbeddedSink(store))
        assert one_pass(first, only_changed=False).records == 20 * 3
        index = (tmp_path / "agents" / "main" / "sessions" / "sessions.json").stat().st_size
        before = bytes_read()
        again = Bridge(StateFolder(tmp_path), EmbeddedSink(store))
        assert one_pass(again, only_changed=False).records == 0
        read = bytes_read() - before
    tails = sum(min(path.stat().st_size, TAIL_BYTES)
                for path in (tmp_path / "agents" / "main" / "sessions").glob("*.jsonl"))
    assert index + tails <= read < index + tails + 1024, (read, index, tails)


def test_a_file_keyed_from_its_start_is_never_read_whole_as_it_grows(tmp_path: Path) -> None:
    """A file no longer named (after ``/new``) whose key applies from its start: a pass
    that reads what it grew by reads that, the index, and at most its first line and the
    bytes before its offset (what tells it rewritten, ``file_marks.Seen``), never the whole
    file."""
    header = {"cwd": "/w/" + "x" * 20_000}
    written = [{**record, **header} if record["type"] == "session" else record
               for record in records(A, 6)]
    path = write_jsonl(tmp_path, KEY_A, A, written[:3])
    with EventStore.open("memory:") as store:
        bridge = Bridge(StateFolder(tmp_path), EmbeddedSink(store))
        one_pass(bridge, only_changed=False)
        write_jsonl(tmp_path, KEY_A, B, records(B))  # /new: the key names B
        one_pass(bridge, only_changed=False)
        index = (tmp_path / "agents" / "main" / "sessions" / "sessions.json").stat().st_size
        at_most = index + FIRST_RECORD_BYTES + 2 * TAIL_BYTES + 1024
        assert at_most < len(lines(written[:3]))
        for count in range(4, len(written) + 1):
            path.write_bytes(lines(written[:count]))
            before = bytes_read()
            assert one_pass(bridge, only_changed=False).records == 1
            read = bytes_read() - before - len(lines(written[count - 1:count]))
            assert index <= read < at_most, (read, index)
        assert events_by_session(store).get(session_key_for("main", A)) is None


def test_an_identity_kept_without_a_first_record_gets_one_from_an_unchanged_file(
        tmp_path: Path) -> None:
    """The file of a mark remembered by device and inode alone (as the release before
    kept it): the next pass reads its first line, though nothing of it is new, and keeps
    it beside them."""
    folder = tmp_path / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    path = folder / f"{A}.jsonl"
    path.write_bytes(lines(records(A)))
    name = keys_name(cursor_name(tmp_path.resolve(), "main"))
    info = path.stat()
    old = file_entry(A, FileIdentity(info.st_dev, info.st_ino))
    new = file_entry(A, FileIdentity(info.st_dev, info.st_ino,
                                     first_record(path.read_bytes())))
    assert old is not None and new is not None
    with EventStore.open("memory:") as store:
        one_pass(Bridge(StateFolder(tmp_path), EmbeddedSink(store)), only_changed=False)
        saved = read_cursor(store, name) or {}
        assert new in saved
        save_cursor(store, name, {old if entry == new else entry: order
                                  for entry, order in saved.items()})
        tally = one_pass(Bridge(StateFolder(tmp_path), EmbeddedSink(store)), only_changed=False)
        assert tally.records == 0 and read_cursor(store, name) == saved
