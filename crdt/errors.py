"""Errors of the crdt package.

One base class, and two families below it: ``InvalidInput`` is the fault of whoever sent
the data (a client or a peer) and maps to a 4xx answer; ``StoreError`` is ours (a closed
store, a broken invariant) and must never be blamed on the caller.
"""

from __future__ import annotations


class CrdtError(Exception):
    """Base of every error raised by ``crdt``."""


class InvalidInput(CrdtError):
    """Data from outside is malformed, too large or inconsistent.

    ``field`` names the offending field as a dotted path (``"kind.content"``) when one
    field is to blame, so an error message can point at it.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}" if field else message)


class LimitExceeded(InvalidInput):
    """Input is well-formed but larger or deeper than a documented limit allows."""


class IdMismatch(InvalidInput):
    """An event's claimed id is not the hash of its content."""


class NotFound(CrdtError):
    """The asked-for session or event does not exist on this node."""


class StoreError(CrdtError):
    """Our own failure or misuse: closed store, corrupted record, broken invariant."""
