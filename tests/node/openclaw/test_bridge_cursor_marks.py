"""A file's tail mark is kept beside its offset only while the cursor has room: the
limits are checked on the offsets alone, the marks of the files a step read go first, and
a mark is saved only with the offset it was taken at."""

from __future__ import annotations

from pathlib import Path

import pytest

import node.openclaw.cursor_room as cursor_room
from crdt.log.cursors import read_cursor, save_cursor
from crdt.log.store import EventStore
from node.openclaw.cursor_entries import step_cursor
from node.openclaw.file_marks import tail_mark
from node.openclaw.state import cursor_name
from tests.node.openclaw.support import (
    SMALL,
    records,
    saving_bridge,
)
from tests.node.openclaw.waiting import (
    one_pass,
)
from tests.support.openclaw import write_jsonl


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
