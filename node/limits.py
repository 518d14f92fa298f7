"""The limits of a node and of its clients: every bound a setting can change, its default
and the trade-off behind the default. ``Limits`` is the client API's and the store's,
``ClientLimits`` the client side's; with ``sync.peer.config.SyncConfig`` (peer links) and
``sync.repo.config.RepoLimits`` (Automerge clients) they are the tables of the ``--config``
file (``LIMIT_TABLES``), each read by ``limits_from``. The README's limits table is
checked against these dataclasses by ``tests/node/test_config.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

from crdt.keys import type_name
from node.text import as_written, did_you_mean
from sync.errors import SyncError
from sync.peer.config import SyncConfig
from sync.repo.config import RepoLimits
from sync.repo.messages import SYNC_ENVELOPE_BYTES_MAX

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on everything a client can make the node hold or do. Each is a trade-off
    between what an honest client may need and what a hostile one can cost us."""

    #: Largest request body, counted as it streams in. Fits a batch of 1,000 typical
    #: events; larger imports are split into several requests.
    body_bytes_max: int = 4 * 1024 * 1024
    #: Most events in one append request. One request is one commit: bounding it bounds
    #: how long other writers wait behind it.
    batch_events_max: int = 1000
    #: Largest page of events or sessions a read returns (``limit=``).
    page_max: int = 1000
    #: Page size when ``limit=`` is not given.
    page_default: int = 100
    #: Most simultaneous client connections; more wait in the kernel's accept queue (or
    #: take the place of the oldest connection that has not sent its first headers).
    connections_max: int = 1024
    #: Most simultaneous connections from one client address (an IPv6 client's /64).
    #: Beyond, a new one replaces the address's oldest connection that has not sent its
    #: first request's headers yet, or else is closed. A quarter of ``connections_max``, so
    #: that one address (every local client shares 127.0.0.1) cannot take every slot,
    #: while a machine's own apps and peers still have plenty.
    connections_per_address_max: int = 256
    #: Seconds a new connection may stay silent before its first byte; then it is closed.
    #: Honest clients send their request at once; an idle socket only holds a slot.
    first_byte_timeout_s: float = 5.0
    #: Seconds a new connection gets to complete its first request's headers (later
    #: requests on it are timed by ``read_timeout_s``).
    headers_timeout_s: float = 10.0
    #: Seconds to receive a request's headers and body before the connection is dropped,
    #: so slow-loris clients cannot hold connections forever.
    read_timeout_s: float = 30.0
    #: Longest a long-poll or live stream waits for news before answering empty (seconds).
    poll_wait_max_s: float = 60.0
    #: Most events grouped into one commit by the writer (group commit). Larger amortises
    #: the fsync better; smaller keeps each acknowledgement's latency low.
    commit_events_max: int = 4096
    #: Most events waiting for a commit; more are refused with 503 and Retry-After
    #: rather than held in memory while the disk falls behind.
    queue_events_max: int = 65_536
    #: Automerge documents kept in memory; the least recently used beyond this are dropped
    #: (they reload from their snapshot on demand).
    documents_in_memory_max: int = 64
    #: Threads serving reads. Reads are short SQLite queries: a few threads keep one slow
    #: read (a big projection) from holding up the others; more mostly contend for the GIL.
    read_threads: int = 4
    #: How far ahead of this node's wall clock a timestamp may be (milliseconds). Beyond
    #: it a client's event is refused (400 ``timestamp_ahead``) and a peer's waits until
    #: this clock has caught up; this node's own clock follows timestamps at most this far
    #: and, once it leads the wall clock by more (a fast clock put right), starts again
    #: from the wall clock. Larger tolerates worse-synchronised devices; smaller limits how
    #: long one fast clock's events win last-writer-wins fields over everyone's.
    clock_drift_max_ms: int = 60_000
    #: Seconds between keepalive comments on an idle live stream. Proxies and load
    #: balancers commonly drop connections idle for 30-60 s; 15 s stays well under that.
    sse_keepalive_s: float = 15.0
    #: Most live streams (server-sent events) open at once, and from one client address;
    #: beyond, 503 or 429 with ``Retry-After``. Streams last for hours, so without a cap
    #: they would take every connection slot.
    streams_max: int = 256
    streams_per_address_max: int = 32
    #: Seconds a live stream may wait for a reader who does not read (its send buffer
    #: full) before it is dropped; the reader resumes with ``Last-Event-ID``.
    stream_send_timeout_s: float = 30.0
    #: Encoded bytes after which a page of events ends (the next cursor continues), so a
    #: page of large events costs bounded memory: a page holds ``page_max`` events or
    #: this many bytes plus one event, whichever comes first.
    page_bytes_max: int = 1024 * 1024
    #: The same for one write of a live stream: what a stalled reader makes the node
    #: hold (this plus one event) until ``stream_send_timeout_s`` drops it. Smaller,
    #: since there may be ``streams_max`` of them.
    stream_write_bytes_max: int = 256 * 1024
    #: Seconds requests in flight get to finish when the node stops (long polls and
    #: streams end at once). Longer lets slow appends finish; shorter stops sooner.
    shutdown_timeout_s: float = 10.0
    #: Seconds a refused body that is still arriving is read and discarded, so that the
    #: client reads the 413/408 instead of a reset. A client can keep the connection busy
    #: that long, so it is short; ``read_timeout_s`` if that is shorter.
    linger_s: float = 1.0
    #: Requests refused by the HTTP parser itself (a malformed request line or header)
    #: that are logged, one short line each, per ``refused_log_interval_s``; the others
    #: are counted, and the count is logged with the next line. Anyone can send garbage
    #: at no cost: this bounds what it writes to the log.
    refused_log_lines_max: int = 10
    refused_log_interval_s: float = 60.0
    #: Bytes of log lines waiting for the writer thread that writes them to stderr
    #: (``node.log_stream.LogStream``); beyond, a line is dropped and counted (``would_block``;
    #: a longer line is queued when none waits). A stderr whose reader stalled keeps
    #: them all: this bounds what it costs. A healthy reader falls behind too, for a
    #: moment: a burst logged in one step of the event loop is queued before the writer
    #: thread gets its turn. 4 MiB holds about 20,000 console lines, 10,000 JSON ones.
    log_queued_bytes_max: int = 4 * 1024 * 1024
    #: Seconds a client gets to complete the TLS handshake before its connection closes.
    tls_handshake_timeout_s: float = 10.0
    #: Seconds between two looks at the TLS files (``--tls-cert``, ``--tls-key``,
    #: ``--tls-ca``): changed ones are loaded for new connections without a restart, a
    #: CA taken out ending the peer links made under it (``node.peers.tls_renewal``).
    #: A look is three ``stat`` calls; a renewal made days before the old certificate
    #: expires is served within a minute.
    tls_files_check_interval_s: float = 60.0
    #: Seconds TLS files that cannot be used are given to settle before the node warns of
    #: them (looked at again then, or at the interval above if shorter): a renewal
    #: writes the certificate, then the key, and a look between the two finds them
    #: mismatched. Longer hides a broken file's warning that much longer (the files in
    #: use stay in use either way).
    tls_files_settle_s: float = 5.0
    #: Connections the kernel queues while every one of ``connections_max`` is taken.
    accept_backlog: int = 128
    #: Seconds to wait before accepting again after the process ran out of file
    #: descriptors (accepting at once would spin).
    accept_retry_s: float = 0.1


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """The side of the HTTP client and the projection follower (``node.client``), used by
    the ``clawsync`` commands and by apps. Each a trade-off between waiting for a slow
    node and telling a person soon that something is wrong."""

    #: Seconds to open a connection. Loopback and LAN nodes answer in milliseconds; a
    #: longer wait only delays the "cannot reach the node" message.
    connect_timeout_s: float = 5.0
    #: Seconds for a whole ordinary request. Appends wait for a disk commit; 30 s leaves
    #: room for a slow disk without leaving a person staring at a hung command.
    request_timeout_s: float = 30.0
    #: Seconds of silence after which a live stream is taken as dead and reopened. The node
    #: sends a keepalive every ``sse_keepalive_s``, so this only fires when a connection
    #: died without closing.
    stream_idle_s: float = 90.0
    #: First and longest pause between reconnections of a live stream (doubling): finds
    #: a restarted node quickly without hammering one that is down.
    reconnect_delay_min_s: float = 0.2
    reconnect_delay_max_s: float = 5.0
    #: Events and bytes per request when ``clawsync append --file`` imports: within the
    #: node's default ``batch_events_max`` and ``body_bytes_max``, with room for JSON.
    import_batch_events_max: int = 1000
    import_batch_bytes_max: int = 3 * 1024 * 1024
    #: Seconds before the projection follower reconnects, doubled per failure up to the
    #: maximum.
    subscribe_retry_base_s: float = 0.5
    subscribe_retry_max_s: float = 30.0
    #: Largest frame the projection follower accepts: the node's default
    #: ``served_bytes_max`` and the frame around it.
    subscribe_frame_bytes_max: int = RepoLimits().served_bytes_max + 64 * 1024
    #: Largest body of one answer the client reads; past it the node is said to send
    #: more than a node does (an endless body would fill this machine's memory). A page
    #: is the node's ``page_bytes_max`` plus one event (within ``body_bytes_max``): 64
    #: MiB holds it. A session's projection is bounded by nothing the node sets (its JSON
    #: may be six times its text, the text far more than its compressed Automerge
    #: document): ``Client`` refuses one past this. ``node.client.subscribe`` takes the
    #: document's name from the answer's header and reads no body; only an older node's
    #: answer (no header), or one whose header names no valid document (mangled on the
    #: way), past this is followed under the document its key names.
    answer_bytes_max: int = RepoLimits().served_bytes_max + 64 * 1024
    #: Largest message of the live stream (one event: within the node's
    #: ``body_bytes_max``, with room for its JSON around it); past it the stream ends
    #: with an error instead of gathering it.
    stream_message_bytes_max: int = Limits().body_bytes_max + 64 * 1024

    def __post_init__(self) -> None:
        """``ValueError`` for a value of the wrong type or out of range, as a config
        file's would be (``_wrong_value``: a pause of 0 s is a loop that reconnects
        without one), or a pair out of order (``ORDERED``). No flag, variable or file
        sets these: an app that builds them hears of it at once, not as pauses that
        never come or never grow, nor as a ``TypeError`` deep in a request."""
        for field in fields(self):
            value = getattr(self, field.name)
            whole = isinstance(field.default, int)
            if (wrong := _wrong_value(field.name, value, whole)) is not None:
                raise ValueError(f"ClientLimits: {field.name} {wrong}")
        _refuse_disorder(ClientLimits, _values(self), "", None, said_in="ClientLimits: ")


