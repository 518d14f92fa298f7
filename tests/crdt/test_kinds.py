"""Events that evolve (``crdt.kinds``): kinds and fields this version does not know are
kept exactly, hashed, shown as such, and left out of projections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from crdt import membership
from crdt.automerge.documents import Documents
from crdt.clock import Hlc
from crdt.errors import InvalidInput, LimitExceeded
from crdt.events import Draft, Event, parse_event
from crdt.kinds import (
    DEFAULTS,
    KINDS,
    NODES_AGENT_ID,
    RECORD_KINDS,
    parse_kind,
    register_kind,
    text,
)
from crdt.log import forget, retire
from crdt.log.projection import rebuild
from crdt.log.store import EventStore
from tests.conftest import OpenStore

MakeEvent = Callable[..., Event]
NEWER = {"agent_id": "main", "hlc": [5_000, 0],
         "kind": {"type": "reaction_added", "emoji": "+1", "message_id": "m-1"}}


@pytest.fixture
def reaction_kind() -> Iterator[None]:
    """This process knows ``reaction_added`` for the test, as a newer build would."""
    register_kind("reaction_added", {"emoji": text, "message_id": text})
    yield
    KINDS.pop("reaction_added")
    DEFAULTS.pop("reaction_added", None)


def written_by_a_newer_node() -> Event:
    """The event as a node that knows ``reaction_added`` writes it."""
    return Draft("s1", "main", "reaction_added", {"emoji": "+1", "message_id": "m-1"},
                 Hlc(5_000, 0)).seal()


def test_extra_fields_of_a_known_kind_are_kept_and_hashed(ev: MakeEvent) -> None:
    plain = ev("session_ended", 1_000)
    richer = parse_event({"agent_id": "main", "hlc": [1_000, 0], "kind": {
        "type": "session_ended", "reason": "done", "openclaw": {"entry_id": "e1"}}},
        session_key="s1")
    assert isinstance(richer, Event)
    assert richer.payload["openclaw"] == {"entry_id": "e1"}
    assert richer.id != plain.id  # part of the content
    assert Event.from_canonical(richer.canonical) == richer
    assert richer.to_json()["kind"]["openclaw"] == {"entry_id": "e1"}
    assert rebuild("s1", [richer]).to_json() == rebuild("s1", [plain]).to_json() | {
        "last_event_id": richer.id.hex()}


def test_a_kind_this_version_does_not_know_is_kept_byte_for_byte() -> None:
    newer = written_by_a_newer_node()
    again = Event.from_canonical(newer.canonical)
    assert again == newer and not again.known
    assert again.to_json()["known_kind"] is False


def test_a_client_posts_an_unknown_kind_only_as_a_copy_with_its_id() -> None:
    with pytest.raises(InvalidInput, match="unknown event type 'reaction_added'"):
        parse_event(NEWER, session_key="s1")  # a mistyped kind looks just like this
    exported = written_by_a_newer_node().to_json()  # what a newer node's API answers
    copied = parse_event(exported, session_key="s1")
    assert copied == written_by_a_newer_node()
    with pytest.raises(InvalidInput, match="does not match"):
        parse_event({**exported, "kind": {**exported["kind"], "emoji": "-1"}},
                    session_key="s1")


@pytest.mark.parametrize(("kind", "error"), [
    ("bad\nkind", InvalidInput), ("x" * 300, LimitExceeded), ("", InvalidInput)])
def test_an_unknown_kind_copied_with_its_id_still_has_a_name(
        kind: str, error: type[InvalidInput]) -> None:
    """A kind this version knows was checked when it was registered; one it does not
    know is checked as it comes, even with the id its content hashes to."""
    content = Draft("s1", "main", kind, {}, Hlc(5_000, 0)).seal()
    with pytest.raises(InvalidInput) as raised:
        parse_event({"agent_id": "main", "hlc": [5_000, 0], "id": content.id.hex(),
                     "kind": {"type": kind}}, session_key="s1")
    assert type(raised.value) is error and raised.value.field == "kind.type"


def test_a_later_versions_record_kind_is_never_taken_from_a_client() -> None:
    """A kind this version does not know, under the nodes' own agent, is a later
    version's record, which the nodes that know it act on: refused even as a copy."""
    assert {membership.AGENT_ID, forget.AGENT_ID, retire.AGENT_ID} == {NODES_AGENT_ID}
    record = Draft(membership.DEVICES_SESSION, NODES_AGENT_ID, "device_renamed",
                   {"device_id": "x", "name": "forged"}, Hlc(5_000, 0)).seal()
    exported = record.to_json()  # as this version shows it: known_kind false
    assert exported["known_kind"] is False
    with pytest.raises(InvalidInput, match="'device_renamed' under the agent 'clawsync' is "
                       "a record of a later version") as raised:
        parse_event(exported)
    assert raised.value.field == "kind.type"
    assert parse_event(exported, records_ok=True) == record  # reading a node's own output
    # The same kind under an agent's id is a later version's session content: a copy.
    content = Draft("s1", "main", "device_renamed", record.payload, Hlc(5_000, 0)).seal()
    assert parse_event(content.to_json()) == content


