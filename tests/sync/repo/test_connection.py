"""sync.repo.connection: the automerge-repo protocol with clients, exchanged in memory with a real
EventStore behind it. No sockets, no sleeps: time is a number passed in."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import pytest
from automerge.core import ROOT, Document, ObjType, ScalarType, extract

from crdt.automerge.document import document_id, genesis_actor, node_actor
from crdt.automerge.documents import Documents
from crdt.automerge.outline import summarize_sync_message
from crdt.events import Event, parse_event
from crdt.log.store import EventStore
from node.automerge.library import StoreLibrary
from sync.repo.config import FULL_ACCESS, Access, RepoLimits
from sync.repo.connection import RepoConnection
from sync.repo.host import (
    CLOSE_INVALID,
    CLOSE_POLICY,
    CLOSE_PROTOCOL,
    CLOSE_TOO_BIG,
    Outcome,
)
from sync.repo.messages import Sync, parse_node_frame
from tests.support.automerge import App, put_text, root, set_custom, set_state, text_id

OpenStore = Callable[[str], EventStore]
S1 = text_id("s1")
LIMITS = RepoLimits()


def event(kind: str, ms: int, session: str = "s1", **payload: Any) -> Event:
    made = parse_event({"agent_id": "main", "hlc": [ms, 0],
                        "kind": {"type": kind, **payload}}, session_key=session)
    assert isinstance(made, Event)
    return made


def seed(store: EventStore, session: str = "s1", messages: int = 3) -> None:
    store.append_batch(
        [event("session_started", 1_000, session, channel="tg", peer_id="alice")]
        + [event("message_received", 2_000 + i, session, content=f"hello {i}")
           for i in range(messages)]
        + [event("state_changed", 3_000, session, key="mood", value="calm")])


def seeded_link(open_store: OpenStore) -> Link:
    """A Link over a store holding ``seed``'s session s1, with s1 open."""
    link = Link(open_store("a"))
    seed(link.store)
    link.open()
    return link


_DOCS: weakref.WeakKeyDictionary[EventStore, Documents] = weakref.WeakKeyDictionary()


def docs_of(store: EventStore) -> Documents:
    """The one ``Documents`` of a store, as a node has (every link of it shares them)."""
    if store not in _DOCS:
        _DOCS[store] = Documents(store)
    return _DOCS[store]


class Link:
    """One connection between an App and a RepoConnection over a StoreLibrary."""

    def __init__(self, store: EventStore, app: App | None = None,
                 access: Access = FULL_ACCESS, limits: RepoLimits = LIMITS) -> None:
        self.store = store
        self.library = StoreLibrary(store, docs_of(store))
        self.app = app or App()
        self.conn = RepoConnection(peer_id="node-1", storage_id="storage-1", access=access,
                                   limits=limits, now=0.0)
        self.now = 0.0
        self.outcomes: list[Outcome] = []

    def send(self, *frames: bytes | None) -> Outcome:
        """Deliver frames from the app, and everything that follows, until quiet; the
        merged outcome of the node's side."""
        merged = Outcome()
        queue = [frame for frame in frames if frame is not None]
        while queue and not self.conn.closed:
            self.take(self.conn.receive(queue.pop(0), self.now, self.library), merged, queue)
        return merged

    def refresh(self, *sessions: str) -> Outcome:
        merged = Outcome()
        queue: list[bytes] = []
        ids = [document_id(session) for session in sessions]
        self.take(self.conn.refresh(ids, self.now, self.library), merged, queue)
        merged_rest = self.send(*queue)
        merged.frames += merged_rest.frames
        merged.edits += merged_rest.edits
        return merged

    def take(self, out: Outcome, merged: Outcome, queue: list[bytes]) -> None:
        self.outcomes.append(out)
        merged.frames += out.frames
        merged.edits += out.edits
        merged.notes += out.notes
        merged.changed |= out.changed
        merged.ephemeral += out.ephemeral
        merged.close = merged.close or out.close
        merged.trial = merged.trial or out.trial
        merged.watch = out.watch if out.watch is not None else merged.watch
        for frame in out.frames:
            queue += self.app.receive(frame)

    def open(self, doc: str = S1) -> Outcome:
        if self.app.server is None:
            self.send(self.app.join())
        return self.send(self.app.request(doc))

    def apply_edits(self, out: Outcome) -> list[str]:
        """Append the edits as the node does, release the documents, and refresh."""
        kinds = []
        for edit in out.edits:
            self.store.append_batch(list(edit.drafts))
            self.library.release(edit.session_key)
            kinds += [draft.kind for draft in edit.drafts]
            self.refresh(edit.session_key)
        return kinds


def messages(view: Any) -> list[str]:
    return [m["content"] for _, m in sorted(view["messages"].items())]


# --- handshake ------------------------------------------------------------------------

def test_join_is_answered_with_peer(open_store: OpenStore) -> None:
    link = Link(open_store("a"))
    out = link.send(link.app.join())
    assert link.app.server == "node-1" and out.close is None
    assert link.conn.client == "peer-app" and link.conn.wakeup_at is None