#: Tables of a ``--config`` file that set limits, and what each fills.
LIMIT_TABLES: dict[str, type[DataclassInstance]] = {
    "limits": Limits, "automerge_limits": RepoLimits, "sync": SyncConfig}
_L = TypeVar("_L", bound="DataclassInstance")
#: Largest value a limit may be set to: beyond it, arithmetic with floats is inexact.
NUMBER_MAX = 2**53


#: Settings that count threads, processes or queued connections the node makes at start:
#: a huge value is no bound but a crash (``listen`` takes a C int) or a start that eats
#: the memory (a queue slot per worker). Far above any use on one machine.
COUNTS_MAX = {"accept_backlog": 65535, "read_threads": 256, "workers": 256}
#: Largest number of seconds a setting (a name ending in ``_s``, not a rate ``_per_s``)
#: may give: about 115 days, far above any use. Beyond some 9e9 s a timeout overflows
#: the C clocks that wait for it (``poll``, ``sleep``): a crash, not a bound.
SECONDS_MAX = 10_000_000


def _high(name: str) -> int:
    """The largest value setting ``name`` may take."""
    seconds = name.endswith("_s") and not name.endswith("_per_s")
    return COUNTS_MAX.get(name, SECONDS_MAX if seconds else NUMBER_MAX)


