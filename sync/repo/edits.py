"""A client's changes to a session's document, turned into events or put back.

``RepoConnection`` (``sync.repo.connection``) calls these once automerge took in a sync
message with changes: ``repair`` puts back the messages and root keys any change touched
(whoever claims to have written it), ``client_edits`` turns what the client's own
changes did to ``custom_state`` and ``state`` into events, and logs what no event can
say. Apart from the protocol so that the rule of what becomes an event reads on its own.
"""

from __future__ import annotations

from typing import Any

from crdt.automerge.document import LAYOUT, Received, SessionDoc
from crdt.errors import InvalidInput
from crdt.events import Draft, Event, parse_event
from sync.repo.host import Edit, Library, Note, Outcome

LAYOUT_NAMES = frozenset(name for name, _ in LAYOUT)
#: agent_id of the events a client's edits become, for a session without one.
CLIENT_AGENT_ID = "automerge-client"
#: ``reason`` of the session_ended event a client's ``state = "ended"`` becomes.
CLIENT_END_REASON = "client"


def repair(client: str | None, session_key: str, doc: SessionDoc, received: Received,
           library: Library, out: Outcome) -> None:
    """Put back the messages the new changes touched and drop root keys of their own,
    whoever wrote them: actor ids prove nothing, so a change that claims to be another
    node's is checked like a client's. (The scalar fields and ``custom_state`` follow
    the projection again at the next catch-up.)"""
    if "messages" not in received.fields and not received.fields - LAYOUT_NAMES:
        return
    changes = doc.repair(library.messages(session_key), received.messages)
    library.record(session_key, changes)
    # What changes under client actors did is logged by client_edits; the rest came from
    # nodes (or claims to), and the client only passed it on.
    relayed = received.fields - received.client_fields
    if changes and ("messages" in relayed or relayed - LAYOUT_NAMES):
        out.notes.append(Note("warning", "automerge relayed changes put back", {
            "peer": client, "session": session_key, "fields": sorted(relayed)}))


def client_edits(client: str | None, session_key: str, doc: SessionDoc,
                 received: Received, library: Library, out: Outcome) -> None:
    """Turn a client's changes into events; log and put back what is not an edit."""
    # Only what the client changes made, and no other node took in: a relayed node
    # change shows that node's event, a client edit a node built on is its event.
    edits = doc.edits_since(received.before, received)
    context = edits.context
    agent = context.get("agent_id") or CLIENT_AGENT_ID
    drafts: list[Draft | Event] = []
    for key, value in edits.custom_state.items():
        drafts += _draft(client, session_key, agent, {"type": "state_changed", "key": key,
                                                      "value": value}, out)
    refused = {key: "deleting a key makes no event (set it to null instead)"
               for key in edits.removed}
    refused |= {key: f"{what} values cannot go into an event"
                for key, what in edits.unreadable.items()}
    if edits.state == "ended":
        drafts += _draft(client, session_key, agent, {"type": "session_ended",
                                                      "reason": CLIENT_END_REASON}, out)
    elif edits.state == "active":
        drafts += _draft(client, session_key, agent, {
            "type": "session_started", "channel": context.get("channel") or "unknown",
            "peer_id": context.get("peer_id") or "unknown"}, out)
    elif edits.state is not None:
        refused["state"] = f"{edits.state!r} has no event kind; set 'active' or 'ended'"
    # Only what changes under client actors did: the changes of nodes a client
    # relays (another node's catch-ups, which rewrite counts and messages) are no
    # edits of its own, though repair checks and puts them back all the same.
    derived = sorted(received.client_fields - {"custom_state", "state"})
    if derived:
        refused |= {name: "derived from the log; put back" for name in derived}
    if refused:
        out.notes.append(Note("warning", "automerge client edits ignored",
                              {"peer": client, "session": session_key,
                               "reasons": refused}))
    if drafts:
        library.hold(session_key)
        out.edits.append(Edit(session_key, tuple(drafts)))
        out.notes.append(Note("info", "automerge client edit", {
            "peer": client, "session": session_key,
            "kinds": [d.kind for d in drafts]}))


def _draft(client: str | None, session_key: str, agent: str, kind: dict[str, Any],
           out: Outcome) -> list[Draft | Event]:
    try:
        return [parse_event({"agent_id": agent, "kind": kind}, session_key=session_key)]
    except InvalidInput as exc:
        out.notes.append(Note("warning", "automerge client edit refused", {
            "peer": client, "session": session_key, "kind": kind["type"],
            "reason": str(exc)}))
        return []
