"""The automerge-repo protocol with one client, as a sans-I/O state machine.

A ``RepoConnection`` is one websocket client of the node (an ``@automerge/automerge-repo``
app, a notebook). The node feeds it frames (``receive``), tells it which documents
changed in the log (``refresh``) and the time (``tick``); each call returns an
``Outcome``: frames to send, events to append, notes to log, documents other
connections must hear about, ephemeral messages to pass on, and whether to close.
Nothing here does I/O or reads a clock.
The contract with the host (``Library``, ``Outcome``, the close codes) is
``sync.repo.host``; how a client's changes become events is ``sync.repo.edits``.

What a client may do:

* join once, with protocol version 1, then only speak as the peer that joined;
* ``request``/``sync`` a document by id. Unknown documents get ``doc-unavailable`` and
  are watched: when the session appears, the client is sent it. Sessions its token does
  not allow get ``doc-unavailable`` and nothing more. A document a forget replaced (its
  session now has another id, ``crdt.automerge.layout.document_id``) gets
  ``doc-unavailable`` from then on, and nothing the client sends for it is applied;
* change ``custom_state`` and ``state``: each changed key becomes a ``state_changed``
  event, ``state`` "ended" a ``session_ended`` (reason "client") and "active" a
  ``session_started`` with the session's channel and peer. The node's document then
  follows the log again. Other changes (messages, counts, ids, deleting a key, values
  JSON cannot hold, state "paused", which no event kind sets) are not events: they are
  logged and put back by the node;
* relay another node's changes to the document (a client that synced elsewhere): kept,
  never turned into events. Actor ids prove nothing, so such changes are checked like a
  client's: the messages and root keys they touched are put back, and the other fields
  follow the projection at the next catch-up. Messages written under another node's
  actor that this node does not hold are kept (their events may not have arrived yet).

A host may have a client's changes tried before they are applied (``trials``): the
machine then hands them out as ``Outcome.trial`` (once its own checks passed) and applies
them when the host calls ``resume`` without a refusal. The node tries them on a copy of
the document in a worker process it can kill, so changes that would take too long or
too much memory cost their sender its connection, not the node.

A client is disconnected (with an ``error`` message) for: a frame that is not a valid
message, a wrong senderId or targetId, too many frames per second, more documents than
``documents_max``, changes on a read-only token, changes that unpack past
``unpacked_bytes_max`` or ``unpacked_rows_max`` (deflate bombs, runs of billions of
operations), changes that would grow a document past ``document_bytes_max``, counters,
replacing the document's root maps or session key, a change made with this node's own
actor or the genesis actor (which it never sent).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from crdt.automerge.chunks import UnpackLimits
from crdt.automerge.document import SessionDoc, decode_document_id, new_sync_state
from crdt.automerge.outline import summarize_sync_message
from crdt.automerge.trial import Tried
from crdt.errors import InvalidInput, LimitExceeded, Picklable, StoreError
from crdt.log.forget import UNFORGETTABLE
from sync.errors import PeerFault
from sync.repo.config import Access, RepoLimits
from sync.repo.edits import client_edits, repair
from sync.repo.host import (
    CLOSE_INTERNAL,
    CLOSE_INVALID,
    CLOSE_POLICY,
    CLOSE_PROTOCOL,
    CLOSE_TOO_BIG,
    Close,
    Library,
    Note,
    Outcome,
    Trial,
)
from sync.repo.messages import (
    PROTOCOL_VERSION,
    Ephemeral,
    Frame,
    Join,
    Sync,
    encode_error,
    encode_peer,
    encode_sync,
    encode_unavailable,
    parse_frame,
)


class _Refuse(Picklable):
    """The client's fault: the connection closes with ``code`` and says ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


_OPEN, _WAITING, _DENIED = "open", "waiting", "denied"


@dataclass(slots=True)
class _Doc:
    status: str
    text_id: str
    session_key: str | None = None
    state: Any = None  # automerge sync state, while open
    fresh: bool = True  # nothing said about it yet, either way


