"""Storage for tests: every backend by name, a real backend that fails on cue, and one
that counts its reads."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from crdt.errors import StorageFull
from crdt.log.records import SEP
from crdt.storage.backends import open_storage
from crdt.storage.base import Storage, Transaction
from tests.support.unavailable import unavailable

#: Every backend the conformance suite and the store tests run against.
BACKENDS = ("disk", "memory")


def open_backend(name: str, folder: Path) -> Storage:
    """A new storage of backend ``name``; ``folder`` is used by those that keep files."""
    return open_storage(folder if name == "disk" else f"{name}:")


class FailingStorage:
    """A real storage whose transactions fail, as on a full disk, when they write a
    record whose key starts with ``failing`` (None: never)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.failing: str | None = None

    @property
    def location(self) -> str:
        return self.inner.location

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.inner.get_many(keys)

    def has(self, key: str) -> bool:
        return self.inner.has(key)

    def keys_after(self, prefix: str, after: str, limit: int) -> list[str]:
        return self.inner.keys_after(prefix, after, limit)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.inner.transaction() as tx:
            yield _Failing(tx, self)

    def purge(self) -> bool:
        return self.inner.purge()

    def close(self) -> None:
        self.inner.close()


class _Failing:
    def __init__(self, tx: Transaction, storage: FailingStorage) -> None:
        self._tx = tx
        self._storage = storage

    def _check(self, key: str) -> None:
        failing = self._storage.failing
        if failing is not None and key.startswith(failing):
            raise StorageFull("the disk is full", location=self._storage.location)

    def get(self, key: str) -> bytes | None:
        return self._tx.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self._tx.get_many(keys)

    def has(self, key: str) -> bool:
        return self._tx.has(key)

    def put(self, key: str, value: bytes) -> None:
        self._check(key)
        self._tx.put(key, value)

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        for key, _ in items:
            self._check(key)
        self._tx.put_many(items)

    def add(self, key: str, value: bytes) -> bool:
        self._check(key)
        return self._tx.add(key, value)

    def delete(self, key: str) -> None:
        self._tx.delete(key)


class CountedStorage:
    """A real storage that counts the reads a reader makes of it (``get``, ``get_many``,
    ``has``, ``keys_after``; a transaction's are the writer's): what a read costs in
    round trips to the backend, whatever the number of records each returns; and in
    ``records``, the records those reads asked for (the keys ``keys_after`` found), by
    kind (``crdt.log.records``: ``h`` a session's header, ``f`` its forget records)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.reads = 0
        self.records: Counter[str] = Counter()

    def _count(self, keys: Iterable[str]) -> None:
        self.reads += 1
        self.records.update(key.split(SEP, 1)[0] for key in keys)

    @property
    def location(self) -> str:
        return self.inner.location

    def get(self, key: str) -> bytes | None:
        self._count([key])
        return self.inner.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self._count(keys)
        return self.inner.get_many(keys)

    def has(self, key: str) -> bool:
        self._count([key])
        return self.inner.has(key)

    def keys_after(self, prefix: str, after: str, limit: int) -> list[str]:
        found = self.inner.keys_after(prefix, after, limit)
        self._count(found)
        return found

    def transaction(self) -> AbstractContextManager[Transaction]:
        return self.inner.transaction()

    def purge(self) -> bool:
        return self.inner.purge()

    def close(self) -> None:
        self.inner.close()


@contextmanager
def tmpfs(mount: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``mount`` (made here) with mount ``options`` (``size=1m``,
    ``nr_inodes=64``) for a test that fills a disk; it needs root, as CI runs. Where it
    cannot be mounted the test is skipped, and failed in CI, where it must run."""
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
