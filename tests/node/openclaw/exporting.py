"""What the tests of where ``clawsync openclaw export`` writes share: a transcript's
events written into a data folder as a device of the cluster may write them, a
transcript made from them, and the files under a folder (to see that nothing was
written)."""

from __future__ import annotations

import os
from pathlib import Path

from crdt.log.store import EventStore
from node.openclaw.mapping import SessionRef, events_for
from node.openclaw.records import Transcript, transcripts_for
from node.openclaw.session_names import session_key_for
from tests.node.openclaw import transcript

KEY = transcript.SESSION_KEY


def stored(data: Path, agent_id: str, session_id: str) -> str:
    """A transcript's events, as OpenClaw's import would make them but for its ids,
    written into the data folder ``data`` (as a device of the cluster may write them);
    the clawsync session key they are under."""
    records = transcript.records()[:3]
    records[0] = {**records[0], "id": session_id}
    with EventStore.open(data) as store:
        for record in records:
            for event in events_for(record, SessionRef(agent_id, KEY, session_id)).events:
                store.append(event)
    return session_key_for(agent_id, KEY)


def files_under(folder: Path) -> set[Path]:
    return {Path(root) / name for root, folders, names in os.walk(folder)
            for name in [*folders, *names]}


def nothing_written(tmp_path: Path, before: set[Path], data: Path, state: Path) -> None:
    """No file appeared under ``tmp_path`` since ``before`` but the node's own in
    ``data``: none outside, none in the state folder's ``agents``."""
    assert {path for path in files_under(tmp_path) - before
            if not path.is_relative_to(data)} == set()
    assert list((tmp_path / "outside").iterdir()) == []
    assert list((state / "agents").iterdir()) == []


def a_transcript(agent_id: str = "main", session_id: str = transcript.SESSION_ID
                 ) -> Transcript:
    records = transcript.records()
    records[0] = {**records[0], "id": session_id}
    events = [event for record in records
              for event in events_for(record, SessionRef("main", KEY, "s")).events]
    (made,) = transcripts_for(events)
    return Transcript(agent_id, KEY, session_id, made.records)

