"""After a forget, a session's Automerge document is replaced (DESIGN decision 14): a new
id, the old one unavailable to every client, the old document deleted, and nothing a
client still holds of it taken back. In memory, with a real EventStore behind."""

from __future__ import annotations

from automerge.core import ROOT, Document

from crdt.automerge.document import document_id, encode_document_id
from crdt.clock import Hlc
from crdt.log import forget
from crdt.log.records import key
from crdt.log.store import EventStore
from sync.repo.host import CLOSE_POLICY
from tests.support.automerge import put_text, set_custom
from tests.sync.repo.support import (
    S1,
    Link,
    OpenStore,
    docs_of,
    expect_close,
    seeded_link,
)


def forget_s1(store: EventStore, ms: int = 10_000) -> str:
    """Forget session s1 (a whole-session record at ``ms``); the new document's id."""
    record = forget.forget("s1", reason="user", by="test").seal(Hlc(ms, 0))
    store.append(record)
    return encode_document_id(document_id("s1", record.id.hex()))


def stored_document_keys(store: EventStore) -> list[str]:
    names = [key("d", "s1"), key("ds", "s1")] + [key("di", "s1", i) for i in range(40)]
    return [name for name in names if store.log.storage.get(name) is not None]


def test_a_forget_gives_the_session_a_new_document(open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    library, store = link.library, link.store
    old = document_id("s1")
    assert library.resolve(old) == "s1" and stored_document_keys(store)
    new = forget_s1(store)  # the commit tells the library: the id moves at once
    assert library.take_retired({"s1"}) == [old] and library.take_retired({"s1"}) == []
    assert library.resolve(old) is None
    assert library.resolve(document_id("s1", store.forget_generation("s1"))) == "s1"
    assert stored_document_keys(store) == []  # the old document left the disk
    doc = library.document("s1")
    assert encode_document_id(doc.document_id) == new
    # Built anew from the erased log: the genesis and one change, and no forgotten text
    # anywhere in its history (each change's bytes uncompressed).
    history = Document.load(doc.save()).get_changes([])
    assert len(history) == 2
    assert not any(b"hello" in change.raw_bytes or b"calm" in change.raw_bytes
                   for change in history)
    assert doc.to_python()["messages"] == {}


def test_a_client_holding_the_old_document_is_told_it_is_gone(open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    forget_s1(link.store)
    out = link.refresh("s1")  # the node heard of the forget: clients of the old id hear
    assert link.app.unavailable == [S1] and out.close is None
    events = len(link.store.get_events("s1"))
    # The client edits its old copy: nothing is applied, nothing becomes an event.
    link.app.change(S1, set_custom("pasted", "back again"))
    out = link.send(link.app.sync(S1))
    assert out.edits == [] and out.trial is None and out.close is None
    assert link.app.unavailable == [S1, S1]
    assert len(link.store.get_events("s1")) == events
    assert "pasted" not in link.library.document("s1").to_python()["custom_state"]


def test_the_old_id_is_refused_before_the_node_heard_of_the_forget(
        open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    forget_s1(link.store)  # no refresh: the follower has not seen it yet
    link.app.change(S1, set_custom("pasted", "back again"))
    out = link.send(link.app.sync(S1))
    assert out.edits == [] and out.trial is None and link.app.unavailable == [S1]
    # A second connection asking for the old id fresh gets doc-unavailable too.
    other = Link(link.store)
    other.library = link.library
    other.open(S1)
    assert other.app.unavailable == [S1]


def test_the_old_history_cannot_be_merged_into_the_new_document(
        open_store: OpenStore) -> None:
    link = seeded_link(open_store)
    new = forget_s1(link.store)
    fresh = Link(link.store)
    fresh.library = link.library
    fresh.open(new)
    assert fresh.app.view(new)["session_key"] == "s1"
    # Merging the old document itself fails in automerge (the node's actor wrote seq 1
    # in both); a history of another root, written by anyone else, merges: refused.
    other = Document(actor_id=b"\xbb" * 16)
    with other.transaction() as tx:
        put_text(tx, ROOT, "pasted", "forgotten secret")
    fresh.app.docs[new].merge(other)
    out = fresh.send(fresh.app.sync(new))
    expect_close(out, CLOSE_POLICY)
    assert out.close is not None and "another document's history" in out.close.reason
    saved = Document.load(docs_of(link.store).saved("s1"))
    assert len(saved.get_changes([])) == 2
