"""The one-off count of forgotten sessions when a folder written before it was kept
opens (``crdt.log.upgrade.count_forgotten_sessions``): a process ended in the middle of
the open counts again on the next one, a forget record without a session header is
passed over, and every later open reads the stored count, no forget record."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from crdt import codec
from crdt.events import parse_event
from crdt.log import forget
from crdt.log.records import META, key
from crdt.log.store import EventStore
from crdt.log.upgrade import FORGOTTEN_COUNT_STEP
from crdt.storage.disk import DiskStorage
from tests.support.events import event
from tests.support.storage import CountedStorage


def _forgotten_counted(store: EventStore) -> tuple[int, int]:
    """The count the log keeps, and the count of the sessions that read as forgotten."""
    return store.stats()["sessions_forgotten"], sum(
        store.log.session(name).forgotten for name in store.sessions_by_key())


def _meta_fields(path: Path) -> dict[str, object]:
    storage = DiskStorage.open(path)
    try:
        raw = storage.get(META)
        assert raw is not None
        fields: dict[str, object] = codec.decode_trusted(raw)
        return fields
    finally:
        storage.close()


def _old_folder(path: Path, *drop: str) -> None:
    """A folder with ``s0`` forgotten whole and ``s1`` not, whose meta record lacks the
    fields ``drop`` (as one an older version wrote)."""
    with EventStore.open(str(path)) as store:
        store.append_batch([event(content=f"fine {n}", ms=1_000 + n, session=f"s{n}")
                            for n in range(2)])
        store.forget("s0")
    storage = DiskStorage.open(path)
    try:
        with storage.transaction() as tx:
            meta = codec.decode_trusted(tx.get(META))
            for name in drop:
                del meta[name]
            tx.put(META, codec.encode_fast(meta))
    finally:
        storage.close()


#: Opens the folder in argv[1], killed (SIGKILL) as the count of forgotten sessions
#: starts: after the upgrades before it have committed.
_KILLED_IN_THE_COUNT = textwrap.dedent("""
    import os, signal, sys
    from crdt.log import upgrade
    from crdt.log.store import EventStore

    def killed(log):
        os.kill(os.getpid(), signal.SIGKILL)

    upgrade.count_forgotten_sessions = killed
    EventStore.open(sys.argv[1])
""")


def test_a_process_killed_before_the_count_counts_on_the_next_open(
        store_path: Path) -> None:
    """The upgrades that run before the count commit the meta record; killed before the
    count commits, that record still says nothing of the count, and the next open counts
    (it read 0 for good, then -1 once the forgotten session came back)."""
    _old_folder(store_path, "forgotten", "retired", "retiring")
    killed = subprocess.run([sys.executable, "-c", _KILLED_IN_THE_COUNT, str(store_path)],
                            capture_output=True, text=True, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    fields = _meta_fields(store_path)
    assert "retired" in fields  # an upgrade before the count committed
    with EventStore.open(str(store_path)) as store:
        assert _forgotten_counted(store) == (1, 1)
        assert "forgotten" not in fields  # the commit before the kill stored no count
        # Stamped now, after the forget: the session is back.
        store.append(parse_event({"agent_id": "main", "kind": {
            "type": "message_received", "content": "back"}}, session_key="s0"))
        assert _forgotten_counted(store) == (0, 0)
    assert _meta_fields(store_path)["forgotten"] == 0


def test_a_forget_record_without_a_session_header_is_passed_over(
        store_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The count walks the forget records: one whose session has no header (left by a
    damaged folder) is not counted and does not stop the open; the count says, before
    and after, that it runs and what it found."""
    _old_folder(store_path, "forgotten")
    storage = DiskStorage.open(store_path)
    try:
        with storage.transaction() as tx:
            tx.put(key("f", "ghost"), tx.get(key("f", "s0")))
    finally:
        storage.close()
    with caplog.at_level(logging.INFO, logger="crdt.log.upgrade"), \
            EventStore.open(str(store_path)) as store:
        assert _forgotten_counted(store) == (1, 1)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("counting the sessions forgotten whole"), lines
    assert "'ghost' has forget records but no header" in lines[1], lines
    assert lines[2].startswith("counted 1 sessions forgotten whole among the 1 with "
                               "forget records"), lines
    assert [record.levelname for record in caplog.records] == ["INFO", "WARNING", "INFO"]


#: Sessions forgotten whole in the folder of the test below: more than one step of the
#: count (``FORGOTTEN_COUNT_STEP``), so that a count on open shows in the reads.
_FORGOTTEN = 2 * FORGOTTEN_COUNT_STEP + 100


def _open_counted(path: Path) -> tuple[Counter[str], int]:
    """Open the folder: the records the open read, by kind, and the count it holds."""
    storage = CountedStorage(DiskStorage.open(path))
    with EventStore(storage) as store:
        read = storage.records.copy()
        return read, store.stats()["sessions_forgotten"]


def _count_dropped(path: Path) -> None:
    """The meta record without the count, as an older version writes it."""
    storage = DiskStorage.open(path)
    try:
        with storage.transaction() as tx:
            meta = codec.decode_trusted(tx.get(META))
            del meta["forgotten"]
            tx.put(META, codec.encode_fast(meta))
    finally:
        storage.close()


def test_an_open_reads_no_forget_record_once_the_count_is_stored(store_path: Path) -> None:
    """Opening a folder costs nothing per forgotten session: the count is in the meta
    record, kept by the commits that forget. A folder without it (an older version's)
    walks its forget records and their sessions' headers once, and stores the count."""
    with EventStore.open(str(store_path)) as store:
        store.append_batch([event(content=f"fine {n}", ms=1_000, session=f"s{n}")
                            for n in range(_FORGOTTEN + 1)])
        store.append_batch([forget.forget(f"s{n}") for n in range(_FORGOTTEN)])
        held = store.sessions_by_key(limit=_FORGOTTEN + 1)
        assert sum(store.log.session(name).forgotten for name in held) == _FORGOTTEN
    read, counted = _open_counted(store_path)
    assert (read["f"], read["h"], counted) == (0, 0, _FORGOTTEN)
    _count_dropped(store_path)
    read, counted = _open_counted(store_path)
    assert (read["f"], read["h"], counted) == (_FORGOTTEN, _FORGOTTEN, _FORGOTTEN)
    read, counted = _open_counted(store_path)
    assert (read["f"], read["h"], counted) == (0, 0, _FORGOTTEN)
