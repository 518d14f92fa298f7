"""What Automerge clients of a node may do: their tokens (``Access``) and the bounds on
what one of them can make the node hold or do (``RepoLimits``), together a node's
``RepoConfig``. Read by ``sync.repo.connection`` and by the node's configuration."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class RepoLimits:
    """Bounds on what one client can make the node hold or do. Each is a trade-off:

    * ``frame_bytes_max`` (16 MiB): largest frame accepted. A client's own edits are
      small; a client relaying another node's copy of a long session sends it whole.
    * ``document_bytes_max`` (64 MiB): a document's stored size (snapshot plus
      increments) past which clients' changes are refused. It counts compressed bytes,
      so a document can be served to a client only far below it (see the next limit).
    * ``served_bytes_max`` (64 MiB): the largest sync message the node sends; a
      client's first sync of a document carries all of it (as changes, often ten or
      more times the stored size: about 300 bytes per short message). A document that
      does not fit is refused to that client (an ``error`` message saying so, then
      doc-unavailable, logged) instead of being sent and dropping the client over and
      over. Must not exceed ``outbox_bytes_max``, and should stay within it with its
      frame's envelope (``SYNC_ENVELOPE_BYTES_MAX``) and ``ephemeral_outbox_bytes_max``
      added; larger sessions should be split.
    * ``unpacked_bytes_max`` (32 MiB), ``unpacked_rows_max`` (250,000): what the changes
      in one of a client's sync messages may unpack to: bytes once every deflated part
      is inflated and every repeated string copied, and rows of changes and operations
      once every run length is expanded (also the most change entries in a message).
      Automerge unpacks before it checks, so without them a few kilobytes could make
      the node allocate gigabytes; a larger message disconnects its sender. Checking
      takes a few microseconds per row, about a second at the bound, on the store's
      writer; a client's own edits are far below it, and a whole 10,000-message session
      a client sends back (about 90,000 rows and 1.8 MB) takes 0.7 s.
    * ``documents_max`` (256): documents one connection may open or wait for.
    * ``frames_per_s`` (200), ``frames_burst`` (1,000): sustained and burst rate of
      frames; an app opening ``documents_max`` documents at once fits in the burst.
    * ``join_s`` (10 s): time from connecting to the join message.
    * ``ping_interval_s`` (30 s): keepalive pings; a client that misses a pong for half
      of it is disconnected, so dead connections leave within about 45 s.
    * ``documents_idle_s`` (300 s): documents nobody touched for this long leave the
      node's memory (they reload from disk on demand).
    * ``ephemeral_bytes_max`` (64 KiB): largest ``data`` of one ephemeral message
      (presence, cursors); a larger one disconnects its sender. The node copies each
      one to every other client of the document, so it must stay small.
    * ``ephemeral_bytes_per_s`` (64 KiB/s), ``ephemeral_bytes_burst`` (256 KiB): the
      ephemeral data one client may have passed on, sustained and at once; beyond it
      its ephemeral messages are dropped (and logged), not passed on.
    * ``outbox_frames_max`` (256), ``outbox_bytes_max`` (128 MiB): frames, and their
      bytes, waiting to be sent to one client before it counts as too slow and is
      dropped. Sync messages are generated when a client is refreshed, not queued per
      event, so an honest client rarely has more than a few waiting; the bytes allow the
      largest sync message the node sends (``served_bytes_max``) with room to spare.
    * ``ephemeral_outbox_frames_max`` (32), ``ephemeral_outbox_bytes_max`` (1 MiB):
      frames, and their bytes, waiting for a client above which other clients'
      ephemeral messages are dropped for it instead of queued: they are best effort, and
      queued they would let one client's chatter get a slow but honest one dropped. Below
      the outbox limits, so that a sync frame of up to ``served_bytes_max`` still fits
      behind as many as may wait.
    * ``send_timeout_s`` (30 s): time to hand one frame to a client before it counts as
      stalled and is dropped. Longer spares clients on bad networks; shorter frees a
      dead client's memory sooner.
    * ``sweep_interval_s`` (60 s): how often documents idle for ``documents_idle_s``
      are looked for. Shorter frees memory sooner at the cost of a scan of every
      document in memory.
    * ``follow_retry_s`` (1 s): pause before following the log again after an
      unexpected failure, so that a broken disk does not make the follower spin.
    * ``workers`` (2), ``worker_time_s`` (10 s), ``worker_memory_bytes`` (1,024 MiB): a
      client's changes are first applied to a copy of the document in one of
      ``workers`` processes; changes that take longer than ``worker_time_s`` there, or
      more address space than ``worker_memory_bytes``, or crash it, disconnect their
      sender (1008; 1011 for a crash) and never reach the node's document. For changes
      that pass, the node takes the document the worker made; it applies them itself
      (for about as long) only if its document changed meanwhile. A client relaying a
      whole 10,000-message session written by another node takes about 5 s on a busy
      two-core machine; more workers let more clients' edits be tried at once.
    """

    frame_bytes_max: int = 16 * 1024 * 1024
    document_bytes_max: int = 64 * 1024 * 1024
    served_bytes_max: int = 64 * 1024 * 1024
    unpacked_bytes_max: int = 32 * 1024 * 1024
    unpacked_rows_max: int = 250_000
    documents_max: int = 256
    frames_per_s: float = 200.0
    frames_burst: int = 1000
    join_s: float = 10.0
    ping_interval_s: float = 30.0
    documents_idle_s: float = 300.0
    ephemeral_bytes_max: int = 64 * 1024
    ephemeral_bytes_per_s: float = 64 * 1024
    ephemeral_bytes_burst: int = 256 * 1024
    outbox_frames_max: int = 256
    outbox_bytes_max: int = 128 * 1024 * 1024
    ephemeral_outbox_frames_max: int = 32
    ephemeral_outbox_bytes_max: int = 1024 * 1024
    send_timeout_s: float = 30.0
    sweep_interval_s: float = 60.0
    follow_retry_s: float = 1.0
    workers: int = 2
    worker_time_s: float = 10.0
    worker_memory_bytes: int = 1024 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Access:
    """What a token may open: sessions matching any of ``sessions`` (``fnmatch``
    patterns, ``*`` for any text; None: every session), and whether it may change them.

    >>> Access(sessions=("tg:*",), read_only=True).allows("tg:alice")
    True
    >>> Access(sessions=("tg:*",)).allows("web:bob")
    False
    """

    sessions: tuple[str, ...] | None = None
    read_only: bool = False

    def allows(self, session_key: str) -> bool:
        if self.sessions is None:
            return True
        return any(fnmatch.fnmatchcase(session_key, pattern) for pattern in self.sessions)


FULL_ACCESS = Access()


def parse_tokens(raw: object) -> dict[str, Access]:
    """A token table from its JSON form; ``ValueError`` naming what is wrong.

        {"<token>": {"sessions": ["tg:*", "web:bob"], "read_only": true}, ...}

    >>> parse_tokens({"app-token-1": {"sessions": ["a*"]}})
    {'app-token-1': Access(sessions=('a*',), read_only=False)}
    """
    if not isinstance(raw, dict):
        raise ValueError("the token table must be a JSON object of token: access")
    table = {}
    for number, (token, spec) in enumerate(raw.items(), 1):
        # An entry is named by its place in the table: its token is a secret.
        entry = f"token {number} of the table"
        if not isinstance(token, str) or len(token) < 8:
            raise ValueError(f"{entry}: a token must be a string of at least 8 characters")
        if token != token.strip():  # as the node's own token (node.checks.check_token)
            raise ValueError(f"{entry}: its token begins or ends with white space, which "
                             "HTTP takes off an Authorization header: no request could "
                             "match it there")
        if not isinstance(spec, dict) or set(spec) - {"sessions", "read_only"}:
            raise ValueError(f"{entry}: give an object with 'sessions' and "
                             "optionally 'read_only'")
        sessions = spec.get("sessions")
        if sessions is not None and (not isinstance(sessions, list) or not all(
                isinstance(pattern, str) and pattern for pattern in sessions)):
            raise ValueError(f"{entry}: 'sessions' must be a list of patterns")
        read_only = spec.get("read_only", False)
        if not isinstance(read_only, bool):
            raise ValueError(f"{entry}: 'read_only' must be true or false")
        table[token] = Access(None if sessions is None else tuple(sessions), read_only)
    return table


@dataclass(frozen=True, slots=True)
class RepoConfig:
    """Automerge clients of a node: tokens beside the node's own and the limits."""

    #: Tokens and what each may open. The node's ``--token`` (or none, on loopback)
    #: opens every session read-write.
    tokens: Mapping[str, Access] = field(default_factory=lambda: MappingProxyType({}))
    limits: RepoLimits = RepoLimits()
