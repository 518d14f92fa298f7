"""``MemoryStorage``: records in a dict. Nothing reaches a disk; everything is gone when
the process ends. For tests (the replication property tests run thousands of examples on
it) and for throwaway nodes (``clawsync serve --storage memory:``).

A transaction collects its writes apart and applies them under a lock when it ends, so
readers on other threads see all of them or none, as they would on SQLite.

>>> storage = MemoryStorage()
>>> with storage.transaction() as tx:
...     tx.put("a", b"1")
...     tx.add("a", b"2")
False
>>> storage.get_many(["a", "b"])
[b'1', None]
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from crdt.errors import StoreError

_DELETED = None


class MemoryStorage:
    """The ``crdt.storage.base.Storage`` interface over a dict."""

    location = "memory:"

    def __init__(self) -> None:
        self._records: dict[str, bytes] = {}
        #: Held while a transaction's writes are applied and while a record is read.
        self._lock = threading.Lock()
        #: Held for the whole of a transaction: one writer at a time.
        self._writer = threading.Lock()
        self._writing_thread: int | None = None
        self._closed = False
        #: The keys in order, for ``keys_after``; None once a commit changed them.
        self._sorted: list[str] | None = None

    @classmethod
    def open(cls, location: str = "memory:") -> MemoryStorage:
        """A new, empty storage (every ``memory:`` location is a fresh one)."""
        return cls()

    def get(self, key: str) -> bytes | None:
        self._check_open()
        with self._lock:
            return self._records.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self._check_open()
        with self._lock:
            return [self._records.get(key) for key in keys]

    def has(self, key: str) -> bool:
        self._check_open()
        with self._lock:
            return key in self._records

    def keys_after(self, prefix: str, after: str, limit: int) -> list[str]:
        self._check_open()
        with self._lock:
            if self._sorted is None:  # sorted once for a walk of many pages
                self._sorted = sorted(self._records)
            keys = self._sorted
            start = bisect.bisect_right(keys, max(prefix, after))
            if prefix and keys[start - 1:start] == [prefix] and after < prefix:
                start -= 1  # the prefix itself is a key, and it starts with the prefix
            found = []
            for key in itertools.islice(keys, start, start + limit):
                if not key.startswith(prefix):
                    break
                found.append(key)
            return found

    @contextmanager
    def transaction(self) -> Iterator[_MemoryTransaction]:
        self._check_open()
        if self._writing_thread == threading.get_ident():
            raise StoreError("transactions do not nest")
        with self._writer:
            self._writing_thread = threading.get_ident()
            try:
                tx = _MemoryTransaction(self)
                yield tx
                with self._lock:
                    if tx.writes:
                        self._sorted = None
                    for key, value in tx.writes.items():
                        if value is _DELETED:
                            self._records.pop(key, None)
                        else:
                            self._records[key] = value
            finally:
                self._writing_thread = None

    def purge(self) -> bool:
        """Nothing to do: a replaced value is gone with its last reference."""
        self._check_open()
        return True

    def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the storage is closed")


class _MemoryTransaction:
    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage
        #: Key -> new value, or None for a deletion.
        self.writes: dict[str, bytes | None] = {}

    def get(self, key: str) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._storage.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, key: str, value: bytes) -> None:
        self.writes[key] = bytes(value)

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        for key, value in items:
            self.put(key, value)

    def add(self, key: str, value: bytes) -> bool:
        if self.has(key):
            return False
        self.put(key, value)
        return True

    def delete(self, key: str) -> None:
        self.writes[key] = _DELETED
