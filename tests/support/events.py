"""The one way tests build events: ``event`` gives a sealed ``Event`` (for stores and
machines), ``event_body`` the JSON a client posts (for nodes). Both start from a valid
payload of the kind (``PAYLOADS``) and take any field to change.

    event()                                       # message_received "hello" in s1 at 1 s
    event("state_changed", 2_000, key="mood", value="calm", session="tg:alice")
    event_body(3)                                 # message_received "message 3" at BASE_MS+3
    event_body(3, content="hi", session_key="s2")
"""

from __future__ import annotations

from typing import Any

from crdt.events import Event, parse_event

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
#: The time of ``event_body(0)``: bodies carry given timestamps, so ids are reproducible.
BASE_MS = 1_700_000_000_000


def event(kind: str = "message_received", ms: int = 1_000, counter: int = 0, *,
          session: str = "s1", agent: str = "main", **payload: Any) -> Event:
    """A sealed event, through the public parser (the way every event enters a node)."""
    body = {"agent_id": agent, "hlc": [ms, counter],
            "kind": {"type": kind, **PAYLOADS.get(kind, {}), **payload}}
    sealed = parse_event(body, session_key=session)
    assert isinstance(sealed, Event)
    return sealed


def event_body(n: int = 0, *, content: str | None = None, **fields: Any) -> dict[str, Any]:
    """The JSON of a ``message_received`` event numbered ``n`` (distinct n, distinct id);
    ``fields`` replace top-level fields (``kind``, ``session_key``, ``id``, ...)."""
    body: dict[str, Any] = {
        "agent_id": "main",
        "hlc": [BASE_MS + n, 0],
        "kind": {"type": "message_received", "content": content or f"message {n}"},
    }
    body.update(fields)
    return body
