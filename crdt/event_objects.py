"""Events and drafts made without their frozen dataclasses' ``__init__``, which sets each
field through ``object.__setattr__`` at about twice the cost: a peer's catch-up makes
hundreds of thousands of events, and every event a client posts is parsed into a draft.

``crdt.events`` defines both classes and makes them with what ``event_maker`` and
``draft_maker`` return: it hands the classes over, as this module cannot import them
(``crdt.events`` imports it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

from crdt.clock import Hlc

#: ``crdt.events.Event`` or ``Draft``, named here without importing them.
Event = TypeVar("Event")
Draft = TypeVar("Draft")

#: ``Hlc(ms, counter)`` is ``new_hlc(Hlc, (ms, counter))``, without the Python-level
#: ``__new__`` a named tuple has.
new_hlc = tuple.__new__
_new_object = object.__new__

#: Each class's fields in order: the slots its maker sets (checked against the class).
EVENT_FIELDS = ("session_key", "agent_id", "timestamp", "kind", "payload", "canonical",
                "id", "forgotten_by")
DRAFT_FIELDS = ("session_key", "agent_id", "kind", "payload", "timestamp", "claimed_id",
                "_parts")


def event_maker(event_type: type[Event]) -> Callable[
        [str, str, Hlc, str, dict[str, Any], bytes, bytes], Event]:
    """``new_event(session_key, ..., event_id)``, which is ``Event(session_key, ...,
    event_id)``: not forgotten."""
    (set_session_key, set_agent_id, set_timestamp, set_kind, set_payload, set_canonical,
     set_id, set_forgotten_by) = _setters(event_type, EVENT_FIELDS)

    def new_event(session_key: str, agent_id: str, timestamp: Hlc, kind: str,
                  payload: dict[str, Any], canonical: bytes, event_id: bytes) -> Event:
        event = _new_object(event_type)
        set_session_key(event, session_key)
        set_agent_id(event, agent_id)
        set_timestamp(event, timestamp)
        set_kind(event, kind)
        set_payload(event, payload)
        set_canonical(event, canonical)
        set_id(event, event_id)
        set_forgotten_by(event, None)
        return event

    return new_event


def draft_maker(draft_type: type[Draft]) -> Callable[
        [str, str, str, dict[str, Any], Hlc | None, bytes | None], Draft]:
    """``new_draft(session_key, ..., claimed_id)``, which is ``Draft(session_key, ...,
    claimed_id)``: its canonical parts not encoded yet."""
    (set_session_key, set_agent_id, set_kind, set_payload, set_timestamp, set_claimed_id,
     set_parts) = _setters(draft_type, DRAFT_FIELDS)

    def new_draft(session_key: str, agent_id: str, kind: str, payload: dict[str, Any],
                  timestamp: Hlc | None, claimed_id: bytes | None) -> Draft:
        draft = _new_object(draft_type)
        set_session_key(draft, session_key)
        set_agent_id(draft, agent_id)
        set_kind(draft, kind)
        set_payload(draft, payload)
        set_timestamp(draft, timestamp)
        set_claimed_id(draft, claimed_id)
        set_parts(draft, None)
        return draft

    return new_draft


def _setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of ``cls``'s fields, in order: as its ``__init__`` sets them."""
    assert tuple(f.name for f in fields(cls)) == names, f"update the maker of {cls.__name__}"
    return tuple(cls.__dict__[name].__set__ for name in names)