def _out_of_range(name: str, value: float) -> str | None:
    """What is wrong with ``value`` for setting ``name`` (every one is positive, and at
    most ``_high``), to follow the setting's name; None if nothing.

    >>> _out_of_range("reconnect_delay_min_s", 0), _out_of_range("page_max", 100)
    ('must be positive and at most 10000000, not 0', None)
    """
    high = _high(name)  # nan is refused too (no comparison holds), and inf is above
    return None if 0 < value <= high else f"must be positive and at most {high}, not {value}"


def _wrong_value(name: str, value: Any, whole: bool, in_file: bool = False) -> str | None:
    """What is wrong with ``value`` for setting ``name``, to follow the setting's name:
    not a whole number (``whole``: the setting counts) or not a number (a bool is
    neither, though Python takes it for an int), or out of range (``_out_of_range``);
    None if nothing. ``in_file``: a ``--config`` table's value, shown with its type as
    the file wrote it (``as_written``: ``true``, not Python's ``True``).

    >>> _wrong_value("page_max", 0.5, True), _wrong_value("connect_timeout_s", None, False)
    ('must be a whole number, not 0.5', 'must be a number, not None')
    >>> _wrong_value("page_max", True, True, in_file=True)
    'must be a whole number, not boolean true'
    """
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        shown = f"{type_name(value)} {as_written(value)}" if in_file else repr(value)
        return f"must be {'a whole number' if whole else 'a number'}, not {shown}"
    return _out_of_range(name, value)


