"""What a ``.jsonl`` whose byte the keys remember (a mark, or where its key applies
from) is once it changes, in real bridge passes: with another first record than the one
remembered it is another file, read from its start, whatever its length, device and
inode, for a marked file as for a keyed one; with the same first record it is the same
file, cut shorter or grown, on its device and inode or on another (a copy through a
rename)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crdt.events import Event
from crdt.log.store import EventStore
from node.cli.openclaw_sink import EmbeddedSink
from node.openclaw.bridge import Bridge
from node.openclaw.key_entries import entry_of
from node.openclaw.session_keys import keys_name
from node.openclaw.session_names import session_key_for
from node.openclaw.state import StateFolder, cursor_name
from tests.node.openclaw.keyed import (
    SESSION_A,
    T0_MS,
    byte_entries,
    events_by_session,
    lines,
    records,
)
from tests.node.openclaw.waiting import KEY_A, A, one_pass
from tests.support.openclaw import replaced_anew, write_jsonl

#: Session A under its id, as the node holds it.
SESSION_ID_A = session_key_for("main", A)
#: A later start for a rewritten file: its timestamps as long as the first one's.
LATER_MS = T0_MS + 7000


def read_so_far(tmp_path: Path, store: EventStore, named: bool) -> tuple[Bridge, Path]:
    """Session A's file read under its id (marked), then a turn more: named by its index
    then (its key applying from the byte read up to), or with no index (marked on)."""
    folder = tmp_path / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    path = folder / f"{A}.jsonl"
    path.write_bytes(lines(records(A, 2)))
    bridge = Bridge(StateFolder(tmp_path), EmbeddedSink(store))
    one_pass(bridge, only_changed=False)
    if named:
        write_jsonl(tmp_path, KEY_A, A, records(A, 3))
    else:
        path.write_bytes(lines(records(A, 3)))
    one_pass(bridge, only_changed=False)
    return bridge, path


def in_place(path: Path, data: bytes) -> None:
    """``path`` rewritten with ``data``: the same file (device and inode)."""
    inode = path.stat().st_ino
    with path.open("r+b") as file:
        file.truncate(0)
        file.write(data)
    assert path.stat().st_ino == inode


def saved_keys(tmp_path: Path, store: EventStore) -> dict[str, int] | None:
    return byte_entries(store, keys_name(cursor_name(tmp_path.resolve(), "main")))


def assert_read_as_new(tmp_path: Path, store: EventStore, named: bool,
                       before: dict[str, int], written: list[dict[str, object]]) -> None:
    """The file of ``written`` was read as another file: its records from its start, all
    new, under the key if one is known (from its start now: no byte kept), else under
    the id (marked anew, to its end); what was stored before stays."""
    after = events_by_session(store)
    if named:
        assert after[SESSION_ID_A] == before[SESSION_ID_A]
        assert after[SESSION_A] == before[SESSION_A] + len(written)
        assert set(saved_keys(tmp_path, store) or {}) == {entry_of(A, KEY_A)}
    else:
        assert after == {SESSION_ID_A: before[SESSION_ID_A] + len(written)}
        assert set(saved_keys(tmp_path, store) or {}) == {entry_of(A, None, len(lines(written)))}


@pytest.mark.parametrize("named", [True, False], ids=["keyed", "marked"])
@pytest.mark.parametrize("turns", [1, 5], ids=["shorter", "longer"])
def test_a_file_rewritten_in_place_with_another_first_record_is_another(
        tmp_path: Path, named: bool, turns: int) -> None:
    """Rewritten in place (the same device and inode), another first record: read from
    its start, shorter or longer; then cut, it is the file now remembered, only cut."""
    with EventStore.open("memory:") as store:
        bridge, path = read_so_far(tmp_path, store, named)
        before = events_by_session(store)
        written = records(A, turns, LATER_MS)
        in_place(path, lines(written))
        assert one_pass(bridge, only_changed=False).records == len(written)
        assert_read_as_new(tmp_path, store, named, before, written)
        in_place(path, lines(written[:-1]))
        tally = one_pass(bridge, only_changed=False)
        assert (tally.records, tally.created) == (len(written) - 1, 0)


@pytest.mark.parametrize("named", [True, False], ids=["keyed", "marked"])
def test_a_file_rewritten_in_place_at_the_same_length_is_another(
        tmp_path: Path, named: bool) -> None:
    """Rewritten in place at the very same length, another first record: nothing is
    past its offset, but its stamp changed, so it is read from its start at once, as
    another file (read to where it was before: its mark is moved there at the next
    pass)."""
    with EventStore.open("memory:") as store:
        bridge, path = read_so_far(tmp_path, store, named)
        before = events_by_session(store)
        size = path.stat().st_size
        written = records(A, 3, LATER_MS)
        in_place(path, lines(written))
        assert path.stat().st_size == size
        assert one_pass(bridge, only_changed=False).records == len(written)
        assert one_pass(bridge, only_changed=False).records == 0
        assert_read_as_new(tmp_path, store, named, before, written)


@pytest.mark.parametrize("named", [True, False], ids=["keyed", "marked"])
def test_a_file_replaced_by_a_longer_other_one_is_another(tmp_path: Path, named: bool) -> None:
    """Renamed aside (as OpenClaw's reset does) and a longer file of other records
    written in its place: another device or inode and another first record, read from
    its start, not from the old file's offset as if it had grown."""
    with EventStore.open("memory:") as store:
        bridge, path = read_so_far(tmp_path, store, named)
        before = events_by_session(store)
        os.rename(path, path.with_name(path.name + ".reset.1"))
        written = records(A, 5, LATER_MS)
        path.write_bytes(lines(written))
        assert one_pass(bridge, only_changed=False).records == len(written)
        assert_read_as_new(tmp_path, store, named, before, written)


@pytest.mark.parametrize("named", [True, False], ids=["keyed", "marked"])
def test_a_copy_through_a_rename_is_the_same_file(tmp_path: Path, named: bool) -> None:
    """Rewritten through a rename with the same records (another inode, the same first
    record): grown, it is read on from its offset; then cut, it is the same file, only
    cut, and nothing is stored twice (under the key, or the id)."""
    with EventStore.open("memory:") as store:
        bridge, path = read_so_far(tmp_path, store, named)
        path.write_bytes(lines(records(A, 4)))
        replaced_anew(path)
        tally = one_pass(bridge, only_changed=False)
        assert (tally.records, tally.created) == (1, 1)
        before, saved = events_by_session(store), saved_keys(tmp_path, store)
        replaced_anew(path)  # the copy's inode is remembered at the pass that sees it
        assert one_pass(bridge, only_changed=False).records == 0
        in_place(path, lines(records(A, 1)))
        tally = one_pass(bridge, only_changed=False)
        assert (tally.records, tally.created) == (2, 0)
        assert events_by_session(store) == before and saved_keys(tmp_path, store) == saved


class CuttingSink(EmbeddedSink):
    """An embedded store during whose first append OpenClaw cuts ``path`` to ``data``:
    the pass's next read of the folder finds it cut."""

    def __init__(self, store: EventStore, path: Path, data: bytes) -> None:
        super().__init__(store)
        self.path, self.data = path, data
        self.cut = False

    async def append(self, events: list[Event]) -> int:
        stored = await super().append(events)
        if not self.cut:
            self.cut = True
            in_place(self.path, self.data)
        return stored


def test_a_new_mark_keeps_its_file_from_its_first_read(tmp_path: Path) -> None:
    """A file read under its id for the first time is remembered by that very read: cut
    shorter before the next one (in the same pass, OpenClaw writing meanwhile), it is
    the same file, only cut, and its mark stays at the byte read up to (not another
    file, marked anew from its start)."""
    folder = tmp_path / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    path = folder / f"{A}.jsonl"
    path.write_bytes(lines(records(A, 3)))
    with EventStore.open("memory:") as store:
        sink = CuttingSink(store, path, lines(records(A, 1)))
        tally = one_pass(Bridge(StateFolder(tmp_path), sink), only_changed=False)
        assert sink.cut and (tally.records, tally.created) == (4 + 2, 4)
        assert saved_keys(tmp_path, store) == {entry_of(A, None, len(lines(records(A, 3)))): 0}
