"""crdt.log.store, property-based: every projection equals the rebuild of its events, and a
state machine of appends, ingests and restarts agrees with a plain model."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from crdt.automerge.documents import Documents
from crdt.events import Event, parse_event
from crdt.log.projection import Projection, rebuild
from crdt.log.store import EventStore
from tests.crdt.log.support import (
    all_events,
    assert_document_matches,
    by_sort_key,
    draft,
    ids,
    positions,
)

# -- property: random batches, every projection equals rebuild(get_events) -----------------

SESSIONS = ["s1", "s2", "tg:alice"]


@st.composite
def random_events(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from(["session_started", "message_received", "agent_response",
                                 "tool_result", "session_ended", "state_changed",
                                 "tool_called", "message_sent"]))
    text = st.sampled_from(["a", "b", "ü👋"])
    value = st.one_of(st.integers(0, 3), text, st.none(),
                      st.dictionaries(st.sampled_from(["", "x"]), st.integers(0, 2), max_size=2))
    fields = {
        "session_started": {"channel": text, "peer_id": text},
        "message_received": {"content": text},
        "message_sent": {"content": text, "message_id": text},
        "agent_response": {"content": text, "model": text},
        "tool_called": {"tool_name": text, "params": value},
        "tool_result": {"tool_name": text, "result": value, "success": st.booleans()},
        "session_ended": {"reason": text},
        "state_changed": {"key": st.sampled_from(["k1", "k2"]), "value": value},
    }[kind]
    event = parse_event({
        "agent_id": draw(st.sampled_from(["main", "other"])),
        "hlc": [draw(st.integers(1_000, 1_004)), draw(st.integers(0, 1))],
        "kind": {"type": kind, **draw(st.fixed_dictionaries(fields))}},
        session_key=draw(st.sampled_from(SESSIONS)))
    assert isinstance(event, Event)
    return event


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(random_events(), min_size=1, max_size=8), min_size=1, max_size=5),
       st.data())
def test_every_projection_equals_rebuild_of_its_events(batches: list[list[Event]],
                                                       data: st.DataObject) -> None:
    """On the in-memory backend, so that hypothesis can try many examples."""
    with EventStore.open("memory:") as store:
        held: list[Event] = []
        for batch in batches:
            if held:  # some events arrive again
                batch = batch + data.draw(st.lists(st.sampled_from(held), max_size=2))
            store.append_batch(batch)
            held += batch
        docs = Documents(store)
        for key in {e.session_key for e in held}:
            stored = [s.event for s in store.get_events(key)]
            assert stored == by_sort_key(e for e in held if e.session_key == key)
            assert store.get_projection(key).to_json() == rebuild(key, stored).to_json()
            assert_document_matches(docs, key)


class StoreMachine(RuleBasedStateMachine):
    """Appends, peer ingests (with gaps, reordering, relays) and restarts; after every step
    the store agrees with a model made of plain sets and dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp()
        self.store = EventStore.open(self.folder)
        self.events: dict[bytes, Event] = {}  # everything the store holds
        self.sessions: list[str] = []  # in creation order
        self.remote: dict[tuple[str, int], Event] = {}  # what each peer numbered
        self.received: set[tuple[str, int]] = set()
        self.local = 0

    @initialize()
    def check_empty(self) -> None:
        assert self.store.head == 0

    def _hold(self, event: Event) -> bool:
        """Model the store: True if the event is new."""
        if event.id in self.events:
            return False
        self.events[event.id] = event
        if event.session_key not in self.sessions:
            self.sessions.append(event.session_key)
        return True

    @rule(batch=st.lists(random_events(), min_size=1, max_size=6), data=st.data())
    def append(self, batch: list[Any], data: st.DataObject) -> None:
        batch = [*batch]
        if self.events and data.draw(st.booleans()):
            batch.append(data.draw(st.sampled_from(sorted(self.events.values(),
                                                          key=lambda e: e.id))))
        if data.draw(st.booleans()):
            batch.append(draft(data.draw(st.sampled_from(["x", "y"])),
                               data.draw(st.sampled_from(SESSIONS))))
        head = self.store.head
        results = self.store.append_batch(batch)
        for result in results:
            created = self._hold(result.stored.event)
            assert result.created == created
            if created:
                self.local += 1
                head += 1
                assert (result.stored.position, result.stored.seq) == (head, self.local)

    @rule(origin=st.sampled_from(["peerA", "peerB"]),
          seqs=st.lists(st.integers(1, 8), min_size=1, max_size=5), data=st.data())
    def ingest(self, origin: str, seqs: list[int], data: st.DataObject) -> None:
        batch = []
        for seq in seqs:
            if (origin, seq) not in self.remote:  # a peer numbers each event once
                relay = self.events and data.draw(st.booleans())
                self.remote[origin, seq] = (
                    data.draw(st.sampled_from(sorted(self.events.values(), key=lambda e: e.id)))
                    if relay else data.draw(random_events()))
            batch.append((self.remote[origin, seq], origin, seq))
        results = self.store.ingest(batch)
        for (event, origin_, seq), result in zip(batch, results, strict=True):
            assert result.created == self._hold(event)
            assert result.stored.event == event
            self.received.add((origin_, seq))

    @rule()
    def reopen(self) -> None:
        clock = self.store.clock.last
        self.store.close()
        self.store = EventStore.open(self.folder)
        assert self.store.clock.last == clock

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def document(self, data: st.DataObject) -> None:
        assert_document_matches(self.store, data.draw(st.sampled_from(self.sessions)))

    @invariant()
    def log_matches_the_model(self) -> None:
        stored = all_events(self.store)
        assert positions(stored) == list(range(1, len(self.events) + 1))
        assert set(ids(stored)) == set(self.events)

    @invariant()
    def sessions_match_the_model(self) -> None:
        assert [ref.session_key for ref in self.store.list_sessions()] == self.sessions
        for key in self.sessions:
            events = by_sort_key(e for e in self.events.values() if e.session_key == key)
            assert [s.event for s in self.store.get_events(key)] == events
            view = self.store.get_projection(key)
            assert isinstance(view, Projection)
            assert view.to_json() == rebuild(key, events).to_json()

    @invariant()
    def version_vector_matches_the_model(self) -> None:
        version = self.store.version
        for origin in ("peerA", "peerB"):
            contiguous = 0
            while (origin, contiguous + 1) in self.received:
                contiguous += 1
            assert version.get(origin, 0) == contiguous
            assert [(s.event, s.seq) for s in self.store.origin_after(origin, 0)] == [
                (self.remote[origin, seq], seq) for seq in range(1, contiguous + 1)]
        assert version.get(self.store.node_id, 0) == self.local

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.folder)


StoreMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=15,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_store_machine = StoreMachine.TestCase
