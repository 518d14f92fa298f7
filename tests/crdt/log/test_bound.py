"""Bound origins in the log (``crdt.log.bound``): the key record, signatures kept with the
events on disk (and none on events stored before), slots numbered again signed anew,
and records that only look like a key binding nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crdt import codec, device, signing
from crdt.events import Event
from crdt.log import bound
from crdt.log.records import StoredEvent
from crdt.log.store import EventStore
from crdt.membership import DEVICES_SESSION
from crdt.signing import Signer

Ev = Callable[..., Event]
KEY = device.private_key_from_seed(bytes(range(32)))
SIGNER = Signer(KEY, "laptop")


def valid(store: EventStore, origin: str) -> list[bool]:
    key = store.origin_key(origin)
    assert key is not None
    return [signing.verify(key, s.signature or b"", s.event.id, origin, s.seq)
            for s in store.origin_after(origin, 0, 100)]


def test_signatures_are_kept_on_disk_with_their_events(tmp_path: Path, ev: Ev) -> None:
    with EventStore.open(tmp_path, signer=SIGNER) as store:
        store.append_batch([ev(ms=n, content=str(n)) for n in range(1, 4)])
    with EventStore.open(tmp_path, signer=SIGNER) as store:
        assert store.node_id == SIGNER.origin(0)
        assert valid(store, store.node_id) == [True] * 4
        assert store.origin_device(store.node_id) == device.device_id(SIGNER.public_key)
        assert store.device_origins(device.device_id(SIGNER.public_key)) == {
            store.node_id: 4}


def test_a_record_stored_before_signing_reads_as_unsigned(ev: Ev) -> None:
    event = ev()
    older = codec.encode_fast([event.canonical, "0123456789abcdef", 3, 7])
    assert StoredEvent.from_record(older, event.id) == StoredEvent(
        event, 7, "0123456789abcdef", 3, None)
    signed = StoredEvent(event, 7, "0123456789abcdef", 3, bytes(64))
    assert StoredEvent.from_record(signed.to_record(), event.id) == signed


def test_events_numbered_again_under_a_bound_origin_are_signed_for_their_new_slot(
        ev: Ev) -> None:
    store = EventStore.open("memory:", signer=SIGNER)
    try:
        store.append(ev(ms=1, content="own"))
        theirs = ev(ms=2, content="a peer's")
        store.ingest([(theirs, "0123456789abcdef", 1)])
        store.renumber([theirs.id])
        assert [s.event.id for s in store.origin_after(store.node_id, 2, 10)] == [theirs.id]
        assert valid(store, store.node_id) == [True] * 3
    finally:
        store.close()


def test_a_key_record_binds_only_the_origin_its_key_derives(ev: Ev) -> None:
    record = bound.device_key(SIGNER, 0).seal(ev().timestamp)
    assert bound.read(record) == bound.Binding(
        SIGNER.origin(0), SIGNER.public_key, device.device_id(SIGNER.public_key), 0)
    for change in ({"n": 1}, {"origin": "0123456789abcdef"}, {"public_key": "AAAA"},
                   {"device_id": device.device_id(bytes(32))}):
        payload = {**record.payload, **change}
        forged = bound.device_key(SIGNER, 0)
        forged = type(forged)(forged.session_key, forged.agent_id, forged.kind, payload)
        assert bound.read(forged.seal(ev().timestamp)) is None
    store = EventStore.open("memory:")
    try:
        fake = type(bound.device_key(SIGNER, 0))(
            DEVICES_SESSION, "clawsync", bound.KIND,
            {**record.payload, "origin": "0123456789abcdef"})
        store.ingest([(fake.seal(ev().timestamp), "0123456789abcdef", 1)])
        assert store.origin_key("0123456789abcdef") is None
    finally:
        store.close()


def test_a_key_record_named_before_invisible_characters_were_refused_still_binds(
        ev: Ev) -> None:
    """A device named "laptop" with a zero-width space when such names were taken keeps
    its origin bound: else its records would count for nothing."""
    draft = bound.device_key(SIGNER, 0)
    old = type(draft)(draft.session_key, draft.agent_id, draft.kind,
                      {**draft.payload, "name": "laptop\u200b"})
    binding = bound.read(old.seal(ev().timestamp))
    assert binding is not None and binding.origin == SIGNER.origin(0)
    bad = type(draft)(draft.session_key, draft.agent_id, draft.kind,
                      {**draft.payload, "name": "lap\x1btop"})
    assert bound.read(bad.seal(ev().timestamp)) is None


def test_key_records_a_folder_stored_before_binding_bind_their_origins_when_it_opens(
        tmp_path: Path, ev: Ev) -> None:
    record = bound.device_key(SIGNER, 0).seal(ev().timestamp)
    with EventStore.open(tmp_path) as store:
        store.ingest([(record, SIGNER.origin(0), 1)])
    # As an earlier version wrote it: no bindings, and a meta record without ``origin_n``.
    with EventStore.open(tmp_path) as store:
        storage = store.log.storage
        with storage.transaction() as tx:
            tx.delete(bound.binding_key(SIGNER.origin(0)))
            raw = codec.decode(storage.get("m") or b"")
            del raw["origin_n"]
            tx.put("m", codec.encode(raw))
    with EventStore.open(tmp_path) as store:
        assert store.origin_key(SIGNER.origin(0)) == SIGNER.public_key


def test_the_key_record_is_stamped_no_later_than_the_event_it_comes_before(ev: Ev) -> None:
    """A peer holds back an event stamped too far ahead of its clock, and every later
    event of the origin with it (their signatures need the record): a record stamped by
    a clock that runs ahead must not hold back an event that is not ahead."""
    store = EventStore.open("memory:", signer=SIGNER)
    try:
        first = ev(ms=5, content="stamped long before the record is written")
        store.append(first)
        [record] = [s.event for s in store.origin_after(store.node_id, 0, 1)]
        assert record.kind == bound.KIND and record.timestamp <= first.timestamp
    finally:
        store.close()


def test_device_records_are_not_listed_as_documents(ev: Ev) -> None:
    """The ``d`` records list the sessions with a stored Automerge document."""
    store = EventStore.open("memory:", signer=SIGNER)
    try:
        store.append(ev(ms=1))
        assert store.device_origins(device.device_id(SIGNER.public_key))
        assert store.record_keys("d", "", 100) == []
    finally:
        store.close()


def test_a_reader_that_saw_an_origin_unbound_does_not_hide_a_binding_made_meanwhile(
        tmp_path: Path, ev: Ev) -> None:
    """A reader thread looks an origin up just before the writer commits its key record:
    its "unbound" must not outlive the commit (a peer's forged events of the origin would
    then be taken as unsigned)."""
    with EventStore.open(tmp_path / "a", signer=SIGNER) as a:
        a.append_batch([ev(ms=1)])
        stored = a.events_after(0, 100)
        origin = a.node_id
    with EventStore.open(tmp_path / "b") as b:
        storage, key = b.log.storage, bound.binding_key(origin)
        plain_get = storage.get
        interleaved: list[bool] = []

        def get(wanted: object) -> object:
            raw = plain_get(wanted)
            if wanted == key and not interleaved:  # the reader's read, then the commit
                interleaved.append(True)
                b.ingest([(s.event, s.origin, s.seq, s.signature) for s in stored])
            return raw

        storage.get = get  # type: ignore[method-assign]
        assert b.origin_device(origin) is None  # what the reader read, before the commit
        assert interleaved
        assert b.origin_key(origin) == SIGNER.public_key


def test_a_reader_between_the_commit_that_binds_an_origin_and_the_writers_next_step(
        tmp_path: Path, ev: Ev) -> None:
    """The writer looks the origin up in the batch that binds it (unbound so far): a
    reader thread that reads the origin's records right after that commit, before the
    writer has taken in what the batch bound, finds the origin bound (a removal by its
    device would otherwise count for nothing there)."""
    with EventStore.open(tmp_path / "a", signer=SIGNER) as a:
        a.append_batch([ev(ms=1)])
        stored = a.events_after(0, 100)
        origin = a.node_id
    with EventStore.open("memory:") as b:
        storage = b.log.storage
        plain_transaction = storage.transaction
        seen: list[str | None] = []

        @contextmanager
        def transaction() -> Iterator[Any]:
            with plain_transaction() as tx:
                yield tx
            with ThreadPoolExecutor(1) as reader:  # committed: a reader looks it up
                seen.append(reader.submit(b.origin_device, origin).result())

        storage.transaction = transaction  # type: ignore[method-assign]
        b.ingest([(s.event, s.origin, s.seq, s.signature) for s in stored])
        assert seen == [device.device_id(SIGNER.public_key)]
