"""Which events ``clawsync append --file`` leaves out of a copy (``only_nodes_write``)."""

from __future__ import annotations

from typing import Any

from crdt.clock import Hlc
from crdt.events import Draft
from crdt.kinds import NODES_AGENT_ID
from crdt.membership import DEVICES_SESSION
from node.cli.append import only_nodes_write


def test_a_copy_leaves_out_what_only_nodes_write() -> None:
    def shown(session: str, agent: str, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        return Draft(session, agent, kind, payload, Hlc(5_000, 0)).seal().to_json()

    said = shown("s1", "main", "message_received", {"content": "hi", "attachments": []})
    assert not only_nodes_write(said)
    assert only_nodes_write({**said, "forgotten_by": "ab" * 32})
    assert only_nodes_write(shown("s1", NODES_AGENT_ID, "forget", {"events": None}))
    # A later version's kind: its record under the nodes' agent, content under another.
    assert only_nodes_write(shown(DEVICES_SESSION, NODES_AGENT_ID, "device_renamed", {}))
    assert not only_nodes_write(shown("s1", "main", "device_renamed", {}))
