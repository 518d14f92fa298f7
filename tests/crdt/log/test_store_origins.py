"""crdt.log.store: events received with their (origin, seq), and this node's own numbering."""

from __future__ import annotations

from pathlib import Path

from crdt import device
from crdt.log.records import INDEX_CHUNK, META, Sealed
from crdt.log.store import EventStore
from crdt.signing import Signer
from tests.crdt.log.support import MakeEvent, all_events, ids, positions
from tests.support.storage import open_backend

# -- remote events: (origin, seq) ----------------------------------------------------------


def test_ingest_out_of_order_advances_the_version_only_over_contiguous_seqs(
        store: EventStore, ev: MakeEvent) -> None:
    remote = {seq: ev(content=f"r{seq}", ms=seq, agent="peer") for seq in range(1, 7)}

    def ingest(*seqs: int) -> None:
        store.ingest([(remote[seq], "peerA", seq) for seq in seqs])

    ingest(3, 5)
    assert store.version.get("peerA", 0) == 0
    assert store.origin_after("peerA", 0) == []
    ingest(1)
    assert store.version["peerA"] == 1
    assert ids(store.origin_after("peerA", 0)) == [remote[1].id]  # stops at the gap (2)
    ingest(2)
    assert store.version["peerA"] == 3  # 2 closed the gap up to 3
    got = store.origin_after("peerA", 0)
    assert ids(got) == [remote[s].id for s in (1, 2, 3)]
    assert [(s.origin, s.seq) for s in got] == [("peerA", 1), ("peerA", 2), ("peerA", 3)]
    assert ids(store.origin_after("peerA", 3)) == []  # 4 is missing
    ingest(6, 4)
    assert store.version["peerA"] == 6
    assert ids(store.origin_after("peerA", 2, limit=2)) == [remote[3].id, remote[4].id]
    assert positions(all_events(store)) == list(range(1, 7))  # positions by arrival
    assert store.node_id not in store.version  # nothing originated here


def test_version_vector_across_index_chunks(store: EventStore, ev: MakeEvent) -> None:
    count = INDEX_CHUNK + 10
    events = [ev(content=str(i), ms=i) for i in range(count)]
    order = list(range(count, 0, -1))  # every seq arrives before its predecessor
    store.ingest([(events[seq - 1], "peerA", seq) for seq in order[:-1]])
    assert store.version.get("peerA", 0) == 0
    store.ingest([(events[0], "peerA", 1)])
    assert store.version["peerA"] == count
    assert ids(store.origin_after("peerA", 0, limit=count)) == ids(
        store.origin_after("peerA", 0, limit=INDEX_CHUNK)) + ids(
        store.origin_after("peerA", INDEX_CHUNK, limit=count))

    # Gaps below the version (a folder that held events past a gap) and beyond it.
    store.ingest([(ev(content="far", ms=9_000), "peerA", 3 * INDEX_CHUNK + 5)])
    seqs = [1, INDEX_CHUNK - 1, INDEX_CHUNK, count, count + 1, 3 * INDEX_CHUNK + 5, 2]
    assert store.ids_at("peerA", seqs) == [store.id_at("peerA", seq) for seq in seqs]
    assert store.ids_at("peerA", seqs)[4] is None and store.ids_at("nobody", [1]) == [None]
    assert store.ids_at("peerA", []) == []


def test_an_event_under_two_origin_seq_pairs_is_stored_once(store: EventStore,
                                                             ev: MakeEvent) -> None:
    event = ev(content="relayed")
    first, second = store.ingest([(event, "peerA", 1), (event, "peerB", 1)])
    assert (first.created, second.created) == (True, False)
    assert second.stored.position == first.stored.position == 1
    assert store.head == 1
    assert store.version == {"peerA": 1, "peerB": 1}
    via_a, via_b = store.origin_after("peerA", 0), store.origin_after("peerB", 0)
    assert ids(via_a) == ids(via_b) == [event.id]
    assert (via_a[0].origin, via_a[0].seq, via_b[0].origin, via_b[0].seq) == \
        ("peerA", 1, "peerB", 1)
    assert store.get_event(event.id).origin == "peerA"  # where it came from first
    # A local event that comes back from a peer is indexed under the peer's numbering too.
    mine = store.append(ev(content="mine", ms=5)).stored
    back = store.ingest([(mine.event, "peerB", 2)])[0]
    assert back.created is False
    assert store.version["peerB"] == 2
    assert ids(store.origin_after("peerB", 1)) == [mine.event.id]


