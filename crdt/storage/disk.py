"""``DiskStorage``: records in a diskcache folder, configured as a durable log.

diskcache is a cache by default: it evicts (past 1 GB, least recently stored), flushes
nothing on commit, and keeps values of 32 KiB or more as separate files whose bodies a
power cut can lose. ``SETTINGS`` make it a log: nothing is evicted or culled, every
commit is fsynced (``sqlite_synchronous=2``, FULL, with the WAL journal) and every value
stays inside SQLite. diskcache persists settings in the folder, so they are passed again
on every open.

This module is also the one place where SQLite's and diskcache's errors become ours
(``_translated``): a full disk is ``StorageFull``, a lock held past ``BUSY_TIMEOUT_S``
``StorageBusy``, an I/O error or a damaged file ``StorageDamaged``. A transaction that
fails, even at its commit, is rolled back before the error leaves, so the next one
starts clean (SQLite keeps a transaction open after a commit that failed on a full
disk) and the storage recovers by itself once space comes back.

>>> import tempfile
>>> storage = DiskStorage.open(tempfile.mkdtemp())
>>> with storage.transaction() as tx:
...     tx.put("k", b"v")
>>> storage.get("k")
b'v'
>>> storage.close()
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import diskcache

from crdt.errors import (
    StorageBusy,
    StorageDamaged,
    StorageFull,
    StorageUnavailable,
    StoreError,
)
from crdt.storage.lock import FolderLock, Holder

#: diskcache configured as a durable log (see the module docstring).
SETTINGS: dict[str, Any] = {
    "eviction_policy": "none",
    "cull_limit": 0,
    "size_limit": 2**62,
    "sqlite_synchronous": 2,
    "sqlite_journal_mode": "wal",
    "disk_min_file_size": 2**40,
    "statistics": 0,
    "tag_index": 0,
    # Deleted and overwritten content is overwritten with zeros in the database file
    # (else it lingers in free space until reused): forgotten bytes must be gone
    # (``purge``). diskcache runs every ``sqlite_`` setting as a pragma on each of its
    # connections.
    "sqlite_secure_delete": 1,
}
#: diskcache's triggers that keep a count and a total size of its rows in ``Settings``:
#: two more UPDATEs for every row written, a third of what storing a peer's event costs
#: SQLite (about 15,000 of 45,000 CPU instructions per event of a catch-up). Only
#: eviction and culling read them, and a log does neither (``SETTINGS``), so the store
#: drops them on every open (diskcache creates them again each time it opens a folder),
#: all five in one transaction: one commit, not five, and none dropped if one fails.
#: Settings' ``count`` and ``size`` are then stale for good, so ``len()``, ``volume()``
#: and ``check()`` of the cache mean nothing for a log (nothing here calls them). An
#: older clawsync re-creates the triggers on its open and counts on from the stale
#: values (its deletes may take ``count`` below zero, and its ``len()`` then raises);
#: nothing in clawsync reads them either. This relies on the exact diskcache pin
#: (pyproject.toml) for the triggers' names and on its private ``Cache._sql``.
TALLY_TRIGGERS = ("Settings_count_insert", "Settings_count_delete", "Settings_size_insert",
                  "Settings_size_update", "Settings_size_delete")
#: Seconds a SQLite call waits for a lock before it fails as ``StorageBusy``. Only this
#: process opens the folder (``crdt.storage.lock``), so a lock is held by one of its own
#: threads, briefly: the writer's commit, a WAL checkpoint.
BUSY_TIMEOUT_S = 60.0
#: Checkpoints ``purge`` tries while readers hold the WAL, ``PURGE_WAIT_S`` apart:
#: reads are short (a page of events), so the first or second try succeeds.
PURGE_TRIES = 200
PURGE_WAIT_S = 0.01
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def holds_storage(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a store already (``open`` would not make a new one)."""
    database: str = diskcache.core.DBNAME
    return (Path(folder) / database).is_file()