class RepoConnection:
    """The protocol with one client. Not thread-safe: the host calls it from one thread
    at a time (the node: its store's writer)."""

    def __init__(self, *, peer_id: str, storage_id: str, access: Access,
                 limits: RepoLimits, now: float, trials: bool = False) -> None:
        self.peer_id = peer_id
        self.storage_id = storage_id
        self.access = access
        self.limits = limits
        self.client: str | None = None  # the client's peer id, once it joined
        self.closed = False
        self._join_by = now + limits.join_s
        self._tokens = float(limits.frames_burst)
        self._tokens_at = now
        self._ephemeral_budget = float(limits.ephemeral_bytes_burst)
        self._ephemeral_at = now
        self._ephemeral_dropping = False
        self._docs: dict[bytes, _Doc] = {}
        #: Whether changes go to the host as a ``Trial`` before they are applied.
        self.trials = trials
        self._pending: tuple[_Doc, Sync] | None = None

    @property
    def wakeup_at(self) -> float | None:
        """When ``tick`` must be called next (the join deadline), if ever."""
        return None if self.client is not None or self.closed else self._join_by

    def tick(self, now: float) -> Outcome:
        out = Outcome()
        if not self.closed and self.client is None and now >= self._join_by:
            self._close(out, CLOSE_PROTOCOL, f"no join message within {self.limits.join_s} s")
        return out

    def refuse(self, code: int, reason: str) -> Outcome:
        """Close for a fault the host found (a text frame, a frame over the limit)."""
        out = Outcome()
        if not self.closed:
            self._close(out, code, reason)
        return out

    def receive(self, frame: bytes, now: float, library: Library) -> Outcome:
        """Handle one binary frame from the client."""
        out = Outcome()
        if self.closed:
            return out
        with self._guarded(out):
            self._spend(now)
            message = parse_frame(frame)
            if self.client is None:
                self._join(message, out)
            else:
                self._dispatch(message, now, library, out)
        return out

    def resume(self, refusal: tuple[int, str] | None, library: Library,
               tried: Tried | None = None) -> Outcome:
        """The host tried the changes of ``Outcome.trial``: apply them if ``refusal``
        (a close code and reason) is None, else close with it. With ``tried`` (what the
        trial made of them), the document it made is taken instead of applying them
        again, unless the document changed meanwhile."""
        out = Outcome()
        pending, self._pending = self._pending, None
        if self.closed or pending is None:
            return out
        with self._guarded(out):
            if refusal is not None:
                raise _Refuse(*refusal)
            self._apply(*pending, library, out, tried)
        return out

    @contextmanager
    def _guarded(self, out: Outcome) -> Iterator[None]:
        """Close the connection for the client's faults, and for ours with 1011."""
        try:
            yield
        except _Refuse as refusal:
            self._close(out, refusal.code, refusal.reason)
        except PeerFault as fault:
            self._close(out, CLOSE_INVALID, str(fault))
        except StoreError as error:  # ours, not the client's: say so and let it retry
            out.notes.append(Note("warning", "automerge sync failed", {"error": str(error)}))
            self._close(out, CLOSE_INTERNAL, "the node failed to handle this message")

    def refresh(self, doc_ids: Iterable[bytes], now: float, library: Library) -> Outcome:
        """The node's copies of ``doc_ids`` may have changed, or their sessions appeared:
        send the client what it lacks."""
        out = Outcome()
        if self.closed or self.client is None:
            return out
        for doc_id in doc_ids:
            entry = self._docs.get(doc_id)
            if entry is None or entry.status == _DENIED:
                continue
            try:
                if entry.status == _WAITING and not self._open(doc_id, entry, library, out):
                    continue
                if self._check_replaced(doc_id, entry, library, out):
                    out.frames.append(encode_unavailable(self.peer_id, self.client,
                                                         entry.text_id))
                    continue
                assert entry.session_key is not None
                self._send_sync(entry, library.document(entry.session_key), out)
            except StoreError as error:
                out.notes.append(Note("warning", "automerge refresh failed",
                                      {"session": entry.session_key, "error": str(error)}))
        return out

    # -- the protocol --------------------------------------------------------------

    def _spend(self, now: float) -> None:
        """Token bucket: ``frames_per_s`` sustained, ``frames_burst`` at once."""
        elapsed = max(0.0, now - self._tokens_at)
        self._tokens = min(float(self.limits.frames_burst),
                           self._tokens + elapsed * self.limits.frames_per_s)
        self._tokens_at = now
        if self._tokens < 1.0:
            raise _Refuse(CLOSE_POLICY, f"more than {self.limits.frames_per_s:g} frames per "
                                        "second")
        self._tokens -= 1.0

    def _join(self, message: Frame, out: Outcome) -> None:
        if not isinstance(message, Join):
            raise _Refuse(CLOSE_PROTOCOL, "the first message must be a join")
        if message.versions is not None and PROTOCOL_VERSION not in message.versions:
            self.client = message.sender  # so the error below reaches it
            raise _Refuse(CLOSE_PROTOCOL, "unsupported protocol version")
        self.client = message.sender
        metadata = {"storageId": self.storage_id, "isEphemeral": False}
        out.frames.append(encode_peer(self.peer_id, message.sender, metadata))
        out.notes.append(Note("debug", "automerge client joined", {"peer": message.sender}))

    def _dispatch(self, message: Frame, now: float, library: Library, out: Outcome) -> None:
        if isinstance(message, Join):
            raise _Refuse(CLOSE_PROTOCOL, "joined twice")
        if message.sender != self.client:
            if isinstance(message, Ephemeral):
                # automerge-repo passes each ephemeral message it gets on to its other
                # peers, this node among them, under its first sender's id. The node
                # passed the original on itself: the echo is dropped (passed on, it
                # would let a client speak for another).
                return
            raise _Refuse(CLOSE_POLICY, "senderId is not the peer that joined")
        if message.target != self.peer_id:
            raise _Refuse(CLOSE_PROTOCOL, "targetId is not this node")
        if isinstance(message, Sync):
            self._sync(message, library, out)
        elif isinstance(message, Ephemeral):
            self._ephemeral(message, now, out)
        # doc-unavailable (the client lacks something we never ask for) and remote heads
        # gossip need nothing from us.

    def _ephemeral(self, message: Ephemeral, now: float, out: Outcome) -> None:
        """Pass an ephemeral message on if its document is open and the sender's byte
        budget (a token bucket, like frames) allows it; drop it otherwise."""
        size, limits = len(message.data), self.limits
        if size > limits.ephemeral_bytes_max:
            raise _Refuse(CLOSE_TOO_BIG, f"ephemeral data of {size} bytes; the limit is "
                                         f"{limits.ephemeral_bytes_max}")
        doc_id = decode_document_id(message.document_id)
        entry = self._docs.get(doc_id)
        if entry is None or entry.status != _OPEN:
            return
        elapsed = max(0.0, now - self._ephemeral_at)
        self._ephemeral_at = now
        self._ephemeral_budget = min(float(limits.ephemeral_bytes_burst),
                                     self._ephemeral_budget
                                     + elapsed * limits.ephemeral_bytes_per_s)
        if size > self._ephemeral_budget:
            if not self._ephemeral_dropping:  # once per run of drops, not per message
                out.notes.append(Note("warning", "automerge ephemeral messages dropped", {
                    "peer": self.client, "reason": f"more than "
                    f"{limits.ephemeral_bytes_per_s:g} bytes per second"}))
            self._ephemeral_dropping = True
            return
        self._ephemeral_budget -= size
        self._ephemeral_dropping = False
        out.ephemeral.append((doc_id, message))

    def _entry(self, doc_id: bytes, text_id: str, library: Library, out: Outcome) -> _Doc:
        entry = self._docs.get(doc_id)
        if entry is None:
            if len(self._docs) >= self.limits.documents_max:
                raise _Refuse(CLOSE_POLICY, f"more than {self.limits.documents_max} "
                                            "documents on one connection")
            entry = self._docs[doc_id] = _Doc(_WAITING, text_id)
            out.watch = self._watch()
        if entry.status == _WAITING:
            self._open(doc_id, entry, library, out)
        return entry

    def _open(self, doc_id: bytes, entry: _Doc, library: Library, out: Outcome) -> bool:
        """Open a waiting document if its session exists now and may be seen."""
        session_key = library.resolve(doc_id)
        if session_key is None:
            return False
        entry.session_key = session_key
        if self.access.allows(session_key):
            entry.status, entry.state = _OPEN, new_sync_state()
        else:
            entry.status = _DENIED
            out.notes.append(Note("info", "automerge document refused to token",
                                  {"peer": self.client, "session": session_key}))
        out.watch = self._watch()
        return entry.status == _OPEN

    def _check_replaced(self, doc_id: bytes, entry: _Doc, library: Library,
                        out: Outcome) -> bool:
        """Close an open document that a forget replaced (its id no longer resolves to
        its session): it answers doc-unavailable from now on. True if it just closed."""
        if entry.status != _OPEN or library.resolve(doc_id) == entry.session_key:
            return False
        entry.status, entry.state = _DENIED, None
        out.watch = self._watch()
        out.notes.append(Note("info", "automerge document replaced after a forget",
                              {"peer": self.client, "session": entry.session_key}))
        return True

    def _watch(self) -> dict[bytes, bool]:
        return {doc_id: entry.status == _OPEN for doc_id, entry in self._docs.items()
                if entry.status != _DENIED}

    def _sync(self, message: Sync, library: Library, out: Outcome) -> None:
        doc_id = decode_document_id(message.document_id)
        entry = self._entry(doc_id, message.document_id, library, out)
        self._check_replaced(doc_id, entry, library, out)
        if entry.status != _OPEN:
            assert self.client is not None
            out.frames.append(encode_unavailable(self.peer_id, self.client,
                                                 message.document_id))
            return
        session_key = entry.session_key
        assert session_key is not None
        if self._check_changes(session_key, message.data, library) and self.trials:
            self._pending = (entry, message)
            out.trial = Trial(session_key, library.saved(session_key), message.data,
                              library.document(session_key).generation)
            return
        self._apply(entry, message, library, out)

    def _apply(self, entry: _Doc, message: Sync, library: Library, out: Outcome,
               tried: Tried | None = None) -> None:
        doc_id, session_key = decode_document_id(message.document_id), entry.session_key
        assert session_key is not None
        if self._check_replaced(doc_id, entry, library, out):  # while they were tried
            out.frames.append(encode_unavailable(self.peer_id, self.client or "",
                                                 entry.text_id))
        if entry.status != _OPEN:  # refused to this client while its changes were tried
            return
        doc = library.document(session_key)
        if entry.fresh and tried is None:
            entry.fresh = False
            # A client with nothing gets the whole document, answered once per version.
            if (answer := doc.first_answer(message.data)) is not None:
                self._send(entry, answer, out)
                return
        try:
            received = None if tried is None else doc.receive_tried(
                entry.state, message.data, tried.after, tried.received)
            if received is None:
                received = doc.receive_sync_message(entry.state, message.data)
        except InvalidInput as exc:
            library.discard(session_key)
            raise _Refuse(CLOSE_INVALID, f"sync message refused: {exc.reason}") from None
        if received.refusal is not None:
            library.discard(session_key)
            raise _Refuse(CLOSE_POLICY, f"changes refused: {received.refusal}")
        if received.changes:
            received = received.taken_in(library.holds_node)
            library.record(session_key, received.changes)
            out.changed.add(doc_id)
            repair(self.client, session_key, doc, received, library, out)
            if received.from_client:
                client_edits(self.client, session_key, doc, received, library, out)
            doc = library.document(session_key)  # its catch-up puts back derived fields
        self._send_sync(entry, doc, out)

    def _check_changes(self, session_key: str, data: bytes, library: Library) -> bool:
        """Refuse changes a read-only token sends, to the cluster's own sessions, that
        unpack past the limits, or that grow the document too far, before automerge
        applies them; True if ``data`` carries changes."""
        unpack = UnpackLimits(self.limits.unpacked_bytes_max, self.limits.unpacked_rows_max)
        try:
            summary = summarize_sync_message(data, changes_max=unpack.rows_max)
            if not summary.changes:
                return False
            if self.access.read_only:  # before the costlier checks below
                raise _Refuse(CLOSE_POLICY, "this token is read-only: document changes are "
                                            "refused")
            if session_key in UNFORGETTABLE:
                # The cluster's own sessions (``post_events`` refuses them too): changes
                # saved in their documents could never be forgotten, even put back.
                raise _Refuse(CLOSE_POLICY, f"{session_key} holds the cluster's own records: "
                                            "document changes are refused")
            size = library.stored_bytes(session_key) + summary.change_bytes
            if size > self.limits.document_bytes_max:
                raise _Refuse(CLOSE_TOO_BIG, f"the document would grow to {size} bytes; "
                                             f"the limit is {self.limits.document_bytes_max}")
            summary.unpacked(unpack)
            return True
        except LimitExceeded as exc:
            raise _Refuse(CLOSE_TOO_BIG, exc.reason) from None
        except InvalidInput as exc:
            raise _Refuse(CLOSE_INVALID, exc.reason) from None

    def _send_sync(self, entry: _Doc, doc: SessionDoc, out: Outcome) -> None:
        entry.fresh = False
        data = doc.generate_sync_message(entry.state)
        if data is not None:
            self._send(entry, data, out)

    def _send(self, entry: _Doc, data: bytes, out: Outcome) -> None:
        assert self.client is not None
        if len(data) > self.limits.served_bytes_max:
            self._too_big(entry, len(data), out)
            return
        out.frames.append(encode_sync(self.peer_id, self.client, entry.text_id, data))

    def _too_big(self, entry: _Doc, size: int, out: Outcome) -> None:
        """Refuse a document this client would need a sync message too large for: say
        why, answer doc-unavailable now and later, and keep the connection."""
        assert self.client is not None
        reason = (f"session {entry.session_key!r} is too large to serve: its sync message "
                  f"would be {size} bytes; the limit is {self.limits.served_bytes_max}")
        entry.status = _DENIED
        out.watch = self._watch()
        out.frames.append(encode_error(self.peer_id, self.client, reason))
        out.frames.append(encode_unavailable(self.peer_id, self.client, entry.text_id))
        out.notes.append(Note("warning", "automerge document too large to serve", {
            "peer": self.client, "session": entry.session_key, "bytes": size,
            "limit": self.limits.served_bytes_max}))

    def _close(self, out: Outcome, code: int, reason: str) -> None:
        if self.client is not None:
            out.frames.append(encode_error(self.peer_id, self.client, reason))
        out.close = Close(code, reason)
        out.notes.append(Note("warning", "automerge client disconnected",
                              {"peer": self.client, "code": code, "reason": reason}))
        self.closed = True