def test_a_registered_kind_is_known(reaction_kind: None) -> None:
    event = parse_event(NEWER, session_key="s1")
    assert isinstance(event, Event) and event.known
    assert event == written_by_a_newer_node()
    assert "known_kind" not in event.to_json()
    with pytest.raises(InvalidInput, match=r"kind\.emoji: is required"):
        parse_event({**NEWER, "kind": {"type": "reaction_added", "message_id": "m"}},
                    session_key="s1")
    with pytest.raises(ValueError, match="known already"):
        register_kind("reaction_added", {})


def test_projections_skip_what_they_do_not_know(ev: MakeEvent) -> None:
    events = [ev("message_received", 1_000), ev("session_ended", 2_000)]
    newer = written_by_a_newer_node()  # the latest event of the session
    assert rebuild("s1", [*events, newer]).to_json() == rebuild("s1", events).to_json()
    with EventStore.open("memory:") as store:
        store.append_batch([events[0], newer, events[1]])
        view = store.get_projection("s1").to_json()
        assert view == rebuild("s1", events).to_json()
        assert view["event_count"] == 2
        assert [s.event.id for s in store.get_events_since("s1", 0)] == [
            events[0].id, newer.id, events[1].id]  # in the log all the same
        document = Documents(store).document("s1").to_python()
        assert document["event_count"] == 2 and len(document["messages"]) == 1


def test_a_node_that_learns_the_kind_counts_it(ev: MakeEvent, reaction_kind: None) -> None:
    newer = written_by_a_newer_node()
    view = rebuild("s1", [ev("message_received", 1_000), newer]).to_json()
    assert view["event_count"] == 2 and view["last_event_id"] == newer.id.hex()


@pytest.mark.parametrize(("payload", "field"), [
    ({"emoji": 5}, None),  # unknown kinds: any JSON value...
    ({"": "x"}, "payload field name"),  # ...under a name
    ({"emoji": float("nan")}, "payload.emoji"),
])
def test_unknown_kinds_still_hold_names_and_json(payload: dict[str, Any],
                                                 field: str | None) -> None:
    draft = Draft("s1", "main", "reaction_added", payload, Hlc(1, 0))
    if field is None:
        assert Event.from_canonical(draft.seal().canonical).payload == payload
        return
    with pytest.raises(InvalidInput) as caught:
        Event.from_canonical(draft.seal().canonical)
    assert caught.value.field == field


def test_a_kind_with_a_field_named_type_keeps_and_checks_its_extra_fields() -> None:
    """``type`` names the kind and is also this kind's own field: the one extra field
    beside it is still kept, and a bad name still refused."""
    register_kind("typed_thing", {"type": text})
    try:
        assert parse_kind({"type": "typed_thing", "extra": 1})[1]["extra"] == 1
        with pytest.raises(InvalidInput, match="control characters"):
            parse_kind({"type": "typed_thing", "bad\x00name": 1})
    finally:
        KINDS.pop("typed_thing")
        DEFAULTS.pop("typed_thing", None)


@pytest.mark.parametrize("kind", [{}, {"content": "hi"}])
def test_a_kind_without_its_type_is_told_the_type_is_required(kind: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match=r"^kind\.type: is required: one of session_started, "
                                           r"message_received,") as error:
        parse_kind(kind)
    assert error.value.field == "kind.type" and "None" not in str(error.value)


def test_the_records_nodes_write_are_known_and_never_taken_from_a_client(
        open_store: OpenStore) -> None:
    assert {membership.DEVICE_KEY, membership.DEVICE_ADDED,
                            membership.DEVICE_REMOVED, membership.TOKEN_ISSUED,
                            membership.TOKEN_REVOKED, forget.KIND, retire.KIND} == RECORD_KINDS
    store = open_store("a")
    said = store.append(parse_event({"agent_id": "main", "kind": {
        "type": "message_received", "content": "my address"}}, session_key="s1"))
    record = store.forget("s1", [said.stored.event.id.hex()])
    forgotten, shown = (event.to_json() for event in store.get_events_since("s1"))
    # Shown as a kind this version knows (only a newer version's kinds are marked).
    assert shown["kind"]["type"] == forget.KIND and "known_kind" not in shown
    # A copy of the record, with its id, would be acted on where it is stored: refused.
    with pytest.raises(InvalidInput, match="'forget' records are written by nodes") as raised:
        parse_event(shown, session_key="s1")
    assert raised.value.field == "kind.type"
    assert shown["id"] == record.stored.event.id.hex()
    with pytest.raises(InvalidInput, match="the event was forgotten") as raised:
        parse_event(forgotten, session_key="s1")
    assert raised.value.field == "forgotten_by"
    with pytest.raises(InvalidInput, match="'forget' records are written by nodes"):
        parse_event({"agent_id": "main", "kind": {"type": "forget", "events": []}},
                    session_key="s1")  # not a copy: the same answer, not "unknown type"
    with pytest.raises(ValueError, match="known already"):
        register_kind(forget.KIND, {})


def test_a_nodes_record_reads_back_from_its_json_when_asked(open_store: OpenStore) -> None:
    """What a node shows (``GET .../events``) is read back, records included, by those
    that check a node's log, never by the API that takes a client's events."""
    store = open_store("a")
    said = store.append(parse_event({"agent_id": "main", "kind": {
        "type": "message_received", "content": "hi"}}, session_key="s1"))
    record = store.forget("s1", [said.stored.event.id.hex()]).stored.event
    again = parse_event(record.to_json(), records_ok=True)
    assert again == record
