"""The answer to a peer that has nothing, and the save it carries.

To a peer whose first sync message says it has nothing and reads v2 messages
(automerge 2.2 and later), automerge answers with one v2 message whose one chunk is the
whole saved document. Making that answer costs a save (a third of a second of GIL for
10,000 messages), and the answer is a function of the document alone for every such
first message seen so far, so ``layout.AutomergeDoc`` makes its saves this way and keeps
the bytes around the document: a save and every such answer then cost one save per
version of the document, not one each. A first message of another form is tried on a
small document first (``probe``), so that the first client of a form that gets the same
answer costs no save of its own after a start. (A form that gets another answer is not
remembered: it is tried again, and answered by the ordinary path.)
"""

from __future__ import annotations

import functools

from automerge.core import ROOT, Document, Message, ScalarType, SyncState

from crdt.automerge.chunks import DOCUMENT, MAGIC
from crdt.automerge.outline import summarize_sync_message

#: First messages of other automerge versions found to get the same answer as this
#: binding's own (``blank_request``); each version sends one form, so a few are kept.
SAME_ANSWER_MAX = 16
_same_answer: set[bytes] = set()


@functools.cache
def blank_request() -> bytes:
    """The first message of a peer with nothing that reads v2 messages (this binding's)."""
    message = Document().generate_sync_message(SyncState())
    assert message is not None
    return bytes(message.encode())


@functools.cache
def _probe_changes() -> bytes:
    """The one change of a small document, for ``probe``."""
    doc = Document()
    with doc.transaction() as tx:
        tx.put(ROOT, "probe", ScalarType.Int, 1)
    return b"".join(change.bytes for change in doc.get_changes([]))


def probe(request: bytes) -> None:
    """``learn`` whether ``request`` gets the same answer as ``blank_request`` by asking a
    small document: whether a first message gets the saved document depends on what it
    says (no heads, what it has, the versions it reads), not on the document, and a
    small document answers in a millisecond where a long session's answer costs a save.
    Nothing is learnt if ``request`` is not a first message (the ordinary path judges
    it) or gets another answer (the caller then asks its own document)."""
    doc = Document.load(_probe_changes())  # fresh each time: answering leaves no trace
    try:
        same = answer(doc, request) == answer(doc, blank_request())
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException:  # automerge's bare Exception, or a panic of this
        return  # throwaway document: the ordinary path, on the session's, judges the request
    learn(request, same)


def answer(doc: Document, request: bytes) -> bytes | None:
    """What ``doc`` answers to ``request``, a peer's first message (from a fresh sync
    state); automerge's bare ``Exception`` if ``request`` is not one."""
    state = SyncState()
    doc.receive_sync_message(state, Message.decode(request))
    message = doc.generate_sync_message(state)
    return None if message is None else bytes(message.encode())


def split(data: bytes) -> tuple[bytes, bytes, bytes] | None:
    """An answer's bytes before its one chunk, the chunk (a whole saved document) and
    the bytes after it; None if it carries anything else."""
    chunks = summarize_sync_message(data, changes_max=len(data)).entries
    if len(chunks) != 1 or chunks[0][:4] != MAGIC or chunks[0][8:9] != bytes([DOCUMENT]):
        return None
    at = data.index(chunks[0])
    return data[:at], chunks[0], data[at + len(chunks[0]):]


def gets_same_answer(request: bytes) -> bool | None:
    """Whether ``request`` is known to get the answer to ``blank_request``; None if
    unknown yet (``learn`` it)."""
    return True if request == blank_request() or request in _same_answer else None


def learn(request: bytes, same: bool) -> None:
    """Remember that ``request`` gets the same answer as ``blank_request``."""
    if same and len(_same_answer) < SAME_ANSWER_MAX:
        _same_answer.add(request)
