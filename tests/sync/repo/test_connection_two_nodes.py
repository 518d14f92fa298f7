"""sync.repo.connection: one client of two nodes, and whose changes (actors) a client's edits
are built on."""

from __future__ import annotations

from typing import Any

import pytest
from automerge.core import ROOT, ScalarType

from crdt.automerge.document import document_id, genesis_actor, node_actor
from sync.repo.host import CLOSE_POLICY, Outcome
from tests.support.automerge import App, put_text, root, set_custom, set_state
from tests.sync.repo.support import (
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
