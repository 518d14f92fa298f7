"""The storage interface: keyed records written in transactions.

Everything the log and the Automerge documents keep is a *record*: a text key and a
bytes value. The interface is small on purpose, so that a backend is one module:

* ``Storage.get`` / ``get_many`` / ``has`` read committed records, from any thread;
  ``get_many`` is the range read (the log keeps numbered records, such as the chunks
  of a session or of the position index, and reads runs of them at once);
  ``keys_after`` walks the keys of one kind of record, in key order;
* ``Storage.transaction`` opens the one way to write: a ``Transaction`` whose ``put``,
  ``put_many``, ``add`` (write only if absent) and ``delete`` become visible together
  when the block ends without an exception, and not at all otherwise. Its reads see its
  own writes. ``get_many`` and ``put_many`` let a backend read and write a batch's
  records in one round trip each (the log writes every record of a commit at once).
  Transactions do not nest, and one runs at a time (the log has one writer thread);
* failures of the backend's own machinery (a full disk, a lock held too long, a
  damaged file) are raised as ``crdt.errors.StorageUnavailable`` and its kinds, never
  as the backend library's exceptions, so that callers handle them in one way.

Backends: ``crdt.storage.disk`` (diskcache, the default, durable), ``crdt.storage.memory``
(a dict, for tests and throwaway nodes). ``crdt.storage.backends.open_storage`` picks one
from a location. ``tests/crdt/storage`` is the conformance suite every backend passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol


class Transaction(Protocol):
    """The writes of one transaction, and reads that see them."""

    def get(self, key: str) -> bytes | None:
        """The record's value as this transaction sees it; None if there is none."""

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys`` as this transaction sees them, in their order."""

    def has(self, key: str) -> bool:
        """True if the record exists (as this transaction sees it), without reading it."""

    def put(self, key: str, value: bytes) -> None:
        """Write the record, replacing any value."""

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Write each ``(key, value)`` in order, replacing any value (a later item for
        the same key wins)."""

    def add(self, key: str, value: bytes) -> bool:
        """Write the record only if it does not exist; True if it was written."""

    def delete(self, key: str) -> None:
        """Remove the record if it exists."""


class Storage(Protocol):
    """Keyed records (text key, bytes value) behind transactions."""

    @property
    def location(self) -> str:
        """Where the records live, for messages (a folder, ``memory:``)."""

    def get(self, key: str) -> bytes | None:
        """The committed value of the record; None if there is none."""

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The committed values of ``keys``, in their order (None where missing)."""

    def has(self, key: str) -> bool:
        """True if the record exists, without reading its value."""

    def keys_after(self, prefix: str, after: str, limit: int) -> list[str]:
        """Up to ``limit`` committed keys that start with ``prefix`` and sort after
        ``after`` (``""``: from the first), in key order: a walk over one kind of record
        that reads only those, a page at a time."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A transaction: all of its writes, or none of them (see the module docstring)."""

    def purge(self) -> bool:
        """Make the bytes of records overwritten or deleted so far physically gone from
        wherever the backend keeps them (journals, free pages): called after a forget
        (``crdt.log.erase``). False if it could not finish now (readers held on): the
        caller tries again later."""

    def close(self) -> None:
        """Release the storage; later calls raise ``StoreError``."""