def peek(folder: str | os.PathLike[str], key: str) -> bytes | None:
    """``key``'s value in the store in ``folder`` (None if it has none, or there is no
    store), read without changing a byte there: no lock written, no setting stored, no
    WAL file made. A start reads the log's meta record so before it makes anything, and
    a log it refuses is left as it was. While no process holds the folder
    (``FolderLock.none_holds``), a database with no WAL file is the whole store, read as
    immutable (SQLite would else make a WAL and its index even to read); one with a WAL
    (a crash left it, or an outside reader or writer, a ``sqlite3`` shell, has it open)
    is read through it without writing its index (``readonly_shm``).
    ``StorageUnavailable`` for a WAL without its index, which only an open rebuilds;
    ``FolderInUse``, and SQLite's errors as ``_translated`` says them, as ``open``."""
    path = Path(folder)
    database = path / diskcache.core.DBNAME
    wal = database.with_name(f"{database.name}-wal")
    if not holds_storage(path):
        return None  # no store yet: ``open`` makes an empty one
    with _translated(str(path)), FolderLock.none_holds(path):
        if not wal.exists():
            how = "immutable=1"
        elif database.with_name(f"{database.name}-shm").exists():
            how = "mode=ro&readonly_shm=1"
        else:
            raise StorageUnavailable("its WAL has no index: opening it rebuilds one",
                                     location=str(path))
        uri = f"{database.resolve().as_uri()}?{how}"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
                                ) as connection:
            row = connection.execute(_SELECT_ONE, (key, time.time())).fetchone()
            return None if row is None else _fetch(diskcache.Disk(str(path)), *row)


def _drop_tallies(cache: diskcache.Cache) -> None:
    """Drop ``TALLY_TRIGGERS`` in one transaction on the cache's connection; rolled back
    if any drop or the commit fails (the next open drops them again)."""
    cache._sql("BEGIN IMMEDIATE")
    try:
        for trigger in TALLY_TRIGGERS:
            cache._sql(f"DROP TRIGGER IF EXISTS {trigger}")
        cache._sql("COMMIT")
    except BaseException:
        if cache._con.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # ``close`` follows: it ends it too
                cache._sql("ROLLBACK")
        raise


