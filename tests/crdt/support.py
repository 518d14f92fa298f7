"""What the tests of ``crdt.events`` share (``test_events``, ``test_canonical_bytes``):
the bodies they parse and the events they build."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crdt.events import Event
from tests.support.events import PAYLOADS

STAMP = [1_704_110_400_000, 0]
MakeEvent = Callable[..., Event]  # the ``ev`` fixture of conftest.py


def body(kind: str = "message_received", **fields: Any) -> dict[str, Any]:
    return {"agent_id": "main", "hlc": STAMP, "kind": {"type": kind, **PAYLOADS[kind], **fields}}


def nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value
