"""Replication between nodes as pure state machines: bytes in, bytes out, ``now`` passed in.

``PeerSync`` runs the anti-entropy protocol with one peer (``sync.peer``); the messages
and their limits are in ``sync.messages``; timing defaults in ``sync.config``. Nothing
here does I/O: the node's transport moves the bytes and calls ``tick`` at ``wakeup_at``.
"""

from sync.config import SyncConfig, backoff_delay_s
from sync.errors import PeerFault, ProtocolMisuse, SyncError
from sync.messages import (
    BATCH_BYTES_MAX,
    BATCH_EVENTS_MAX,
    MESSAGE_BYTES_MAX,
    ORIGINS_MAX,
    PROTOCOL,
)
from sync.peer import Log, PeerSync

__all__ = [
    "BATCH_BYTES_MAX",
    "BATCH_EVENTS_MAX",
    "MESSAGE_BYTES_MAX",
    "ORIGINS_MAX",
    "PROTOCOL",
    "Log",
    "PeerFault",
    "PeerSync",
    "ProtocolMisuse",
    "SyncConfig",
    "SyncError",
    "backoff_delay_s",
]
