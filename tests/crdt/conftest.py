"""Fixtures of the crdt tests: an event builder and real stores in temporary folders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crdt.events import Event, parse_event
from crdt.log.store import EventStore

#: A valid payload of each kind, to be overridden field by field.
PAYLOADS: dict[str, dict[str, Any]] = {
    "session_started": {"channel": "telegram", "peer_id": "user456"},
    "message_received": {"content": "hello", "attachments": []},
    "message_sent": {"content": "hi there", "message_id": "m-1"},
    "tool_called": {"tool_name": "search", "params": {"q": "weather"}},
    "tool_result": {"tool_name": "search", "result": {"temp": 21}, "success": True},
    "agent_response": {"content": "It is 21 degrees.", "model": "m1",
                       "tokens": {"input": 10, "output": 5}},
    "session_ended": {"reason": "done"},
    "state_changed": {"key": "mood", "value": "calm"},
}

MakeEvent = Callable[..., Event]


def make_event(kind: str = "message_received", ms: int = 1_000, counter: int = 0, *,
               session: str = "s1", agent: str = "main", **payload: Any) -> Event:
    """A sealed event through the public parser (the way every event enters a node)."""
    body = {"agent_id": agent, "hlc": [ms, counter],
            "kind": {"type": kind, **PAYLOADS[kind], **payload}}
    event = parse_event(body, session_key=session)
    assert isinstance(event, Event)
    return event


@pytest.fixture(scope="session")
def ev() -> MakeEvent:
    """``ev(kind, ms, counter, session=..., agent=..., **payload)`` builds a sealed event.

    Session-scoped so that hypothesis tests may use it too.
    """
    return make_event


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_path: Path) -> Iterator[EventStore]:
    """A real EventStore (real diskcache files) in a fresh folder."""
    opened = EventStore.open(store_path)
    try:
        yield opened
    finally:
        opened.close()
