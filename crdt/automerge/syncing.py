"""Syncing session documents with clients (the automerge layer, with ``document``).

``SyncingDoc`` is the sync half of ``document.SessionDoc``: it applies a client's sync
message and says what its changes did (``Received``), which of them are edits to turn
into events (``Edits``), and puts back what a client may not change (``repair``).
``Replica`` is a client's copy of a document (``node.client.subscribe``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from automerge.core import ROOT, Document, Message, ObjType, SyncState, extract

from crdt.automerge import answers
from crdt.automerge.layout import (
    _FOREIGN,
    _LAYOUT_NAMES,
    LAYOUT,
    AutomergeDoc,
    _check_message,
    _message_entry,
    _NotJson,
    _put_message,
    _read_json,
    _replaced_maps,
    _root_map,
    _same,
    _translated,
    genesis_actor,
    is_node_actor,
)
from crdt.automerge.outline import classify_patch, creator_of, summarize_sync_message
from crdt.errors import InvalidInput


def new_sync_state() -> Any:
    """Fresh state for syncing one document with one peer. It cannot be saved: a new
    connection starts a new one, and the protocol recovers what the peers share."""
    return SyncState()


@dataclass(frozen=True, slots=True)
class Received:
    """What one sync message from a client did to the document.

    ``refusal`` says why the new changes must not be kept (a counter, which this binding
    cannot read; a root map or the session key replaced; a change in this node's own or
    the genesis actor's slot, which only a forger can make): the caller must then forget the
    document in memory and reload it from disk. Otherwise ``changes`` (the new changes'
    bytes) must be persisted before anything is built on them.
    """

    before: list[bytes]
    changes: bytes = b""
    from_client: bool = False  # some new change was not written with a node's actor
    fields: frozenset[str] = frozenset()  # root keys whose visible value changed
    messages: frozenset[str] | None = frozenset()  # message keys touched; None: unknown
    refusal: str | None = None
    #: The runs of client changes (None: more than ``CLIENT_RUNS_MAX``, all counted as
    #: the client's): ``taken_in`` leaves out those a node of this cluster holds.
    client_runs: tuple[ClientRun, ...] | None = ()

    @property
    def client_fields(self) -> frozenset[str]:
        """The part of ``fields`` that changes written under client actors changed: what
        a client may be told it edited. A client also relays changes other nodes made,
        which touch derived fields as they follow their logs; those are repaired all the
        same (by ``fields``), but are not the client's edits."""
        if self.client_runs is None:
            return self.fields
        return frozenset().union(*(run.fields for run in self.client_runs)) & self.fields

    @property
    def client_keys(self) -> frozenset[str] | None:
        """The ``custom_state`` keys those client changes touched (None: unknown, any
        key): the only ones ``edits_since`` may read as edits."""
        if self.client_runs is None or any(run.keys is None for run in self.client_runs):
            return None
        return frozenset().union(*(run.keys or () for run in self.client_runs))

    def taken_in(self, holds: Callable[[bytes], bool]) -> Received:
        """This message without the client runs that a change of a node ``holds`` (the
        document actor of a node whose events this node takes) builds on: that node holds
        the run and made its edits events (or refused them), which reach this node by
        gossip; made here too, one edit would be two events. A run that only other
        nodes built on (a removed device, another cluster's node, a forged actor) stays
        the client's, lest its edit be lost: at worst it is an event twice."""
        if not self.client_runs:
            return self
        kept = tuple(run for run in self.client_runs
                     if not any(map(holds, run.built_on_by)))
        return self if len(kept) == len(self.client_runs) \
            else dataclasses.replace(self, client_runs=kept)


@dataclass(frozen=True, slots=True)
class ClientRun:
    """What one run of one client actor's changes in a message did (``_client_runs``)."""

    fields: frozenset[str]  # root keys whose visible value the run changed
    keys: frozenset[str] | None  # the ``custom_state`` keys it touched; None: any
    #: Node actors with a change in the message that builds on the run's last change.
    built_on_by: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class Edits:
    """A client's changes to the editable fields between two versions of a document.

    ``context`` holds the root fields before the change (agent_id, channel, peer_id,
    state): the node's projection values, which the events for the edits build on.
    """

    context: dict[str, Any]
    state: str | None = None  # the new value of the state text, if it changed
    custom_state: dict[str, Any] = dataclasses.field(default_factory=dict)  # key -> new JSON value
    removed: list[str] = dataclasses.field(default_factory=list)  # custom_state keys deleted
    unreadable: dict[str, str] = dataclasses.field(default_factory=dict)  # key -> what it holds


class SyncingDoc(AutomergeDoc):
    """The sync protocol half of ``document.SessionDoc``: receiving a client's changes,
    telling what they did, reading its edits and repairing its message edits."""

    session_key: str
    generation: str | None
    document_id: bytes

    def receive_sync_message(self, state: Any, data: bytes) -> Received:
        """Apply a peer's sync message and say what its changes did.

        ``InvalidInput`` if ``data`` is not a sync message or automerge refuses its
        changes; the document may then be half-changed and is marked unusable (forget it
        and reload). Otherwise see ``Received``.
        """
        if not isinstance(data, bytes):
            raise InvalidInput("sync message must be bytes", field="data")
        with _translated(InvalidInput, "decoding a sync message"):
            message = Message.decode(data)
        with self._automerge("receiving a sync message") as doc:
            before = doc.get_heads()
            try:
                doc.receive_sync_message(state, message)
            except Exception as exc:  # automerge's bare Exception: bad changes
                self._failure = "a refused sync message"
                raise InvalidInput(f"sync message refused by automerge: {exc}",
                                   field="data") from None
            if set(doc.get_heads()) == set(before):
                return Received(before)
            return self._describe(doc, before)

    def first_answer(self, request: bytes) -> bytes | None:
        """The answer to ``request``, a peer's first message for this document, when it
        says the peer has nothing (no heads, needs or changes); None otherwise.

        The answer is made without the caller's sync state, which is left fresh: it
        learns the peer's heads from the peer's reply, as the protocol does after any
        lost message. To a peer that reads v2 messages it is the answer that carries
        the document's save, made once per version of the document (``answers``).
        """
        try:
            summary = summarize_sync_message(request, changes_max=0)
        except InvalidInput:  # changes, or not a sync message: the ordinary path judges it
            return None
        if summary.heads or summary.need:
            return None
        if answers.gets_same_answer(request) is None:
            answers.probe(request)
        if answers.gets_same_answer(request):
            return self.blank_answer()
        with self._automerge("answering a peer with nothing") as doc:
            try:
                data = answers.answer(doc, request)
            except Exception:  # automerge's bare Exception: the ordinary path says why
                return None
        if data is not None:
            answers.learn(request, data == self.blank_answer())
        return data

    def _describe(self, doc: Document, before: list[bytes]) -> Received:
        new = doc.get_changes(before)
        # This node has every change its own actor (and the genesis actor) ever wrote,
        # so a new one in either slot is forged: it would take a sequence number that
        # this node's next change (or every node's genesis) already has.
        ours = (doc.get_actor(), genesis_actor(self.document_id))
        refusal = None
        if any(c.actor_id in ours for c in new):
            refusal = "a change made with this node's actor or the genesis actor"
        # Every change of a document descends from its genesis, the one change without
        # dependencies, which this node has. Another root is another document's history
        # merged in: one that a forget replaced, say, whose changes hold forgotten text.
        if any(not c.deps for c in new):
            refusal = "changes from another document's history"
        from_client = any(not is_node_actor(c.actor_id) for c in new)
        fields: set[str] = set()
        messages: set[str] | None = set()
        for patch in doc.diff(before, doc.get_heads()):
            touch = classify_patch(repr(patch))
            if touch.counter:
                refusal = "counters are not accepted in session documents"
            if touch.field is None:  # unreadable: assume the worst, check everything
                fields.update(name for name, _ in LAYOUT)
                messages = None
                continue
            fields.add(touch.field)
            if touch.field == "messages" and messages is not None:
                if touch.key is None:
                    messages = None
                else:
                    messages.add(touch.key)
        refusal = refusal or self._broken_root(doc, fields)
        runs = _client_runs(doc, before, new) if from_client else []
        return Received(before, b"".join(c.bytes for c in new), from_client,
                        frozenset(fields), None if messages is None else frozenset(messages),
                        refusal, None if runs is None else tuple(runs))

    def _broken_root(self, doc: Document, fields: set[str]) -> str | None:
        """Why the root no longer fits ``update`` and ``load``, if it does not."""
        maps = [name for name in ("messages", "custom_state") if name in fields]
        for name in _replaced_maps(doc, self.session_key, self.generation, maps):
            return f"the root {name!r} map was replaced or deleted"
        if "session_key" in fields:
            got = doc.get(ROOT, "session_key")
            if got is None or got[0] != ObjType.Text or doc.text(got[1]) != self.session_key:
                return "the session_key was changed"
        return None

    def edits_since(self, heads: list[bytes], received: Received | None = None) -> Edits:
        """The changes to ``state`` and ``custom_state`` since ``heads`` (see ``Edits``);
        with ``received``, only those its client changes made (``client_fields``,
        ``client_keys``): a field that only relayed changes of other nodes touched shows
        an event this node may not hold yet, which reaches it by gossip."""
        with self._automerge("reading a client's edits") as doc:
            context = {}
            for name in ("agent_id", "channel", "peer_id", "state"):
                try:
                    context[name] = _read_json(doc, doc.get(ROOT, name, heads), heads)
                except _NotJson:
                    context[name] = None
            edits = Edits(context)
            if received is None or "state" in received.client_fields:
                try:
                    state = _read_json(doc, doc.get(ROOT, "state"), None)
                except _NotJson as exc:
                    edits.unreadable["state"] = exc.what
                else:
                    if not _same(state, context["state"]):
                        edits = Edits(context, state if isinstance(state, str) else None)
                        if not isinstance(state, str):
                            edits.unreadable["state"] = type(state).__name__
            if received is None or "custom_state" in received.client_fields:
                self._custom_edits(doc, heads, edits,
                                   None if received is None else received.client_keys)
            return edits

    def _custom_edits(self, doc: Document, heads: list[bytes], edits: Edits,
                      only: frozenset[str] | None) -> None:
        obj = _root_map(doc, "custom_state")
        then, now = set(doc.keys(obj, heads)), doc.keys(obj)
        edits.removed.extend(sorted(k for k in then - set(now) if only is None or k in only))
        for key in now:
            if only is not None and key not in only:
                continue
            try:
                value = _read_json(doc, doc.get(obj, key), None)
            except _NotJson as exc:
                edits.unreadable[key] = exc.what
                continue
            try:
                old = _read_json(doc, doc.get(obj, key, heads), heads) if key in then else None
            except _NotJson:
                old = _FOREIGN
            if key not in then or not _same(value, old):
                edits.custom_state[key] = value

    def repair(self, messages: Iterable[Mapping[str, Any]],
               keys: Iterable[str] | None) -> bytes:
        """Put the projection's ``messages`` back where a client changed them, and delete
        root keys of its own; return the change bytes (``b""`` if none were needed).

        Each of ``keys`` (every key in the document if None) is rewritten whole when it
        differs from the projection, put back when deleted, and deleted when the
        projection has no such message and a client (not a node) created it: a message
        another node wrote may simply not have reached this one yet.
        """
        wanted = {m["key"]: _message_entry(_check_message(m)) for m in messages}
        with self._automerge("repairing messages") as doc:
            obj = _root_map(doc, "messages")
            puts, drops = [], []
            foreign = [name for name in doc.keys(ROOT) if name not in _LAYOUT_NAMES]
            for key in (doc.keys(obj) if keys is None else sorted(set(keys))):
                got = doc.get(obj, key)
                if key in wanted:
                    try:
                        same = got is not None and _same(_read_json(doc, got, None),
                                                         wanted[key])
                    except _NotJson:
                        same = False
                    if not same:
                        puts.append(key)
                elif got is not None and not is_node_actor(creator_of(got[1])):
                    drops.append(key)
            if not (puts or drops or foreign):
                return b""
            before = doc.get_heads()
            with doc.transaction() as tx:
                for key in puts:
                    _put_message(tx, obj, {**wanted[key], "key": key})
                for key in drops:
                    tx.delete(obj, key)
                for name in foreign:
                    tx.delete(ROOT, name)
            return b"".join(change.bytes for change in doc.get_changes(before))

    def receive_tried(self, state: Any, data: bytes, after: bytes,
                      received: Received) -> Received | None:
        """``receive_sync_message`` for a message already applied to a copy of this
        document (``crdt.automerge.trial``): take the copy (``after``, saved bytes) and
        what the changes did (``received``) instead of applying them again; None, with
        nothing done, if this document has changed since the copy was taken."""
        with self._automerge("taking a tried document") as doc:
            if set(doc.get_heads()) != set(received.before):
                return None
            tried = Document.load(after)
            tried.set_actor(doc.get_actor())
            # Only to bring the sync state along: every change in it is already there.
            tried.receive_sync_message(state, Message.decode(data))
            self._doc = tried
        return received


#: Runs of client changes ``_client_runs`` diffs one by one; past it, every field the
#: message touched counts as the client's (a warning too many, never a repair too few).
CLIENT_RUNS_MAX = 64


def _client_runs(doc: Document, before: list[bytes], new: list[Any]
                 ) -> list[ClientRun] | None:
    """What each run of one client actor's changes (not a node's) did, and which node
    actors built on it; None past ``CLIENT_RUNS_MAX`` runs.

    ``new`` comes in causal order, so each prefix of it is a version of the document:
    the diff across a run is what its changes did, on top of everything before them (a
    node's changes they build on included). Which nodes built on a run is a fact of the
    message; whether one of them holds it for this node is for ``Received.taken_in``.
    """
    spans: list[tuple[set[str], set[str] | None, bytes]] = []  # and the run's last change
    heads, start = set(before), None
    for at, change in enumerate([*new, None]):
        client = change is not None and not is_node_actor(change.actor_id)
        if start is not None and not (client and change.actor_id == new[at - 1].actor_id):
            fields: set[str] = set()
            keys: set[str] | None = set()
            for patch in doc.diff(start, list(heads)):
                touch = classify_patch(repr(patch))
                # Unreadable: assume the worst, as ``_describe`` does.
                fields.update([touch.field] if touch.field else (n for n, _ in LAYOUT))
                if touch.field in (None, "custom_state") and keys is not None:
                    keys = None if touch.key is None else keys | {touch.key}
            spans.append((fields, keys, new[at - 1].hash))
            start = None
        if client and start is None:
            start = list(heads)
            if len(spans) >= CLIENT_RUNS_MAX:
                return None
        if change is not None:
            heads = (heads - set(change.deps)) | {change.hash}
    # below: change -> the runs (bits) whose last change it is or builds on
    below = {last: 1 << bit for bit, (_, _, last) in enumerate(spans)}
    builders: list[set[bytes]] = [set() for _ in spans]
    for change in new:
        bits = below.get(change.hash, 0)
        for dep in change.deps:
            bits |= below.get(dep, 0)
        below[change.hash] = bits
        if is_node_actor(change.actor_id):
            for bit in range(len(spans)):
                if bits >> bit & 1:
                    builders[bit].add(change.actor_id)
    return [ClientRun(frozenset(fields), None if keys is None else frozenset(keys),
                      frozenset(by))
            for (fields, keys, _), by in zip(spans, builders, strict=True)]


class Replica(AutomergeDoc):
    """A client's copy of a session document: empty until a node syncs it.

    >>> from crdt.automerge.document import EMPTY_FIELDS, SessionDoc, node_actor
    >>> node = SessionDoc.new("s1", node_actor("n1"))
    >>> _ = node.update(dict(EMPTY_FIELDS, session_key="s1", state="active"), [], {})
    >>> replica, ours, theirs = Replica(), new_sync_state(), new_sync_state()
    >>> for _ in range(4):
    ...     if (out := node.generate_sync_message(ours)) is not None:
    ...         _ = replica.receive_sync_message(theirs, out)
    ...     if (back := replica.generate_sync_message(theirs)) is not None:
    ...         _ = node.receive_sync_message(ours, back)
    >>> replica.to_python()["state"]
    'active'
    """

    _unusable = "replica unusable"

    def __init__(self) -> None:
        super().__init__(Document())

    def receive_sync_message(self, state: Any, data: bytes) -> bool:
        """Apply a node's sync message; True if the document changed."""
        with _translated(InvalidInput, "decoding a sync message"):
            message = Message.decode(data)
        with self._automerge("receiving a sync message") as doc:
            before = doc.get_heads()
            doc.receive_sync_message(state, message)
            return set(doc.get_heads()) != set(before)

    def to_python(self) -> dict[str, Any] | None:
        """The document as plain values; None while it is still empty."""
        with self._automerge("reading the document") as doc:
            if not doc.get_heads():
                return None
            view = extract(doc)
        assert isinstance(view, dict)
        return view