def test_origin_outgoing_reads_what_origin_after_does_but_the_content(
        backend: str, store_path: Path, ev: MakeEvent) -> None:
    """What a peer is sent: each event's bytes, id, numbering and signature as
    ``origin_after`` reads them (under a second origin too), a skeleton in full."""
    signer = Signer(device.generate(), "laptop")
    with EventStore(open_backend(backend, store_path), signer=signer) as store:
        relayed = ev(content="relayed", ms=1)
        # One event under two origins, each with its own signature: the second is read
        # from its slot, not from the event's record.
        signed = {"peerA": b"A" * 64, "peerB": b"B" * 64}
        store.ingest([(relayed, origin, 1, signature) for origin, signature in signed.items()])
        for n in range(3):
            store.append(ev(content=f"own {n}", ms=10 + n, session="s2"))
        own = store.origin_after(store.node_id, 0)
        store.forget("s2", [own[-2].event.id.hex()])
        for origin in ("peerA", "peerB", store.node_id):
            full, sent = store.origin_after(origin, 0), store.origin_outgoing(origin, 0)
            assert [(s.origin, s.seq, s.signature) for s in sent] == \
                [(s.origin, s.seq, s.signature) for s in full]
            assert all(s.signature is not None for s in sent)
            for read, stored in zip(sent, full, strict=True):
                event = stored.event
                if event.forgotten_by is None:
                    assert read.event == Sealed(event.canonical, event.id)
                else:
                    assert read.event == event
        for origin, signature in signed.items():
            assert [s.signature for s in store.origin_outgoing(origin, 0)] == [signature]
        outgoing = store.origin_outgoing(store.node_id, 0)
        assert [s.signature for s in outgoing] == [
            signer.sign(s.event.id, store.node_id, s.seq) for s in outgoing]
        assert any(s.event.forgotten_by for s in outgoing)


def test_own_events_coming_back_from_a_peer_do_not_reuse_sequence_numbers(
        store: EventStore, ev: MakeEvent) -> None:
    lost = ev(content="written here before the backup was restored", ms=1_000)
    store.ingest([(lost, store.node_id, 1)])
    new = store.append(ev(content="new", ms=2_000)).stored
    assert new.seq == 2
    assert ids(store.origin_after(store.node_id, 0)) == [lost.id, new.event.id]
    assert store.version[store.node_id] == 2


# -- own numbering ------------------------------------------------------------------------


def test_own_events_stranded_beyond_a_gap_are_numbered_again_on_open(
        tmp_path: Path, ev: MakeEvent) -> None:
    """A folder whose own numbering ran ahead of what it holds (an older version took
    numbers a peer claimed): on open, its events beyond the gap get the next numbers
    after what it holds, so that they are forwarded."""
    store = EventStore.open(tmp_path)
    store.append_batch([ev(ms=1, content="one"), ev(ms=2, content="two")])
    log = store.log
    meta = log.meta.copy()
    meta.local_seq = 5  # numbers 3-5 taken for a peer's claim, never filled
    with log.storage.transaction() as tx:
        tx.put(META, meta.to_record())
    log.meta = meta
    stranded = store.append_batch([ev(ms=3, content="six"), ev(ms=4, content="seven")])
    assert [a.stored.seq for a in stranded] == [6, 7]
    own = store.node_id
    assert store.version == {own: 2}
    store.close()
    with EventStore.open(tmp_path) as reopened:
        assert reopened.version == {own: 4}
        held = reopened.origin_after(own, 0)
        assert [s.event.id for s in held[2:]] == [a.stored.event.id for a in stranded]
        assert reopened.id_at(own, 6) is None and reopened.id_at(own, 7) is None
        assert reopened.append(ev(ms=5, content="next")).stored.seq == 5
        assert reopened.version == {own: 5}