@dataclass(frozen=True, slots=True)
class Order:
    """Two limits of one table in order: ``low`` at most ``high`` (below it, if
    ``strict``); ``plus`` (more limits of the table) and ``room`` (bytes) are added to
    ``low`` first. ``why`` says what goes wrong otherwise, for people."""

    low: str
    high: str
    why: str
    strict: bool = False
    plus: tuple[str, ...] = ()
    room: int = 0

    def total(self, values: Mapping[str, Any]) -> Any:
        """What must stay at most (below) ``high``."""
        return values[self.low] + sum(values[name] for name in self.plus) + self.room

    def broken(self, values: Mapping[str, Any]) -> bool:
        """Whether ``values`` (a table's, by setting) break this order."""
        low, high = self.total(values), values[self.high]
        return bool(low >= high if self.strict else low > high)


#: Limits of a table that only work in order: out of it, a setting would promise what
#: the node cannot keep, and the node refuses to start (``check_order``); a
#: ``ClientLimits`` out of order is refused when built (its ``__post_init__``).
ORDERED: dict[type, tuple[Order, ...]] = {
    Limits: (
        # The page size of a read that gives no limit= is not checked against the
        # largest: reads would get pages past page_max.
        Order("page_default", "page_max", "a read without limit= would get pages larger "
              "than page_max allows"),
        # A request is queued whole or refused: one of batch_events_max events could
        # never be queued, and would be refused (503, "try again") at every try.
        Order("batch_events_max", "queue_events_max", "a full batch could never be "
              "queued, and would be refused (503) at every try"),
        # The headers' deadline counts from the connection's start: a connection whose
        # first byte came later than it would be closed as that byte arrives.
        Order("first_byte_timeout_s", "headers_timeout_s", "a client whose first byte "
              "came after headers_timeout_s would be waited for, then closed at once")),
    RepoLimits: (
        # A client's first sync of a document up to served_bytes_max is one message:
        # past the outbox it drops the client as too slow, at every try.
        Order("served_bytes_max", "outbox_bytes_max", "a document's first sync would "
              "drop its client as too slow, at every try"),),
    SyncConfig: (
        # Also checked by SyncConfig itself; here so that the error says where each came
        # from. Both are capped with min(): out of order, the cap is every delay.
        Order("backoff_base_s", "backoff_max_s", "every retry delay would be "
              "backoff_max_s: no back-off"),
        Order("forgotten_hold_s", "forgotten_hold_max_s", "every hold-off would be "
              "forgotten_hold_max_s: none would grow")),
    ClientLimits: (
        # Each pause is capped with min(): out of order, the cap is every pause.
        Order("reconnect_delay_min_s", "reconnect_delay_max_s", "a live stream's first "
              "reconnection would wait longer than every later one"),
        Order("subscribe_retry_base_s", "subscribe_retry_max_s", "every reconnection of "
              "the projection follower would wait subscribe_retry_max_s: no back-off"))}

#: Limits of a table that risk dropping a client out of order, but that files did not
#: have to keep in order before: the node starts and logs a warning (``out_of_order``).
RISKY: dict[type, tuple[Order, ...]] = {
    RepoLimits: (
        # A client's outbox must hold as much ephemeral data as may wait for it and then
        # a sync frame (node.automerge.connection: post drops the client at
        # outbox_frames_max frames, post_ephemeral stops at the ephemeral limit).
        Order("ephemeral_outbox_frames_max", "outbox_frames_max", "presence messages "
              "alone can fill a client's outbox and get it dropped as too slow at its next "
              "sync message", True),
        # Also covers served_bytes_max plus its frame's envelope alone above the outbox.
        Order("served_bytes_max", "outbox_bytes_max", "a document's first sync, in its "
              "frame, behind as much ephemeral data as may wait, can overflow a client's "
              "outbox and get it dropped as too slow",
              plus=("ephemeral_outbox_bytes_max",), room=SYNC_ENVELOPE_BYTES_MAX))}

