"""Errors of the crdt package.

One base class, and two families below it: ``InvalidInput`` is the fault of whoever sent
the data (a client or a peer) and maps to a 4xx answer; ``StoreError`` is ours (a closed
store, a broken invariant) and must never be blamed on the caller. Among ours,
``StorageUnavailable`` says the storage cannot serve right now (a full disk, a database
locked past its timeout, a damaged file): nothing was written, and asking again later
may work. ``crdt.storage`` raises it in place of every error of SQLite or diskcache.
"""

from __future__ import annotations

from functools import partial
from typing import Any


class CrdtError(Exception):
    """Base of every error raised by ``crdt``."""


class InvalidInput(CrdtError):
    """Data from outside is malformed, too large or inconsistent.

    ``field`` names the offending field as a dotted path (``"kind.content"``) when one
    field is to blame, so an error message can point at it. ``code`` is the machine-readable
    name an HTTP answer gives it.
    """

    code = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}" if field else message)


class LimitExceeded(InvalidInput):
    """Input is well-formed but larger or deeper than a documented limit allows."""


class IdMismatch(InvalidInput):
    """An event's claimed id is not the hash of its content."""


class TimestampAhead(InvalidInput):
    """An event's timestamp lies further ahead of this node's wall clock than its clock
    allows (``[limits] clock_drift_max_ms``): stored now, it would win every
    last-writer-wins field until that time. Nothing of the request is stored.

    ``bound_ms`` is that bound and ``clock_ms`` the wall clock (ms since the epoch) it was
    held against, so that a sender can tell when the node will take the timestamp (once
    its clock passes the timestamp less the bound) without reading the message.

    >>> error = TimestampAhead("too far ahead", field="timestamp", bound_ms=60_000,
    ...                        clock_ms=1_700_000_000_000)
    >>> error.code, error.bound_ms, error.clock_ms
    ('timestamp_ahead', 60000, 1700000000000)
    >>> import copy, pickle
    >>> all(vars(twin) == vars(error) and str(twin) == str(error)
    ...     for twin in (pickle.loads(pickle.dumps(error)), copy.copy(error)))
    True
    """

    code = "timestamp_ahead"

    def __init__(self, message: str, *, field: str | None = None, bound_ms: int,
                 clock_ms: int) -> None:
        super().__init__(message, field=field)
        self.bound_ms = bound_ms
        self.clock_ms = clock_ms

    def __reduce__(self) -> tuple[Any, ...]:
        # An exception pickles and copies as ``cls(*args)``, args being the message
        # alone: the other errors of InvalidInput round-trip so, this one lacks its
        # required bounds.
        return (partial(type(self), self.reason, field=self.field, bound_ms=self.bound_ms,
                        clock_ms=self.clock_ms), (), self.__dict__)


class NotFound(CrdtError):
    """The asked-for session or event does not exist on this node."""


class StoreError(CrdtError):
    """Our own failure or misuse: closed store, corrupted record, broken invariant."""


class StorageUnavailable(StoreError):
    """The storage cannot serve now; nothing of the failed call was written.

    ``retry_after_s`` is how long a caller should wait before trying again.
    """

    retry_after_s = 5

    def __init__(self, message: str, *, location: str) -> None:
        self.location = location
        super().__init__(f"{message} ({location})")


class StorageFull(StorageUnavailable):
    """The disk (or its quota) is full. Appends work again once space is freed."""

    retry_after_s = 30


class StorageBusy(StorageUnavailable):
    """The database stayed locked longer than its timeout."""

    retry_after_s = 1


class StorageDamaged(StorageUnavailable):
    """The storage failed to read or write (an I/O error, a damaged file)."""

    retry_after_s = 60


class FolderInUse(StoreError):
    """Another process holds the data folder: two nodes on one folder would hand out
    the same positions and sequence numbers."""
