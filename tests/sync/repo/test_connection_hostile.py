"""sync.repo.connection: hostile clients, each closed with the code that says why, with
nothing stored."""

from __future__ import annotations

import pytest
from automerge.core import Document

from crdt.automerge.document import document_id, node_actor
from sync.repo.config import Access, RepoLimits
from sync.repo.host import CLOSE_INVALID, CLOSE_POLICY, CLOSE_PROTOCOL, CLOSE_TOO_BIG
from tests.support.automerge import App, set_custom, text_id
from tests.sync.repo.support import (
    S1,
    Link,
    OpenStore,
    docs_of,
    expect_close,
    messages,
    seed,
    seeded_link,
)

# --- hostile clients ------------------------------------------------------------------

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
    from crdt.automerge.document import SessionDoc

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