#: Limits of a table that are pointless out of order, but harmless: the node starts and
#: logs a warning (``out_of_order``), since the second limit then does the first's work
#: (a person may lower one of a pair and forget the other; a start is no place to fail
#: for that).
POINTLESS: dict[type, tuple[Order, ...]] = {
    Limits: (
        # Streams and connections still stop at the whole: one address may take them all.
        Order("connections_per_address_max", "connections_max", "one address may take "
              "every connection"),
        Order("streams_per_address_max", "streams_max", "one address may take every "
              "stream"),
        # No more can wait than the queue holds: commits stop at queue_events_max.
        Order("commit_events_max", "queue_events_max", "no commit can be larger than "
              "queue_events_max"),
        # One request is never split: a full batch is one commit past commit_events_max.
        Order("batch_events_max", "commit_events_max", "one request's commit may be "
              "larger than commit_events_max")),
    RepoLimits: (
        # Data above the burst never fits the token bucket: it is dropped, not passed on.
        Order("ephemeral_bytes_max", "ephemeral_bytes_burst", "ephemeral data above "
              "ephemeral_bytes_burst is always dropped"),
        # The frame around it is refused first.
        Order("ephemeral_bytes_max", "frame_bytes_max", "frame_bytes_max refuses such "
              "data first"),
        # Data above it is refused even into an empty outbox: never passed on.
        Order("ephemeral_bytes_max", "ephemeral_outbox_bytes_max", "ephemeral data above "
              "ephemeral_outbox_bytes_max is never passed on"))}


def _said(order: Order, values: Mapping[str, Any], where: str,
          keys: Mapping[str, str] | None) -> str:
    """``order`` broken, for people: each limit as the table wrote it, its value, and,
    when ``keys`` (the table's keys by setting) is known, whether the file gave it; then
    what goes wrong, and which setting to change, to what."""
    def number(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)  # as a person writes it: 60, not 60.0 nor 6e+01
        return value

    def key(name: str) -> str:  # ``where`` empty: limits of no table (``ClientLimits``)
        shown = name if keys is None else keys.get(name, name)
        return f"[{where}] {shown}" if where else shown

    def named(name: str) -> str:
        if keys is None:
            return f"{key(name)} ({number(values[name])})"
        source = "from the file" if name in keys else "the default"
        return f"{key(name)} ({number(values[name])}, {source})"
    relation = "is not below" if order.strict else "is above"
    high, total = number(values[order.high]), number(order.total(values))
    if not order.plus and not order.room:
        low = number(values[order.low])
        if order.strict and high <= 1:  # nothing positive is below it
            fix = f"set {key(order.high)} above {low}"
        elif order.strict:
            fix = f"set {key(order.low)} below {high}, or {key(order.high)} above {low}"
        else:
            fix = (f"set {key(order.low)} to at most {high}, or {key(order.high)} to at "
                   f"least {low}")
        return f"{named(order.low)} {relation} {named(order.high)}: {order.why}; {fix}"
    summed = " + ".join(named(name) for name in (order.low, *order.plus))
    if order.room:
        summed += f" + {order.room} bytes around a sync frame"
    # Each is enough alone: the high limit to the total, or one summed limit to what the
    # others leave of the high one (if anything), everything else as it stands.
    fixes = [f"{key(order.high)} {'above' if order.strict else 'to at least'} {total}"]
    for name in (order.low, *order.plus):
        left = number(values[order.high] - (order.total(values) - values[name]))
        if left >= (2 if order.strict else 1):  # a positive value fits
            fixes.append(f"{key(name)} {'below' if order.strict else 'to at most'} {left}")
    fix = "set " + ", or ".join(fixes)
    return f"{summed} {relation} {named(order.high)}: {order.why}; {fix}"


def check_order(limits: DataclassInstance, where: str,
                keys: Mapping[str, str] | None = None) -> None:
    """``ValueError`` when two limits of the table ``where`` are out of order
    (``ORDERED``). ``keys``: the table's keys by the setting each gave (``page-max``),
    when the limits were read from a file; each limit is then named as written, and said
    to be from the file or the default.

    >>> check_order(Limits(page_default=500, page_max=100), "limits",
    ...             {"page_default": "page-default"})  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ValueError: [limits] page-default (500, from the file) is above [limits] page_max (100, the
    default): a read without limit= would get pages larger than page_max allows; set [limits]
    page-default to at most 100, or [limits] page_max to at least 500
    """
    _refuse_disorder(type(limits), _values(limits), where, keys)


