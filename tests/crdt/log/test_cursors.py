"""Bridge cursors kept in the log: limits of their size, and they survive a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from crdt.errors import InvalidInput, LimitExceeded
from crdt.keys import NAME_BYTES_MAX
from crdt.log.cursors import (
    CURSOR_BYTES_MAX,
    CURSOR_ENTRIES_MAX,
    VALUE_MAX,
    read_cursor,
    save_cursor,
)
from crdt.log.store import EventStore


def test_a_cursor_survives_a_reopen_and_is_not_a_peer_checkpoint(tmp_path: Path) -> None:
    with EventStore.open(tmp_path) as store:
        save_cursor(store, "openclaw:a:b", {"db:s1": 4, "jsonl:s2": VALUE_MAX})
    with EventStore.open(tmp_path) as store:
        assert read_cursor(store, "openclaw:a:b") == {"db:s1": 4, "jsonl:s2": VALUE_MAX}
        assert store.checkpoint("openclaw:a:b") is None


def test_cursor_limits() -> None:
    with EventStore.open("memory:") as store:
        save_cursor(store, "c", {f"e{n}": n for n in range(CURSOR_ENTRIES_MAX)})
        with pytest.raises(LimitExceeded, match="entries"):
            save_cursor(store, "c", {f"e{n}": n for n in range(CURSOR_ENTRIES_MAX + 1)})
        wide = {f"{n:0200d}": n for n in range(CURSOR_BYTES_MAX // 200)}
        with pytest.raises(LimitExceeded, match="bytes encoded"):
            save_cursor(store, "c", wide)
        for bad in ({"a": VALUE_MAX + 1}, {"a": True}, {"": 1}, {"a\n": 1}):
            with pytest.raises(InvalidInput):
                save_cursor(store, "c", bad)
        # An entry's name is bounded as an agent id is; the error says it is the name.
        # It names the entry, cut to a readable length.
        with pytest.raises(LimitExceeded,
                           match=rf"^cursor: an entry's name is {NAME_BYTES_MAX + 1} bytes; "
                                 rf"the limit is {NAME_BYTES_MAX} \('{'e' * 60}'…\)$"):
            save_cursor(store, "c", {"e" * (NAME_BYTES_MAX + 1): 1})
        with pytest.raises(InvalidInput, match=r"control characters \('a\\n'\)$"):
            save_cursor(store, "c", {"a\n": 1})
        with pytest.raises(InvalidInput, match=r"^cursor: an entry's name must not be empty"):
            save_cursor(store, "c", {"": 1})
        assert len(read_cursor(store, "c") or {}) == CURSOR_ENTRIES_MAX