class DiskStorage:
    """The ``crdt.storage.base.Storage`` interface over one diskcache folder."""

    def __init__(self, cache: diskcache.Cache, lock: FolderLock) -> None:
        self._cache = cache
        self._lock = lock
        self.location = str(lock.folder)
        self._local = threading.local()  # ``writing``: this thread is in a transaction
        self._closed = False

    @classmethod
    def open(cls, folder: str | os.PathLike[str],
             holder: Holder | None = None) -> DiskStorage:
        """Open (creating it if needed) and lock the folder, its lock file saying what
        ``holder`` says (``FolderLock.acquire``); ``FolderInUse`` if another process
        holds it."""
        path = Path(folder)
        with _translated(str(path)):
            path.mkdir(parents=True, exist_ok=True)
            lock = FolderLock.acquire(path, holder)
            try:
                cache = diskcache.Cache(os.fspath(path), timeout=BUSY_TIMEOUT_S, **SETTINGS)
                try:
                    _drop_tallies(cache)
                except BaseException:
                    cache.close()  # its connection, before another process may open
                    raise
            except BaseException:
                lock.release()
                raise
        return cls(cache, lock)

    def get(self, key: str) -> bytes | None:
        with self._reading():
            return _as_bytes(self._cache.get(key))

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        # One statement per ``KEYS_PER_SELECT`` keys, not one ``Cache.get`` per key: a
        # peer's catch-up reads its whole log this way, batch after batch.
        with self._reading():
            return _select_many(self._cache, keys)

    def has(self, key: str) -> bool:
        with self._reading():
            return key in self._cache

    def keys_after(self, prefix: str, after: str, limit: int) -> list[str]:
        # A range of diskcache's (key, raw) index. SQLite compares text as UTF-8 bytes,
        # which orders as Python orders str: the keys that start with ``prefix`` sort
        # below it with its last character raised by one.
        query, bounds = _KEYS_AFTER, [max(prefix, after), after]
        if prefix:
            query += " AND key < ?"
            bounds.append(prefix[:-1] + chr(ord(prefix[-1]) + 1))
        with self._reading():
            rows = self._cache._sql(query + " ORDER BY key LIMIT ?", (*bounds, limit)).fetchall()
        return [key for (key,) in rows]

    @contextmanager
    def transaction(self) -> Iterator[_DiskTransaction]:
        self._check_open()
        if getattr(self._local, "writing", False):
            raise StoreError("transactions do not nest")
        self._local.writing = True
        try:
            with _translated(self.location):
                try:
                    with self._cache.transact():
                        yield _DiskTransaction(self._cache)
                except BaseException:
                    self._roll_back()
                    raise
        finally:
            self._local.writing = False

    def purge(self) -> bool:
        """Copy the WAL into the database file and truncate it to nothing (a checkpoint
        in TRUNCATE mode), so that the old page images it holds, forgotten content among
        them, are gone from disk; ``secure_delete`` (``SETTINGS``) zeroes what the
        database file itself frees. A reader in the middle of a read keeps the WAL
        alive: wait for it (up to ``PURGE_TRIES`` checkpoints, ``PURGE_WAIT_S`` apart),
        since the checkpoint waits only for locks, not for readers of older snapshots;
        False if they still did. Run it on the writing thread, outside a transaction."""
        with self._reading():
            connection = self._cache._con
            for _ in range(PURGE_TRIES):
                busy, _frames, _done = connection.execute(
                    "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    return True
                time.sleep(PURGE_WAIT_S)
            return False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._cache.close()
            finally:
                self._lock.release()

    @contextmanager
    def _reading(self) -> Iterator[None]:
        self._check_open()
        with _translated(self.location):
            yield

    def _roll_back(self) -> None:
        """End a transaction that failed, even at its commit: diskcache has then already
        forgotten it, but SQLite keeps it open, and every later one would fail."""
        connection = self._cache._con  # diskcache's connection of this thread
        if connection.in_transaction:
            # A connection that cannot even roll back is broken: the next call says so.
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the storage is closed")


_KEYS_AFTER = "SELECT key FROM Cache WHERE raw = 1 AND key >= ? AND key > ?"
#: Keys per ``SELECT ... IN`` of ``get_many`` (SQLite allows 32,766
#: parameters a statement; a few hundred already make the per-key cost small).
KEYS_PER_SELECT = 500
_SELECT_ONE = ("SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
               " AND (expire_time IS NULL OR expire_time > ?)")
_SELECT_MANY = ("SELECT key, mode, filename, value FROM Cache WHERE raw = 1"
                " AND (expire_time IS NULL OR expire_time > ?) AND key IN ({})")
# diskcache's own row for a value written by ``Cache.set`` with no expiry and no tag
# (``Cache._row_insert`` / ``_row_update``): one statement for a batch of them, each row
# written as ``set`` writes it. No tally of the rows is kept (``TALLY_TRIGGERS``).
_UPSERT = ("INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count,"
           " tag, size, mode, filename, value) VALUES (?, 1, ?, NULL, ?, 0, NULL, ?, ?, NULL, ?)"
           " ON CONFLICT(key, raw) DO UPDATE SET store_time = excluded.store_time,"
           " expire_time = NULL, access_time = excluded.access_time, access_count = 0,"
           " tag = NULL, size = excluded.size, mode = excluded.mode, filename = NULL,"
           " value = excluded.value")


class _DiskTransaction:
    """Writes inside ``diskcache.Cache.transact``; reads on the same connection see them.

    ``get_many`` and ``put_many`` speak SQL to diskcache's table directly (one statement
    for many records, where ``Cache.get`` and ``Cache.set`` take two per record), writing
    rows exactly as ``Cache.set`` does; values stay inside SQLite (``SETTINGS``)."""

    def __init__(self, cache: diskcache.Cache) -> None:
        self._cache = cache

    def get(self, key: str) -> bytes | None:
        # ``Cache.get``'s own query, without its per-call set-up: a batch reads a few
        # records this way (session headers, index chunks), most of them absent.
        row = self._cache._con.execute(_SELECT_ONE, (key, time.time())).fetchone()
        if row is None:
            return None
        return _fetch(self._cache._disk, *row)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return _select_many(self._cache, keys)

    def has(self, key: str) -> bool:
        return key in self._cache

    def put(self, key: str, value: bytes) -> None:
        self._cache.set(key, bytes(value))

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        now = time.time()
        file_bytes_min = self._cache.disk_min_file_size
        mode = diskcache.core.MODE_RAW
        rows = []
        for key, value in items:
            if len(value) >= file_bytes_min:  # not with ``SETTINGS``: no value is that big
                raise StoreError("a value too big to stay inside SQLite")
            # Bytes bind as a BLOB as they are (``Cache.set`` wraps them in a memoryview,
            # ``sqlite3.Binary``, to the same stored bytes).
            rows.append((key, now, now, 0, mode, value))
        self._cache._con.executemany(_UPSERT, rows)

    def add(self, key: str, value: bytes) -> bool:
        return bool(self._cache.add(key, bytes(value)))

    def delete(self, key: str) -> None:
        self._cache.delete(key)


def _select_many(cache: diskcache.Cache, keys: Sequence[str]) -> list[bytes | None]:
    """The values of ``keys`` (None where absent), read on the thread's connection with
    one ``SELECT ... IN`` per ``KEYS_PER_SELECT`` keys: what ``Cache.get`` would read for
    each, without its two statements per key."""
    found: dict[str, bytes | None] = {}
    now = time.time()
    for start in range(0, len(keys), KEYS_PER_SELECT):
        part = keys[start:start + KEYS_PER_SELECT]
        rows = cache._con.execute(
            _SELECT_MANY.format(", ".join("?" * len(part))), (now, *part)).fetchall()
        for key, mode, filename, value in rows:
            found[key] = _fetch(cache._disk, mode, filename, value)
    return [found.get(key) for key in keys]


def _fetch(disk: diskcache.Disk, mode: int, filename: str | None,
           value: object) -> bytes | None:
    """The value of a row read from diskcache's table, as ``Cache.get`` reads it (its
    ``disk`` reads a value kept in a file): a
    value kept in a file (only logs written before ``SETTINGS`` have such) whose file
    cannot be read is absent. ``Cache.delete`` removes a value's file after its row, so
    a reader that still sees the row may find no file: the record was deleted."""
    try:
        return _as_bytes(disk.fetch(mode, filename, value, False))
    except OSError:
        return None


def _as_bytes(value: object) -> bytes | None:
    """Values are bytes. Logs written before the storage interface kept the session list
    as text: those read as their UTF-8 bytes."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise StoreError(f"a record holds a {type(value).__name__}, not bytes")


@contextmanager
def _translated(location: str) -> Iterator[None]:
    """THE translation of SQLite's, diskcache's and the file system's errors into ours."""
    try:
        yield
    except diskcache.Timeout:
        raise StorageBusy(f"the database stayed locked for more than {BUSY_TIMEOUT_S:g} s",
                          location=location) from None
    except sqlite3.Error as error:
        raise _sqlite_error(error, location) from error
    except OSError as error:
        if error.errno in _FULL:
            raise StorageFull("the disk is full", location=location) from error
        raise StorageDamaged(f"cannot read or write the data: {error.strerror or error}",
                             location=location) from error


def _sqlite_error(error: sqlite3.Error, location: str) -> StorageUnavailable:
    name = getattr(error, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_FULL"):
        return StorageFull("the disk is full", location=location)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StorageBusy(f"the database stayed locked for more than {BUSY_TIMEOUT_S:g} s",
                           location=location)
    return StorageDamaged(f"the database failed: {error}", location=location)