def _refuse_disorder(kind: type, values: Mapping[str, Any], where: str,
                     keys: Mapping[str, str] | None, said_in: str = "") -> None:
    """``ValueError`` for the first pair of ``kind`` out of order (``ORDERED``), its
    words (``_said``) after ``said_in`` (what the limits are, if no table)."""
    for order in ORDERED.get(kind, ()):
        if order.broken(values):
            raise ValueError(said_in + _said(order, values, where, keys))


def out_of_order(limits: DataclassInstance, where: str,
                 keys: Mapping[str, str] | None = None) -> list[str]:
    """What is risky (``RISKY``) or pointless (``POINTLESS``) in the table ``where``, one
    sentence each, for a warning at start; ``keys`` as for ``check_order``.

    >>> too_many = Limits(streams_per_address_max=500)
    >>> print(*out_of_order(too_many, "limits"))  # doctest: +NORMALIZE_WHITESPACE
    [limits] streams_per_address_max (500) is above [limits] streams_max (256): one address may
    take every stream; set [limits] streams_per_address_max to at most 256, or [limits]
    streams_max to at least 500
    """
    values = _values(limits)
    orders = (*RISKY.get(type(limits), ()), *POINTLESS.get(type(limits), ()))
    return [_said(order, values, where, keys) for order in orders if order.broken(values)]


def _values(limits: DataclassInstance) -> dict[str, Any]:
    """A table's values by setting."""
    return {field.name: getattr(limits, field.name) for field in fields(limits)}


def limits_from(table: Mapping[str, Any], kind: type[_L], where: str) -> _L:
    """``kind``'s defaults with the values of a config file table; ``ValueError`` naming
    the table, the setting (as the table's key wrote it: ``page-max``) and what is wrong
    with it.

    >>> limits_from({"body-bytes-max": 1_000_000}, Limits, "limits").body_bytes_max
    1000000
    >>> limits_from({"page-max": 0}, Limits, "limits")
    Traceback (most recent call last):
    ValueError: [limits] page-max must be positive and at most 9007199254740992, not 0
    >>> limits_from({"inflight-batches-max": 100}, SyncConfig, "sync")
    Traceback (most recent call last):
    ValueError: [sync] inflight-batches-max must be from 1 to 64
    >>> limits_from({"backoff-base-s": 100}, SyncConfig, "sync")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ValueError: [sync] backoff-base-s (100, from the file) is above [sync] backoff_max_s (60, the
    default): every retry delay would be backoff_max_s: no back-off; set [sync] backoff-base-s
    to at most 60, or [sync] backoff_max_s to at least 100
    >>> limits_from({"page-max": 10, "page_max": 20}, Limits, "limits")
    Traceback (most recent call last):
    ValueError: [limits] 'page-max' and 'page_max' are two names of one setting, page_max: give one
    """
    defaults = kind()
    known = {f.name for f in fields(kind)}
    values: dict[str, Any] = {}
    keys: dict[str, str] = {}  # setting -> the table's key that gave it
    for raw_name, value in table.items():
        name = raw_name.replace("-", "_")
        if name in keys:  # TOML keeps page-max and page_max: which was meant is not known
            raise ValueError(f"[{where}] {keys[name]!r} and {raw_name!r} are two names of "
                             f"one setting, {name}: give one")
        keys[name] = raw_name
        if name not in known:
            said = did_you_mean(name, sorted(known)) or f"it has: {', '.join(sorted(known))}"
            raise ValueError(f"[{where}] has no setting {raw_name!r}; {said}")
        whole = isinstance(getattr(defaults, name), int)
        if (wrong := _wrong_value(name, value, whole, in_file=True)) is not None:
            raise ValueError(f"[{where}] {raw_name} {wrong}")
        values[name] = value if whole else float(value)
    values = {**_values(defaults), **values}
    # Before the dataclass's own checks (SyncConfig's), which say less.
    _refuse_disorder(kind, values, where, keys)
    try:
        limits = replace(defaults, **values)
    except SyncError as error:  # a check of the dataclass itself (SyncConfig's)
        # It names settings by their fields' names: each the table gave, as it wrote it.
        said = re.sub(r"[a-z][a-z0-9_]*", lambda word: keys.get(word[0], word[0]), str(error))
        raise ValueError(f"[{where}] {said}") from None
    return limits
