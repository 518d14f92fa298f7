"""What a bridge that follows a state folder for long (``watch``) holds: the readers of
the stores still there, each agent's cursors as the node holds them, and what was said
of what the stores hold now; of an agent deleted, a cursor changed on the node, or a
file still being written at ever new places, nothing piles up."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from crdt.log.store import EventStore
from node.cli.openclaw_sink import EmbeddedSink
from node.openclaw.bridge import Bridge
from node.openclaw.state import StateFolder
from tests.node.openclaw.waiting import KEY_A, A, one_pass
from tests.support.openclaw import database_path, turn_records, write_jsonl, write_sessions


def held_open(path: Path) -> list[str]:
    """The files of ``path`` (a SQLite database: its WAL and shared memory too) this
    process holds open, deleted ones included, as ``/proc/self/fd`` names them."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor, closed since
        if target.startswith(str(path)):
            held.append(target)
    return held


def records(session_id: str, count: int = 2) -> list[dict[str, object]]:
    return turn_records(session_id, [1_700_000_000_000 + n * 1000 for n in range(count)])


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc/self/fd")
@pytest.mark.parametrize("deleted", ["agent", "database"])
def test_the_store_of_a_deleted_agent_is_closed_and_forgotten(tmp_path: Path,
                                                              deleted: str) -> None:
    """Its SQLite file deleted (or its agent's whole folder), the connection to it is
    closed at the next pass, not held while ``watch`` runs (its disk space taken)."""
    write_sessions(tmp_path, {(KEY_A, A): records(A)})
    database = database_path(tmp_path)
    folder = StateFolder(tmp_path)
    with EventStore.open("memory:") as store:
        bridge = Bridge(folder, EmbeddedSink(store))
        try:
            assert one_pass(bridge, only_changed=False).records > 0
            assert held_open(database)  # kept open while watching
            shutil.rmtree(database.parent if deleted == "database" else
                          tmp_path / "agents" / "main")
            one_pass(bridge)
            assert held_open(database) == []
        finally:
            folder.close()


def test_a_file_still_being_written_is_remembered_as_it_is_now(tmp_path: Path) -> None:
    """A line still being written, said once each time it is at another byte, is
    remembered only as long as it is met: a file that grows for long leaves one text
    held, not one per place it was ever cut at."""
    told: list[str] = []
    folder = StateFolder(tmp_path)
    with EventStore.open("memory:") as store:
        bridge = Bridge(folder, EmbeddedSink(store), told.append)
        try:
            written = records(A, 5)
            for n in range(1, 5):  # each pass: the line cut before completed, another cut
                write_jsonl(tmp_path, KEY_A, A, written[:n],
                            tail=json.dumps(written[n]).encode()[:10])
                one_pass(bridge, only_changed=n > 1)
                one_pass(bridge)  # met again: not said again
            cut = [text for text in told if "ends without a newline" in text]
            assert len(cut) == len(set(cut)) == 4
            assert len(bridge._told) == 1  # the line cut now
        finally:
            folder.close()
