"""What the tests of ``crdt.automerge.document`` share: actors, a session's fields and
messages as the projection writes them, JSON values to store, and a client's merge of
nodes' documents."""

from __future__ import annotations

from typing import Any

from automerge.core import Document
from hypothesis import strategies as st

from crdt.automerge.document import EMPTY_FIELDS, SessionDoc

ACTOR_A, ACTOR_B, ACTOR_C, ACTOR_D = (bytes([n]) * 16 for n in (0xA1, 0xB2, 0xC3, 0xD4))


def fields(**values: Any) -> dict[str, Any]:
    return {**EMPTY_FIELDS, "session_key": "s1", **values}


def message(key: str, content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"key": key, "id": key * 2, "timestamp": "2026-01-01T00:00:00.000Z",
            "role": "inbound", "content": content, **extra}


def merged(*docs: SessionDoc) -> SessionDoc:
    """What a client holds after syncing with each of these nodes."""
    into = Document.load(docs[0].save())
    for doc in docs[1:]:
        into.merge(Document.load(doc.save()))
    return SessionDoc.load(into.save(), ACTOR_D)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(min_size=1, max_size=4), inner, max_size=4),
    max_leaves=12)
