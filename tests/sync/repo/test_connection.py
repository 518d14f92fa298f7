"""sync.repo.connection: the automerge-repo protocol with clients, exchanged in memory with a real
EventStore behind it (no sockets, no sleeps: time is a number passed in): the handshake,
finding documents, edits, ephemeral messages, changes tried by the host first."""

from __future__ import annotations

from typing import Any

import pytest
from automerge.core import ROOT, Document, ObjType, ScalarType, extract

from crdt.automerge.document import document_id
from sync.repo.config import Access, RepoLimits
from sync.repo.host import CLOSE_POLICY, CLOSE_PROTOCOL, CLOSE_TOO_BIG, Outcome
from tests.support.automerge import App, put_text, root, set_custom, set_state, text_id
from tests.sync.repo.support import (
    LIMITS,
    S1,
    Link,
    OpenStore,
    docs_of,
    event,
    expect_close,
    messages,
    seed,
    seeded_link,
)

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
