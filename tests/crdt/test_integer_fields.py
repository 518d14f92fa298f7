"""The fields of an event that are a count or a time take an integer alone: ``1.0``,
which becomes ``1`` in what is any JSON (``test_events``), is refused there, every one
alike, as the README says."""

from __future__ import annotations

from typing import Any

import pytest

from crdt.errors import InvalidInput
from crdt.events import parse_event
from tests.crdt.support import body


@pytest.mark.parametrize(("obj", "field"), [
    (body(attachments=[{"kind": "a", "size": 1.0}]), "kind.attachments[0].size"),
    (body("agent_response", tokens={"input": 1.0}), "kind.tokens.input"),
    ({**body(), "hlc": [1.0, 0]}, "hlc"),
    ({**body(), "hlc": [1, 0.0]}, "hlc"),
    ({**body(), "timestamp": 1.0}, "timestamp"),
], ids=["attachment-size", "token-count", "hlc-ms", "hlc-counter", "timestamp-ms"])
def test_a_whole_float_is_refused_where_a_field_is_an_integer(obj: dict[str, Any],
                                                              field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_event(obj, session_key="s1")
    assert type(refused.value) is InvalidInput and refused.value.field == field