def test_an_unsupported_version_is_refused(open_store: OpenStore) -> None:
    link = Link(open_store("a"))
    out = link.send(link.app.join(versions=["2"]))
    assert out.close is not None and out.close.code == CLOSE_PROTOCOL
    assert link.app.errors == ["unsupported protocol version"]


def test_no_join_in_time_closes(open_store: OpenStore) -> None:
    link = Link(open_store("a"), limits=RepoLimits(join_s=5.0))
    assert link.conn.wakeup_at == 5.0
    assert link.conn.tick(4.9).close is None
    expect_close(link.conn.tick(5.0), CLOSE_PROTOCOL)
    assert link.conn.closed and link.conn.wakeup_at is None


# --- find, live, unavailable ----------------------------------------------------------

def test_find_syncs_the_projection(open_store: OpenStore) -> None:
    store = open_store("a")
    seed(store)
    link = Link(store)
    out = link.open()
    assert out.close is None and out.watch == {document_id("s1"): True}
    view = link.app.view(S1)
    projection = store.get_projection("s1").to_json()
    assert messages(view) == ["hello 0", "hello 1", "hello 2"]
    assert view["custom_state"] == {"mood": "calm"} and view["state"] == "active"
    assert view["event_count"] == projection["event_count"] == 5


def test_new_events_reach_the_client(open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    store = link.store
    store.append(event("agent_response", 4_000, content="hi!", model="m"))
    link.refresh("s1")
    assert messages(link.app.view(S1))[-1] == "hi!"
    assert link.refresh("s1").frames == []  # nothing new: nothing sent


def test_unknown_document_is_unavailable_until_it_appears(open_store: OpenStore) -> None:
    store = open_store("a")
    link = Link(store)
    out = link.open(text_id("later"))
    assert link.app.unavailable == [text_id("later")]
    assert out.watch == {document_id("later"): False}
    assert link.refresh("later").frames == []  # still unknown
    seed(store, "later")
    link.refresh("later")
    assert link.app.unavailable == []
    assert messages(link.app.view(text_id("later"))) == ["hello 0", "hello 1", "hello 2"]


def test_a_token_sees_only_its_sessions(open_store: OpenStore) -> None:
    store = open_store("a")
    seed(store, "tg:alice")
    link = Link(store, access=Access(sessions=("web:*",)))
    out = link.open(text_id("tg:alice"))
    assert link.app.unavailable == [text_id("tg:alice")] and out.watch == {}
    seed(store, "tg:alice", messages=4)
    assert link.refresh("tg:alice").frames == []
    assert any(note.event == "automerge document refused to token" for note in out.notes)


def test_a_session_appearing_later_is_checked_against_the_token(open_store: OpenStore) -> None:
    store = open_store("a")
    link = Link(store, access=Access(sessions=("web:*",)))
    link.open(text_id("tg:bob"))
    seed(store, "tg:bob")
    assert link.refresh("tg:bob").frames == []
    assert link.app.unavailable == [text_id("tg:bob")]


# --- edits ----------------------------------------------------------------------------

def test_custom_state_and_state_edits_become_events(open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    store = link.store
    link.app.change(S1, set_custom("mood", "happy"))
    link.app.change(S1, set_state("ended"))
    out = link.send(link.app.sync(S1))
    assert out.close is None and link.library.held("s1")
    assert link.apply_edits(out) == ["state_changed", "session_ended"]
    assert not link.library.held("s1")
    projection = store.get_projection("s1").to_json()
    assert projection["custom_state"] == {"mood": "happy"} and projection["state"] == "ended"
    view = link.app.view(S1)
    assert view["custom_state"] == {"mood": "happy"} and view["state"] == "ended"
    assert view["event_count"] == 7
    ended = [s.event for s in store.get_events("s1") if s.event.kind == "session_ended"]
    assert ended[0].payload == {"reason": "client"} and ended[0].agent_id == "main"


def test_state_active_restarts_with_the_session_channel(open_store: OpenStore) -> None:
    store = open_store("a")
    seed(store)
    store.append(event("session_ended", 5_000, reason="bye"))
    link = Link(store)
    link.open()
    link.app.change(S1, set_state("active"))
    assert link.apply_edits(link.send(link.app.sync(S1))) == ["session_started"]
    started = [s.event for s in store.get_events("s1") if s.event.kind == "session_started"]
    assert started[-1].payload == {"channel": "tg", "peer_id": "alice"}


@pytest.mark.parametrize(("edit", "field"), [
    (set_state("paused"), "state"),
    (lambda tx: tx.put(ROOT, "message_count", ScalarType.Int, 99), "message_count"),
    (lambda tx: put_text(tx, ROOT, "last_event_id", "forged"), "last_event_id"),
    (lambda tx: tx.delete(root(tx, "custom_state"), "mood"), "mood"),
    (lambda tx: tx.put(root(tx, "custom_state"), "b", ScalarType.Bytes, b"x"), "b"),
    (lambda tx: put_text(tx, ROOT, "extra", "mine"), "extra"),
])
def test_refused_edits_are_logged_and_put_back(open_store: OpenStore, edit: Any,
                                               field: str) -> None:
    link = seeded_link(open_store)
    store = link.store
    before = store.get_projection("s1").to_json()
    link.app.change(S1, edit)
    out = link.send(link.app.sync(S1))
    assert out.close is None and out.edits == []
    [note] = [n for n in out.notes if n.event == "automerge client edits ignored"]
    assert field in note.fields["reasons"]
    assert store.get_projection("s1").to_json() == before
    view = link.app.view(S1)
    for name in ("state", "message_count", "last_event_id", "custom_state"):
        assert view[name] == before[name], name
    assert "extra" not in view


def test_message_edits_are_put_back(open_store: OpenStore) -> None:
    link = seeded_link(open_store)

    def edit(tx: Any) -> None:
        box = root(tx, "messages")
        first = sorted(tx.keys(box))[0]
        content = tx.get(tx.get(box, first)[1], "content")[1]
        tx.insert(content, 0, ScalarType.Str, "EDITED ")
        fake = tx.put_object(box, "000000000000000.0000000000." + "00" * 32, ObjType.Map)
        put_text(tx, fake, "content", "forged")

    link.app.change(S1, edit)
    out = link.send(link.app.sync(S1))
    assert out.close is None and out.edits == []
    assert messages(link.app.view(S1)) == ["hello 0", "hello 1", "hello 2"]


def test_a_refused_edit_beside_an_accepted_one(open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    link.app.change(S1, set_custom("mood", "happy"))
    link.app.change(S1, lambda tx: tx.put(ROOT, "message_count", ScalarType.Int, 99))
    kinds = link.apply_edits(link.send(link.app.sync(S1)))
    assert kinds == ["state_changed"]
    view = link.app.view(S1)
    assert view["custom_state"] == {"mood": "happy"} and view["message_count"] == 3


def test_a_held_document_is_not_caught_up(open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    link.app.change(S1, set_custom("mood", "happy"))
    out = link.send(link.app.sync(S1))
    assert link.refresh("s1").frames == []  # held: the old value is not written back
    assert link.app.view(S1)["custom_state"] == {"mood": "happy"}
    link.apply_edits(out)
    assert link.app.view(S1)["custom_state"] == {"mood": "happy"}


def test_reading_the_saved_document_respects_the_hold(open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    store = link.store
    link.app.change(S1, set_custom("mood", "happy"))
    link.app.change(S1, set_state("ended"))
    out = link.send(link.app.sync(S1))
    store.append(event("message_received", 8_000, content="meanwhile"))
    saved = Document.load(docs_of(store).saved("s1"))  # GET /v1/sessions/s1/automerge
    view = extract(saved)
    assert view["custom_state"] == {"mood": "happy"} and view["state"] == "ended"
    assert "meanwhile" in messages(view)  # messages still follow the log
    link.refresh("s1")
    assert link.app.view(S1)["custom_state"] == {"mood": "happy"}
    link.apply_edits(out)
    assert extract(Document.load(docs_of(store).saved("s1")))["custom_state"] == {"mood": "happy"}
    assert not docs_of(store).document("s1", catch_up=False).held


# --- two nodes, one client ------------------------------------------------------------

def test_a_client_of_two_converged_nodes_sees_each_message_once(open_store: OpenStore) -> None:
    a, b = open_store("a"), open_store("b")
    seed(a)
    seed(b)  # the same events (same timestamps): what converged nodes hold
    app = App()
    first = Link(a, app)
    first.open()
    second = Link(b, app)
    app.reconnect()
    out = second.open()
    assert out.close is None and out.edits == []  # relayed node changes are no edits
    view = app.view(S1)
    assert messages(view) == ["hello 0", "hello 1", "hello 2"]
    assert len(view["messages"]) == 3
    b.append(event("message_sent", 9_000, content="from b", message_id="m9"))
    second.refresh("s1")
    assert messages(app.view(S1)) == ["hello 0", "hello 1", "hello 2", "from b"]


def _forge(tx: Any) -> None:
    """Delete one real message, rewrite another, add a root key and a count."""
    box = root(tx, "messages")
    first, second = sorted(tx.keys(box))[:2]
    tx.delete(box, first)
    content = tx.get(tx.get(box, second)[1], "content")[1]
    tx.insert(content, 0, ScalarType.Str, "EDITED ")
    put_text(tx, ROOT, "extra", "mine")
    tx.put(ROOT, "message_count", ScalarType.Int, 99)


def test_changes_under_another_nodes_actor_are_put_back(open_store: OpenStore) -> None:
    store = open_store("a")
    seed(store)
    link = Link(store, App(actor=node_actor("not-a-node-at-all")))
    link.open()
    link.app.change(S1, _forge)
    out = link.send(link.app.sync(S1))
    assert out.close is None and out.edits == []
    assert any(n.event == "automerge relayed changes put back" for n in out.notes)
    view = link.app.view(S1)
    assert messages(view) == ["hello 0", "hello 1", "hello 2"]
    assert "extra" not in view and view["message_count"] == 3
    fresh = Link(store, App(peer="fresh"))  # every other client sees the same
    fresh.open()
    assert messages(fresh.app.view(S1)) == ["hello 0", "hello 1", "hello 2"]


def test_a_clients_edits_beside_relayed_changes_are_told_apart(open_store: OpenStore) -> None:
    """One message with changes under another node's actor (forged here: actor ids prove
    nothing) and the client's own: all are put back, but the client is told only of
    what its own changes did."""
    link = seeded_link(open_store)
    doc = link.app.docs[S1]
    doc.set_actor(node_actor("not-a-node-at-all"))
    link.app.change(S1, _forge)
    doc.set_actor(link.app.actor)
    link.app.change(S1, set_custom("mood", "happy"))
    link.app.change(S1, lambda tx: put_text(tx, ROOT, "last_event_id", "forged"))
    out = link.send(link.app.sync(S1))
    [ignored] = [n for n in out.notes if n.event == "automerge client edits ignored"]
    assert ignored.fields["reasons"] == {"last_event_id": "derived from the log; put back"}
    [relayed] = [n for n in out.notes if n.event == "automerge relayed changes put back"]
    assert {"messages", "extra", "message_count"} <= set(relayed.fields["fields"])
    assert "last_event_id" not in relayed.fields["fields"]
    assert link.apply_edits(out) == ["state_changed"]
    view = link.app.view(S1)
    assert messages(view) == ["hello 0", "hello 1", "hello 2"]
    assert "extra" not in view and view["message_count"] == 3
    assert view["last_event_id"] == link.store.get_projection("s1").to_json()["last_event_id"]
    assert view["custom_state"] == {"mood": "happy"}


def _edited_keys(out: Outcome) -> list[tuple[str, Any]]:
    return [(d.payload["key"], d.payload["value"]) for e in out.edits for d in e.drafts
            if d.kind == "state_changed"]


def test_a_relayed_node_change_beside_a_clients_edit_makes_no_event(
        open_store: OpenStore) -> None:
    """A change under another node's actor, relayed beside the client's own edit in one
    message, shows an event of that node's (or is forged): it is no edit of the client's.
    Only the client's own key becomes an event; the rest is put back."""
    link = seeded_link(open_store)
    doc = link.app.docs[S1]
    doc.set_actor(node_actor("not-a-node-at-all"))
    link.app.change(S1, set_custom("mood", "forged"))
    link.app.change(S1, set_state("ended"))
    doc.set_actor(link.app.actor)
    link.app.change(S1, set_custom("color", "red"))
    out = link.send(link.app.sync(S1))
    assert _edited_keys(out) == [("color", "red")]
    assert link.apply_edits(out) == ["state_changed"]
    view = link.app.view(S1)
    assert view["custom_state"] == {"mood": "calm", "color": "red"}
    assert view["state"] == "active"


#: An origin of another node of the cluster, whose events the store holds (``peer_link``).
PEER_ORIGIN = "0123456789abcdef"


def peer_link(open_store: OpenStore) -> Link:
    """``seeded_link``, over a store that also holds an event of ``PEER_ORIGIN``'s."""
    link = Link(open_store("a"))
    seed(link.store)
    link.store.ingest([(event("state_changed", 3_500, key="seen", value=True), PEER_ORIGIN,
                        1)])
    link.open()
    return link


def test_a_client_edit_a_node_built_on_is_that_nodes_event(open_store: OpenStore) -> None:
    """Another client's edit relayed with a change that builds on it by a node of the
    cluster: that node holds the edit and made it an event, which comes by gossip; made
    here too, one edit would be two events. The relaying client's own edit after it is
    still taken. (The node's change is forged here: then the edit is simply not taken,
    and put back.)"""
    link = peer_link(open_store)
    doc = link.app.docs[S1]
    doc.set_actor(b"\x42" * 16)  # another client
    link.app.change(S1, set_custom("mood", "happy"))
    doc.set_actor(node_actor(PEER_ORIGIN))
    link.app.change(S1, lambda tx: put_text(tx, ROOT, "last_event_id", "its event"))
    doc.set_actor(link.app.actor)
    link.app.change(S1, set_custom("color", "red"))
    out = link.send(link.app.sync(S1))
    assert _edited_keys(out) == [("color", "red")]
    assert not [n for n in out.notes if n.event == "automerge client edits ignored"]
    assert link.apply_edits(out) == ["state_changed"]
    view = link.app.view(S1)
    assert view["custom_state"] == {"mood": "calm", "seen": True, "color": "red"}
    assert view["last_event_id"] == link.store.get_projection("s1").to_json()["last_event_id"]


def test_a_client_edit_only_an_unknown_node_built_on_is_taken(open_store: OpenStore) -> None:
    """A client's edit that only a node this one takes no events of built on (a removed
    device, a node of another cluster, a forged actor): nothing says its event will come,
    so it becomes an event here, lest it be lost."""
    link = peer_link(open_store)
    doc = link.app.docs[S1]
    doc.set_actor(b"\x42" * 16)  # another client
    link.app.change(S1, set_custom("mood", "happy"))
    doc.set_actor(node_actor("fedcba9876543210"))  # holds no event of it
    link.app.change(S1, lambda tx: put_text(tx, ROOT, "last_event_id", "its event"))
    out = link.send(link.app.sync(S1))
    assert _edited_keys(out) == [("mood", "happy")]


def test_a_client_edit_no_node_built_on_is_taken(open_store: OpenStore) -> None:
    """Another client's edit relayed alone (the node that took it in had not shown it
    yet): nothing says a node holds it, so it becomes an event here, lest it be lost."""
    link = seeded_link(open_store)
    link.app.docs[S1].set_actor(b"\x42" * 16)
    link.app.change(S1, set_custom("mood", "happy"))
    out = link.send(link.app.sync(S1))
    assert _edited_keys(out) == [("mood", "happy")]


@pytest.mark.parametrize("whose", ["this node", "genesis"])
def test_changes_under_this_nodes_or_the_genesis_actor_close(open_store: OpenStore,
                                                              whose: str) -> None:
    store = open_store("a")
    seed(store)
    actor = (docs_of(store).actor if whose == "this node"
             else genesis_actor(document_id("s1")))
    link = Link(store, App(actor=actor))
    link.open()
    link.app.change(S1, _forge)
    expect_close(link.send(link.app.sync(S1)), CLOSE_POLICY)
    assert "actor" in link.app.errors[0]
    fresh = Link(store, App(peer="fresh"))
    fresh.open()
    view = fresh.app.view(S1)
    assert messages(view) == ["hello 0", "hello 1", "hello 2"] and "extra" not in view


# --- hostile clients ------------------------------------------------------------------

def expect_close(out: Outcome, code: int) -> None:
    assert out.close is not None and out.close.code == code, out.close


@pytest.mark.parametrize("frame", [
    b"", b"\x00", b"not cbor at all", b"\xa1\x61a", b"\x82\x01\x02",
    b"\xc1\x00",  # a tag
    b"\x9f\xff",  # indefinite length
    b"\x81" * 20 + b"\x00",  # too deep
])
def test_garbage_frames_close(open_store: OpenStore, frame: bytes) -> None:
    link = Link(open_store("a"))
    link.send(link.app.join())
    expect_close(link.send(frame), CLOSE_INVALID)


def test_a_message_before_join_closes(open_store: OpenStore) -> None:
    link = Link(open_store("a"))
    link.app.server = "node-1"
    expect_close(link.send(link.app.request(S1)), CLOSE_PROTOCOL)


def test_a_wrong_sender_closes(open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    other = App(peer="someone-else")
    other.server = "node-1"
    expect_close(link.send(other.request(S1)), CLOSE_POLICY)
    assert link.app.errors == ["senderId is not the peer that joined"]


def test_a_wrong_target_and_a_second_join_close(open_store: OpenStore) -> None:
    link = Link(open_store("a"))
    link.send(link.app.join())
    link.app.server = "not-the-node"
    expect_close(link.send(link.app.request(S1)), CLOSE_PROTOCOL)
    again = Link(open_store("b"))
    again.send(again.app.join())
    expect_close(again.send(again.app.join()), CLOSE_PROTOCOL)


def test_a_flood_of_frames_closes(open_store: OpenStore) -> None:
    link = Link(open_store("a"), limits=RepoLimits(frames_burst=20, frames_per_s=10))
    link.send(link.app.join())
    closes = [link.conn.receive(link.app.request(text_id(f"d{i}")), 0.0, link.library).close
              for i in range(40)]
    assert [c for c in closes if c] and closes[-1] is None  # closed once, then silent
    assert [c.code for c in closes if c] == [CLOSE_POLICY]
    assert link.conn.closed


def test_a_slow_steady_client_is_not_a_flood(open_store: OpenStore) -> None:
    link = Link(open_store("a"), limits=RepoLimits(frames_burst=5, frames_per_s=10))
    link.send(link.app.join())
    for i in range(50):
        frame = link.app.frame(type="ephemeral", targetId="node-1", documentId=S1, count=i,
                               sessionId="x", data=b"\x01")
        assert link.conn.receive(frame, i * 0.2, link.library).close is None


def test_too_many_documents_close(open_store: OpenStore) -> None:
    link = Link(open_store("a"), limits=RepoLimits(documents_max=3))
    link.send(link.app.join())
    for i in range(3):
        assert link.send(link.app.request(text_id(f"d{i}"))).close is None
    expect_close(link.send(link.app.request(text_id("d3"))), CLOSE_POLICY)


def test_read_only_changes_close_and_store_nothing(open_store: OpenStore) -> None:
    store = open_store("a")
    seed(store)
    link = Link(store, access=Access(read_only=True))
    link.open()
    assert messages(link.app.view(S1))  # reading is fine
    size = link.library.stored_bytes("s1")
    link.app.change(S1, set_custom("mood", "happy"))
    expect_close(link.send(link.app.sync(S1)), CLOSE_POLICY)
    assert store.get_projection("s1").to_json()["custom_state"] == {"mood": "calm"}
    assert link.library.stored_bytes("s1") == size


def test_changes_over_the_document_limit_close(open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    limit = link.library.stored_bytes("s1") + 100
    link.conn.limits = RepoLimits(document_bytes_max=limit)
    link.app.change(S1, set_custom("big", "x" * 5_000))
    expect_close(link.send(link.app.sync(S1)), CLOSE_TOO_BIG)
    assert link.library.stored_bytes("s1") < limit


def test_a_deflate_bomb_closes_before_automerge_sees_it(open_store: OpenStore) -> None:
    from crdt.automerge.binreader import uleb
    from tests.support.automerge import chunk, deflate

    link = seeded_link(open_store)
    store = link.store
    heads = docs_of(store).document("s1").heads
    bomb = chunk(2, deflate(bytes(256 * 1024 * 1024)))  # 256 MiB of zeros in 256 KiB
    message = b"\x42" + uleb(0) * 3 + uleb(1) + uleb(len(bomb)) + bomb
    frame = link.app.frame(type="sync", targetId=link.app.server, documentId=S1, data=message)
    expect_close(link.send(frame), CLOSE_TOO_BIG)
    assert "unpack to more than" in link.app.errors[0]
    assert docs_of(store).document("s1").heads == heads


def test_a_counter_closes_and_the_document_stays_clean(open_store: OpenStore) -> None:
    # automerge-js wrote this change on the genesis of "s1": custom_state.c = Counter(1).
    from tests.support.automerge import COUNTER_CHANGE

    link = seeded_link(open_store)
    store = link.store
    link.app.docs[S1].merge(_genesis_plus(COUNTER_CHANGE))
    expect_close(link.send(link.app.sync(S1)), CLOSE_POLICY)
    assert "counter" in link.app.errors[0]
    fresh = Link(store, App(peer="fresh"))
    fresh.open()
    assert fresh.app.view(S1)["custom_state"] == {"mood": "calm"}
    reopened = docs_of(store).document("s1").to_python()  # readable: no counter kept
    assert "c" not in reopened["custom_state"]


def _genesis_plus(change: bytes) -> Document:
    from crdt.automerge.document import SessionDoc, node_actor

    return Document.load(SessionDoc.new("s1", node_actor("x")).save() + change)


def test_a_broken_sync_message_closes(open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    store = link.store
    frame = link.app.frame(type="sync", targetId="node-1", documentId=S1,
                           data=b"\x42\x01" + b"\x00" * 5)
    expect_close(link.send(frame), CLOSE_INVALID)
    again = Link(store, App(peer="again"))
    again.open()
    assert messages(again.app.view(S1)) == ["hello 0", "hello 1", "hello 2"]


def test_closed_connections_ignore_everything(open_store: OpenStore) -> None:
    link = Link(open_store("a"))
    link.send(b"junk")
    assert link.conn.closed
    out = link.conn.receive(link.app.join(), 1.0, link.library)
    assert out.frames == [] and out.close is None
    assert link.conn.refresh([document_id("s1")], 1.0, link.library).frames == []


# --- ephemeral ------------------------------------------------------------------------

def test_ephemeral_messages_are_passed_on_for_open_documents(open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    presence = link.app.frame(type="ephemeral", targetId="node-1", documentId=S1,
                              count=1, sessionId="abc", data=b"\xa1ax\x01")
    out = link.send(presence)
    [(doc_id, message)] = out.ephemeral
    assert doc_id == document_id("s1") and message.count == 1 and message.data == b"\xa1ax\x01"
    elsewhere = link.app.frame(type="ephemeral", targetId="node-1", documentId=text_id("zz"),
                               count=2, sessionId="abc", data=b"\x01")
    assert link.send(elsewhere).ephemeral == []



def test_an_ephemeral_message_passed_back_under_its_first_senders_id_is_dropped(
        open_store: OpenStore) -> None:
    """A stock client passes on what another sent it, to this node too: an echo, not a
    lie, but not this client's to send either. Another message under another's id
    still closes."""
    link = seeded_link(open_store)
    echo = link.app.frame(type="ephemeral", senderId="another-client", targetId="node-1",
                          documentId=S1, count=1, sessionId="abc", data=b"\xa1ax\x01")
    out = link.send(echo)
    assert out.ephemeral == [] and not out.frames and not link.conn.closed
    other = App(peer="another-client")
    other.server = "node-1"
    expect_close(link.send(other.request(S1)), CLOSE_POLICY)


def _presence(link: Link, count: int, size: int) -> bytes:
    return link.app.frame(type="ephemeral", targetId="node-1", documentId=S1, count=count,
                          sessionId="abc", data=b"x" * size)


def test_an_oversized_ephemeral_message_closes(open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    assert link.send(_presence(link, 1, LIMITS.ephemeral_bytes_max)).ephemeral
    expect_close(link.send(_presence(link, 2, LIMITS.ephemeral_bytes_max + 1)), CLOSE_TOO_BIG)


def test_ephemeral_bytes_beyond_the_budget_are_dropped(open_store: OpenStore) -> None:
    store = open_store("a")
    seed(store)
    link = Link(store, limits=RepoLimits(ephemeral_bytes_per_s=1_000,
                                         ephemeral_bytes_burst=2_000))
    link.open()
    passed = [bool(link.send(_presence(link, i, 1_000)).ephemeral) for i in range(4)]
    assert passed == [True, True, False, False] and not link.conn.closed
    notes = [n for o in link.outcomes for n in o.notes
             if n.event == "automerge ephemeral messages dropped"]
    assert len(notes) == 1  # once per run of drops
    link.now = 1.0  # a second later the budget allows 1,000 bytes again
    assert link.send(_presence(link, 5, 1_000)).ephemeral
    assert not link.send(_presence(link, 6, 1_000)).ephemeral


def test_a_document_too_large_to_serve_is_refused_not_sent(open_store: OpenStore) -> None:
    store = open_store("a")
    seed(store, "big", messages=40)
    seed(store, "small", messages=0)
    link = Link(store, limits=RepoLimits(served_bytes_max=2_000))
    out = link.open(text_id("big"))
    assert out.close is None and not link.conn.closed
    assert link.app.unavailable == [text_id("big")]
    assert "too large to serve" in link.app.errors[0] and "2000" in link.app.errors[0]
    assert any(n.event == "automerge document too large to serve" for n in out.notes)
    assert out.watch == {}
    store.append(event("message_received", 9_000, "big", content="more"))
    assert link.refresh("big").frames == []  # not tried again on this connection
    link.open(text_id("small"))  # other documents are still served
    assert link.app.view(text_id("small"))["session_key"] == "small"


# --- changes tried by the host first ----------------------------------------------------

def test_changes_wait_for_their_trial_and_a_refusal_leaves_the_document(
        open_store: OpenStore) -> None:
    from crdt.automerge.trial import try_sync_message

    link = seeded_link(open_store)
    link.conn.trials = True
    before = link.library.saved("s1")
    link.app.change(S1, set_custom("mood", "happy"))
    out = link.send(link.app.sync(S1))
    assert out.trial is not None and out.trial.session_key == "s1"
    assert out.trial.saved == before and not out.edits and not out.frames
    assert not isinstance(try_sync_message(out.trial.saved, out.trial.data,
                                           docs_of(link.store).actor), str)
    refused = link.conn.resume((CLOSE_POLICY, "changes refused: too slow"), link.library)
    expect_close(refused, CLOSE_POLICY)
    assert link.library.saved("s1") == before
    assert link.library.document("s1").to_python()["custom_state"] == {"mood": "calm"}


@pytest.mark.parametrize("take", [True, False])
def test_changes_that_pass_their_trial_become_events(open_store: OpenStore,
                                                     take: bool) -> None:
    from crdt.automerge.trial import Tried, try_sync_message

    link = seeded_link(open_store)
    link.conn.trials = True
    link.app.change(S1, set_custom("mood", "happy"))
    out = link.send(link.app.sync(S1))
    assert out.trial is not None
    verdict = try_sync_message(out.trial.saved, out.trial.data, docs_of(link.store).actor)
    tried = verdict if take and isinstance(verdict, Tried) else None
    applied = link.conn.resume(None, link.library, tried)
    assert applied.close is None and link.apply_edits(applied) == ["state_changed"]
    assert link.store.get_projection("s1").to_json()["custom_state"] == {"mood": "happy"}
    assert link.conn.resume(None, link.library) == Outcome()  # nothing pending any more


# --- a client with nothing gets the whole document ------------------------------------

#: The capabilities automerge 2.2 and later append to their sync messages (this binding
#: too): "I read v1 and v2 messages".
READS_V2 = bytes([2, 1, 2])
SYNC_V2 = 0x43
DOCUMENT_CHUNK = 0


def sync_data(out: Outcome) -> list[bytes]:
    frames = [parse_node_frame(frame) for frame in out.frames]
    return [frame.data for frame in frames if isinstance(frame, Sync)]


def chunk_types(data: bytes) -> list[int]:
    """The type of each chunk a sync message carries (0: a whole document, 1: a change)."""
    return [entry[8] for entry in summarize_sync_message(data, changes_max=10_000).entries]


def test_a_client_with_nothing_gets_the_whole_document_then_changes(
        open_store: OpenStore) -> None:
    store = open_store("a")
    seed(store)
    link = Link(store)
    out = link.open()
    whole, *_ = sync_data(out)
    # One v2 message whose one chunk is the saved document, which the client loads as
    # one unit, instead of every change the document was built from.
    assert whole[0] == SYNC_V2
    assert summarize_sync_message(whole, changes_max=10).entries == (
        docs_of(store).document("s1").save(),)
    assert messages(link.app.view(S1)) == ["hello 0", "hello 1", "hello 2"]
    store.append(event("agent_response", 4_000, content="hi!", model="m"))
    later = sync_data(link.refresh("s1"))
    assert later and all(DOCUMENT_CHUNK not in chunk_types(data) for data in later)
    assert messages(link.app.view(S1))[-1] == "hi!"


def test_clients_with_nothing_share_one_answer_then_each_gets_changes(
        open_store: OpenStore) -> None:
    store = open_store("a")
    seed(store)
    first, second = Link(store), Link(store, App(peer="peer-two", actor=b"\xb2" * 16))
    answers = [sync_data(link.open()) for link in (first, second)]
    # The same answer for both, made once: the saved document as its one chunk.
    assert answers[0][0] == answers[1][0]
    assert summarize_sync_message(answers[1][0], changes_max=10).entries == (
        docs_of(store).document("s1").save(),)
    for link, (_, *rest) in zip((first, second), answers, strict=True):
        assert all(DOCUMENT_CHUNK not in chunk_types(data) for data in rest)
        assert messages(link.app.view(S1)) == ["hello 0", "hello 1", "hello 2"]
    store.append(event("agent_response", 4_000, content="hi!", model="m"))
    for link in (first, second):
        later = sync_data(link.refresh("s1"))
        assert later and all(DOCUMENT_CHUNK not in chunk_types(data) for data in later)
        assert messages(link.app.view(S1))[-1] == "hi!"
    # A new version of the document: a new answer, with the new document.
    third = Link(store, App(peer="peer-three", actor=b"\xb3" * 16))
    [whole, *_] = sync_data(third.open())
    assert whole != answers[0][0]
    assert summarize_sync_message(whole, changes_max=10).entries == (
        docs_of(store).document("s1").save(),)
    assert messages(third.app.view(S1))[-1] == "hi!"


def test_an_append_before_the_client_replies_reaches_it_as_changes(
        open_store: OpenStore) -> None:
    store = open_store("a")
    seed(store)
    Link(store).open()  # the answer is made
    link = Link(store, App(peer="peer-two", actor=b"\xb2" * 16))
    link.send(link.app.join())
    out = link.conn.receive(link.app.request(S1), link.now, link.library)
    [whole] = sync_data(out)
    assert chunk_types(whole) == [DOCUMENT_CHUNK]
    store.append(event("agent_response", 4_000, content="hi!", model="m"))
    # The node has not heard back yet: whatever it sends now is no second document.
    early = link.conn.refresh([document_id("s1")], link.now, link.library)
    assert all(DOCUMENT_CHUNK not in chunk_types(data) for data in sync_data(early))
    replies = [reply for frame in out.frames + early.frames
               for reply in link.app.receive(frame)]
    rest = link.send(*replies)
    assert all(DOCUMENT_CHUNK not in chunk_types(data) for data in sync_data(rest))
    assert messages(link.app.view(S1)) == ["hello 0", "hello 1", "hello 2", "hi!"]


def test_a_client_that_reads_only_v1_gets_changes(open_store: OpenStore) -> None:
    store = open_store("a")
    seed(store)
    link = Link(store)
    link.send(link.app.join())
    link.app.docs[S1] = Document(actor_id=link.app.actor)
    data = link.app._generate(S1)
    assert data is not None and data.endswith(READS_V2)
    out = link.send(link.app.frame(type="request", targetId=link.app.server,
                                   documentId=S1, data=data.removesuffix(READS_V2)))
    first, *_ = sync_data(out)
    assert first[0] == 0x42 and set(chunk_types(first)) == {1}  # changes, as before 2.2
    assert messages(link.app.view(S1)) == ["hello 0", "hello 1", "hello 2"]


def test_changes_to_the_cluster_s_own_sessions_close_and_store_nothing(
        open_store: OpenStore) -> None:
    """What a client saved in their documents could never be forgotten (not even put
    back: the history keeps it), as the node's HTTP API refuses too."""
    from crdt.membership import DEVICES_SESSION

    store = open_store("a")
    seed(store, DEVICES_SESSION, messages=1)
    link = Link(store)
    devices = text_id(DEVICES_SESSION)
    link.open(devices)
    assert messages(link.app.view(devices))  # reading is fine
    held, size = len(store.get_events(DEVICES_SESSION)), link.library.stored_bytes(
        DEVICES_SESSION)
    link.app.change(devices, set_custom("mood", "mine"))
    expect_close(link.send(link.app.sync(devices)), CLOSE_POLICY)
    assert len(store.get_events(DEVICES_SESSION)) == held
    assert link.library.stored_bytes(DEVICES_SESSION) == size
