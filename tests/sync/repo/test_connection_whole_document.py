"""sync.repo.connection: a client with nothing gets the whole document, then changes."""

from __future__ import annotations

from automerge.core import Document

from crdt.automerge.document import document_id
from crdt.automerge.outline import summarize_sync_message
from sync.repo.host import CLOSE_POLICY, Outcome
from sync.repo.messages import Sync, parse_node_frame
from tests.support.automerge import App, set_custom, text_id
from tests.sync.repo.support import (
    S1,
    Link,
    OpenStore,
    docs_of,
    event,
    expect_close,
    messages,
    seed,
)

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
