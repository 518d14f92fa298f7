"""Errors of the crdt package.

One base class, and two families below it: ``InvalidInput`` is the fault of whoever sent
the data (a client or a peer) and maps to a 4xx answer; ``StoreError`` is ours (a closed
store, a broken invariant) and must never be blamed on the caller. Among ours,
``StorageUnavailable`` says the storage cannot serve right now (a full disk, a database
locked past its timeout, a damaged file): nothing was written, and asking again later
may work. ``crdt.storage`` raises it in place of every error of SQLite or diskcache.

Every error here, and those of ``sync`` and ``node`` whose ``__init__`` requires more
than a message, derive from ``Picklable``: they pickle and copy as they are
(tests/test_errors_pickle.py walks the packages for them).
"""

from __future__ import annotations

from typing import Any


def _rebuilt(cls: type[BaseException], args: tuple[Any, ...]) -> BaseException:
    # ``BaseException.__new__`` sets ``args`` and calls no ``__init__``; the attributes
    # come back from the pickled ``__dict__``.
    error: BaseException = cls.__new__(cls, *args)
    return error


class Picklable(Exception):
    """An error that pickles and copies as it is, whatever its ``__init__`` takes.

    An exception pickles and copies as ``cls(*args)``, ``args`` being what it passed
    to ``Exception.__init__`` (its message, mostly): an error whose ``__init__`` takes
    other required arguments fails to come back, and one that builds its message from
    its arguments comes back with another. This one comes back with the same ``args``
    and attributes, without calling ``__init__`` again.

    >>> import copy, pickle
    >>> error = StorageFull("disk full", location="/data/log")
    >>> all(vars(twin) == vars(error) and str(twin) == str(error)
    ...     for twin in (pickle.loads(pickle.dumps(error)), copy.copy(error)))
    True
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt, (type(self), self.args), self.__dict__)


class CrdtError(Picklable):
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


class NotATime(InvalidInput):
    """A timestamp's text is not shaped as an RFC 3339 time at all (rather than a time out
    of range): whoever offers integer milliseconds too can say so."""


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


class NotFound(CrdtError):
    """The asked-for session or event does not exist on this node."""


class CursorChanged(CrdtError):
    """A cursor was to be saved only if it still held what was read of it (its tag,
    ``crdt.log.cursors.cursor_tag``), and it holds something else now, or nothing: the
    reader's and another writer's saves would overwrite each other. Nothing was saved."""


class StoreError(CrdtError):
    """Our own failure or misuse: closed store, corrupted record, broken invariant."""


class LogFormatError(StoreError):
    """The log's meta record is of another format than ``known`` (the one this code
    reads): ``found``, an int if a newer version wrote it, else what the record holds
    (a damaged one). ``damage``, if set, says in words what else is wrong with a record
    that cannot be read (not CBOR, a field missing); ``found`` is then None. ``writer``:
    the software the record says wrote it (``Meta.written_by``), as read from the
    record, unchecked (the node decides what of it to show), if it says so. Nothing
    was written to the log. The node words it for people
    (``node.data_format.log_refusal``): crdt knows no software version.

    >>> str(LogFormatError(None, 1, damage="it is not CBOR"))
    'the log meta record is damaged: it is not CBOR'
    """

    def __init__(self, found: object, known: int, *, damage: str | None = None,
                 writer: str | None = None) -> None:
        self.found = found
        self.known = known
        self.damage = damage
        self.writer = writer
        super().__init__(f"log format {found} is not {known}" if damage is None
                         else f"the log meta record is damaged: {damage}")

    @property
    def newer(self) -> bool:
        """Whether a newer version wrote the log (not a damaged record)."""
        return self.damage is None and isinstance(self.found, int) \
            and not isinstance(self.found, bool) and self.found > self.known


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
