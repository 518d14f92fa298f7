"""Trying a client's sync message on a copy of a document, before the node applies it.

Some changes are cheap to send and dear to apply (thousands of conflicting writes to one
key, list insertions that each skip past a long run of concurrent ones, nesting that
grows with every message). ``try_sync_message`` does what the node would do with one
message, on a document loaded from saved bytes, so that a host can run it in a process
it may kill: if the copy takes too long or too much memory, the live document is never
touched. A pure function of bytes; the limits and the process are the host's.

>>> from crdt.automerge.document import EMPTY_FIELDS, SessionDoc, node_actor
>>> node = SessionDoc.new("s1", node_actor("n1"))
>>> _ = node.update(dict(EMPTY_FIELDS, session_key="s1"), [], {})
>>> try_sync_message(node.save(), b"\\x42\\x00\\x00\\x00\\x00", node_actor("n1")) is None
True

Changes that pass come back with the document they make (``Tried``), so that the node
takes it instead of applying them again: what a message costs to apply is spent in the
worker only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crdt.automerge.document import DEPTH_MAX, Received, SessionDoc, new_sync_state
from crdt.errors import CrdtError, InvalidInput

#: Deepest nesting, counted from the document's root, a client's changes may leave.
#: Events carry values ``DEPTH_MAX`` deep under ``custom_state``; deeper ones are not
#: edits (the node puts them back) but tolerated up to twice that. The bound keeps
#: nesting from growing with every message until reading the document breaks.
NESTING_MAX = 2 * DEPTH_MAX + 1


@dataclass(frozen=True, slots=True)
class Tried:
    """Changes that passed: the document with them (``after``, saved bytes) and what they
    did to it (``received``), for ``SessionDoc.receive_tried`` to take instead of
    applying them again."""

    after: bytes
    received: Received


def try_sync_message(saved: bytes, data: bytes, actor: bytes,
                     generation: str | None = None) -> str | Tried | None:
    """Apply ``data`` to the document in ``saved`` (written by ``actor``, of the session's
    forget ``generation``) and read what the node reads of it; the reason the changes
    must be refused, or what they did (None if they changed nothing, or if automerge
    refused them: the node's own attempt then refuses them the same way, at the cost
    this one just took).
    """
    doc = SessionDoc.load(saved, actor, generation)
    try:
        received = doc.receive_sync_message(new_sync_state(), data)
    except InvalidInput:
        return None
    if not received.changes or received.refusal is not None:
        return None  # the node refuses them (after applying them: at most this cost)
    try:
        if received.from_client:
            doc.edits_since(received.before, received)
        depth = nesting(doc.to_python())
    except CrdtError:  # too deep for the reader's recursion, for one
        return "the document could not be read back after these changes"
    if depth > NESTING_MAX:
        return f"values nested {depth} deep; the limit is {NESTING_MAX}"
    return Tried(doc.save(), received)


def nesting(value: Any) -> int:
    """How deep maps and lists nest in ``value`` (a scalar: 0), without recursion.

    >>> nesting({"a": [1, {"b": {}}]}), nesting("text")
    (4, 0)
    """
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (item.values() if isinstance(item, dict)
                    else item if isinstance(item, list) else None)
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest
