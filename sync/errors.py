"""Errors of the sync package.

One base class and two kinds below it, because the node must act differently on them:
``PeerFault`` means the other node sent something we refuse (garbage, a forged event, an
oversized batch, another protocol version): drop or penalise that peer, store nothing.
``ProtocolMisuse`` means this node used the state machine wrongly (a bad checkpoint, a
message we built ourselves that breaks a limit): a bug here, never the peer's fault.
"""

from __future__ import annotations

from crdt.errors import Picklable


class SyncError(Picklable):
    """Base of every error raised by ``sync``."""


class PeerFault(SyncError):
    """The peer sent a message we refuse; nothing from that message was stored.

    ``field`` names the offending part as a dotted path (``"items[3].event"``) when one
    part is to blame.

    >>> str(PeerFault("must be an integer", field="hello.protocol"))
    'hello.protocol: must be an integer'

    Both may quote what the peer sent; each is cut to ``FAULT_CHARS_MAX`` characters, as
    a fault is logged and told to the peer (a quoted megabyte would make a log line of
    it, link after link).

    >>> len(str(PeerFault(f"unknown type {'x' * 10**6!r}")))
    256
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = None if field is None else _cut(field)
        self.reason = _cut(message)
        super().__init__(f"{self.field}: {self.reason}" if field else self.reason)


#: Most characters of a ``PeerFault``'s reason, and of its field.
FAULT_CHARS_MAX = 256


def _cut(text: str) -> str:
    return text if len(text) <= FAULT_CHARS_MAX else text[:FAULT_CHARS_MAX - 1] + "…"


class ProtocolMisuse(SyncError):
    """This node called the state machine wrongly; a bug on our side."""
