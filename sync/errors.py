"""Errors of the sync package.

One base class and two kinds below it, because the node must act differently on them:
``PeerFault`` means the other node sent something we refuse (garbage, a forged event, an
oversized batch, another protocol version): drop or penalise that peer, store nothing.
``ProtocolMisuse`` means this node used the state machine wrongly (a bad checkpoint, a
message we built ourselves that breaks a limit): a bug here, never the peer's fault.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error raised by ``sync``."""


class PeerFault(SyncError):
    """The peer sent a message we refuse; nothing from that message was stored.

    ``field`` names the offending part as a dotted path (``"items[3].event"``) when one
    part is to blame.

    >>> str(PeerFault("must be an integer", field="hello.protocol"))
    'hello.protocol: must be an integer'
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}" if field else message)


class ProtocolMisuse(SyncError):
    """This node called the state machine wrongly; a bug on our side."""
