"""The diskcache backend: a durable log's settings, values inside SQLite, one process per
folder, errors translated, and folders written by earlier versions."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import cbor2
import diskcache
import pytest

from crdt.automerge.documents import Documents
from crdt.errors import FolderInUse, StorageDamaged, StoreError
from crdt.events import Event
from crdt.log.store import EventStore
from crdt.storage import disk, lock
from crdt.storage.disk import SETTINGS, DiskStorage
from crdt.storage.lock import LOCK_NAME, FolderLock
from tests.support.rawfiles import files_holding

MakeEvent = Callable[..., Event]
SQLITE_FILES = {"cache.db", "cache.db-wal", "cache.db-shm", LOCK_NAME}
DATA = Path(__file__).resolve().parents[2] / "data"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def store(store_path: Path) -> Iterator[EventStore]:
    """A store on this backend only."""
    with EventStore.open(store_path) as opened:
        yield opened


def test_settings_are_applied_on_every_open(store_path: Path, ev: MakeEvent) -> None:
    """A folder first created by plain diskcache (a cache: it evicts, it does not fsync,
    it keeps big values as files) becomes a log when the store opens it."""
    with diskcache.Cache(os.fspath(store_path)) as plain:
        plain.set("left-over", b"x")
        assert plain.eviction_policy == "least-recently-stored"
    with EventStore.open(store_path) as store:
        store.append(ev())
        cache = store.log.storage._cache  # type: ignore[attr-defined]
        expected = {"eviction_policy": "none", "cull_limit": 0, "sqlite_synchronous": 2,
                    "disk_min_file_size": 2**40, "size_limit": 2**62}
        for name, value in expected.items():
            assert cache.reset(name) == value, name  # read back from the Settings table
        assert cache._sql("PRAGMA synchronous").fetchall() == [(2,)]  # FULL, really applied
        assert cache._disk.min_file_size >= 2**40
    with sqlite3.connect(store_path / "cache.db") as db:
        stored = dict(db.execute("SELECT key, value FROM Settings").fetchall())
    assert stored["eviction_policy"] == "none"
    assert stored["sqlite_synchronous"] == 2
    assert stored["cull_limit"] == 0
    assert stored["disk_min_file_size"] >= 2**40


def test_a_log_keeps_no_tallies_of_its_rows(store_path: Path, ev: MakeEvent) -> None:
    """diskcache's triggers that count its rows and sum their sizes, which plain
    diskcache creates, are gone once the store has opened the folder, and stay gone
    across opens; what the store writes and reads is the same without them."""
    with diskcache.Cache(os.fspath(store_path)) as plain:
        plain.set("left-over", b"x")
    for _ in range(2):
        with EventStore.open(store_path) as store:
            stored = store.append(ev()).stored
            cache = store.log.storage._cache  # type: ignore[attr-defined]
            assert cache._sql("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                              ).fetchall() == []
        with EventStore.open(store_path) as store:
            assert store.get_event(stored.event.id) == stored


def test_a_failed_drop_of_the_tallies_drops_none_and_leaves_the_folder_closed(
        store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The triggers go in one transaction: a drop that fails (here the last, a name
    SQLite refuses) drops none, and the open closes diskcache's connection as well as
    freeing the folder."""
    diskcache.Cache(os.fspath(store_path)).close()
    monkeypatch.setattr(disk, "TALLY_TRIGGERS", (*disk.TALLY_TRIGGERS, "no such trigger"))
    with pytest.raises(StoreError) as failed:
        DiskStorage.open(store_path)
    # While the failure (and its frames, the cache among them) is still held:
    database = os.fspath((store_path / diskcache.core.DBNAME).resolve())
    held = [fd for fd in os.listdir("/proc/self/fd")
            if os.path.realpath(f"/proc/self/fd/{fd}") == database]
    assert failed.value is not None and held == []
    with contextlib.closing(sqlite3.connect(database)) as connection:
        triggers = {name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert set(disk.TALLY_TRIGGERS) - {"no such trigger"} <= triggers
    monkeypatch.undo()
    DiskStorage.open(store_path).close()  # the folder is free, and opens as ever


def test_big_events_stay_inside_sqlite(store: EventStore, store_path: Path,
                                       ev: MakeEvent) -> None:
    big = ev(content="x" * 100_000)  # far above diskcache's 32 KiB file threshold
    store.append(big)
    assert store.get_event(big.id).event == big
    assert Documents(store).saved("s1")  # the document (another big value) too
    leftovers = [os.path.relpath(os.path.join(root, name), store_path)
                 for root, _, files in os.walk(store_path) for name in files]
    assert set(leftovers) <= SQLITE_FILES
    assert [name for name in os.listdir(store_path) if (store_path / name).is_dir()] == []


def test_a_second_open_of_a_folder_is_refused_at_once_and_names_the_holder(
        store_path: Path) -> None:
    with EventStore.open(store_path):
        with pytest.raises(FolderInUse) as refused:
            EventStore.open(store_path)
        message = str(refused.value)
        assert str(store_path.resolve()) in message and f"process {os.getpid()}" in message
    EventStore.open(store_path).close()  # released on close


def test_a_killed_holder_leaves_no_lock_behind(store_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from crdt.log.store import EventStore; "
         f"EventStore.open({str(store_path)!r}); print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        with pytest.raises(FolderInUse, match=f"process {holder.pid} "):
            EventStore.open(store_path)
    finally:
        holder.kill()
        holder.wait()
    EventStore.open(store_path).close()


def test_a_damaged_database_is_a_storage_error(store_path: Path, ev: MakeEvent) -> None:
    with EventStore.open(store_path) as store:
        store.append(ev())
    (store_path / "cache.db").write_bytes(b"this is not a database" * 1000)
    for name in ("cache.db-wal", "cache.db-shm"):
        (store_path / name).unlink(missing_ok=True)
    with pytest.raises(StorageDamaged, match=str(store_path.resolve())):
        EventStore.open(store_path)
    EventStore.open(store_path / "elsewhere").close()  # and the lock was let go


def test_a_folder_written_by_version_0_1_opens_as_it_was(store_path: Path,
                                                         ev: MakeEvent) -> None:
    """``tests/data/log-format-1.cbor`` holds every record of a log that clawsync 0.1.0
    wrote (events of two sessions, one from a peer, a checkpoint, an Automerge document),
    and what that version read from it."""
    dump = cbor2.loads((DATA / "log-format-1.cbor").read_bytes())
    with diskcache.Cache(os.fspath(store_path), **SETTINGS) as cache:
        for key, value in dump["records"].items():
            cache.set(key, value)  # as 0.1.0 stored them: the session list as text
    expected = dump["expected"]
    with EventStore.open(store_path) as store:
        assert store.node_id == expected["node_id"]
        assert store.version == expected["version"]
        assert [s.to_json() for s in store.events_after(0, 100)] == expected["events"]
        for key, view in expected["projections"].items():
            assert store.get_projection(key).to_json() == view
        assert [ref.session_key for ref in store.list_sessions()] == ["tg:alice", "web:bob"]
        assert store.checkpoint("url:http://peer:7878") == expected["checkpoint"]
        document = Documents(store).document("tg:alice").to_python()
        assert len(document["messages"]) == 3
        added = store.append(ev(session="tg:alice", ms=1_750_000_000_000)).stored
        assert added.position == len(expected["events"]) + 1
        assert added.seq == expected["version"][expected["node_id"]] + 1


def test_the_storage_is_refused_after_close(store_path: Path) -> None:
    storage = DiskStorage.open(store_path)
    storage.close()
    with pytest.raises(StoreError):
        storage.get("m")


def test_purge_leaves_no_old_value_in_any_file(tmp_path: Path) -> None:
    """secure_delete zeroes what the database file frees, and the checkpoint empties the
    WAL, which holds the old pages."""
    storage = DiskStorage.open(tmp_path / "d")
    try:
        with storage.transaction() as tx:
            tx.put("a", b"old-value-marker " * 50)
            tx.put("b", b"old-value-marker")
        assert files_holding(tmp_path / "d", "old-value-marker")
        with storage.transaction() as tx:
            tx.put("a", b"new")
            tx.delete("b")
        assert storage.purge()
        assert files_holding(tmp_path / "d", "old-value-marker") == []
        assert (tmp_path / "d" / "cache.db-wal").stat().st_size == 0
    finally:
        storage.close()


def test_a_legacy_value_whose_file_is_gone_reads_as_absent_in_every_read(
        store_path: Path) -> None:
    """Before the log settings, diskcache kept values of 32 KiB or more as files. One
    whose file is gone reads as absent, as ``Cache.get`` has it (a value's file is
    removed after its row: a reader that still sees the row may find no file), in the
    batched reads as in the single ones, inside a transaction as outside."""
    big = b"b" * 40_000
    with diskcache.Cache(os.fspath(store_path)) as legacy:  # its defaults: big -> files
        legacy.set("lost", big)
        legacy.set("kept", big)
        legacy.set("small", b"s")
        (lost_file,) = legacy._sql(
            "SELECT filename FROM Cache WHERE key = 'lost'").fetchone()
    value_files = [p for p in store_path.rglob("*.val")]
    assert len(value_files) == 2
    (store_path / lost_file).unlink()
    keys = ["lost", "kept", "small", "absent"]
    expected = [None, big, b"s", None]
    storage = DiskStorage.open(store_path)
    try:
        assert [storage.get(key) for key in keys] == expected
        assert storage.get_many(keys) == expected
        with storage.transaction() as tx:
            assert [tx.get(key) for key in keys] == expected
            assert tx.get_many(keys) == expected
    finally:
        storage.close()


def test_a_lock_whose_holder_cannot_be_written_is_let_go_of(
        store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock is taken, then its holder's description cannot be written (the disk is
    full: injected here, as a full disk fails that write): the error is raised, and the
    lock and its descriptor go with it, so the folder opens at once once the disk has
    room again, in this process too."""
    store_path.mkdir()
    descriptors = len(os.listdir("/proc/self/fd"))

    def full(_fd: int, _data: bytes, _offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patched:
        patched.setattr(lock.os, "pwrite", full)
        with pytest.raises(OSError, match="No space left"):
            FolderLock.acquire(store_path)
    assert len(os.listdir("/proc/self/fd")) == descriptors
    FolderLock.acquire(store_path).release()
