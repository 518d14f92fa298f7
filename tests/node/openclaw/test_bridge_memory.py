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

from crdt.log.cursors import read_cursor, save_cursor
from crdt.log.store import EventStore
from node.cli.openclaw_sink import EmbeddedSink, HttpSink
from node.client.api import Client
from node.client.errors import ClientError
from node.openclaw.bridge import Bridge
from node.openclaw.cursor_room import unmarked
from node.openclaw.key_entries import entry_of
from node.openclaw.session_keys import keys_name
from node.openclaw.state import StateFolder, cursor_name
from node.server.run import RunningNode
from tests.node.openclaw.waiting import KEY_A, A, B, one_pass
from tests.support.openclaw import (
    database_path,
    turn_records,
    write_jsonl,
    write_sessions,
)


class DownSink(EmbeddedSink):
    """An embedded store that cannot be reached while ``down``."""

    down = False

    async def cursor(self, name: str) -> dict[str, int] | None:
        if self.down:
            raise ClientError("the node cannot be reached")
        return await super().cursor(name)


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
    closed at the next pass, not held while ``watch`` runs (its disk space taken), and
    its agent's cursors are no longer held (the node keeps them)."""
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
            assert bridge._held.main == {} and bridge._held.keys == {}
        finally:
            folder.close()


async def test_keys_saved_empty_on_the_node_while_watching_are_not_saved_back(
        tmp_path: Path, node: RunningNode) -> None:
    """The keys cursor saved empty on the node (as ``refused_keys_hint`` says) while a
    bridge watches: the bridge reads on with the node's, and saves what it learns next
    without the keys it held before (a file its index no longer names among them)."""
    state = tmp_path / "state"
    write_jsonl(state, KEY_A, A, records(A))
    name = keys_name(cursor_name(state.resolve(), "main"))
    told: list[str] = []
    folder = StateFolder(state)
    async with Client(node.url) as client:
        bridge = Bridge(folder, HttpSink(client), told.append)
        try:
            await bridge.run_pass()
            assert entry_of(A, KEY_A) in (await client.cursor(name) or {})
            await client.save_cursor(name, {})
            write_jsonl(state, KEY_A, B, records(B))  # /new: the key names B, not A
            await bridge.run_pass(only_changed=True)
            saved = await client.cursor(name) or {}
            assert entry_of(B, KEY_A) in saved and entry_of(A, KEY_A) not in saved
            assert f"the cursor {name} was changed on the node" in "\n".join(told)
        finally:
            folder.close()


async def test_the_node_sink_forgets_the_tags_of_agents_deleted(tmp_path: Path,
                                                               node: RunningNode) -> None:
    """The tags a node sink keeps of each cursor it read or saved (to save on condition)
    are those of the agents there now: a ``watch`` that sees agents come and go for long
    holds no tag of one deleted. One that comes back is read again, and saved on its
    tag as the node holds it."""
    state = tmp_path / "state"
    folder = StateFolder(state)
    async with Client(node.url) as client:
        sink = HttpSink(client)
        bridge = Bridge(folder, sink)
        try:
            for n in range(3):
                agent = f"bot{n}"
                write_jsonl(state, KEY_A, A, records(A), agent_id=agent)
                assert (await bridge.run_pass(only_changed=True)).created > 0
                name = cursor_name(state.resolve(), agent)
                assert set(sink._tags) == {name, keys_name(name)}
                shutil.rmtree(state / "agents" / agent)
                await bridge.run_pass(only_changed=True)
                assert sink._tags == {} and sink._absent == set()
            write_jsonl(state, KEY_A, A, records(A, 3), agent_id="bot0")  # back, grown
            again = await bridge.run_pass(only_changed=True)
            assert again.created == 1 and again.records == 1
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


def test_a_cursor_reset_on_the_node_while_watching_is_read_from(tmp_path: Path) -> None:
    """The agent's cursor saved empty on the node (to import again) while a bridge
    watches: its next pass reads the agent from the start, as the node's cursor says,
    not on from where the bridge had read to; what was stored is answered as stored."""
    write_jsonl(tmp_path, KEY_A, A, records(A))
    name = cursor_name(tmp_path.resolve(), "main")
    told: list[str] = []
    folder = StateFolder(tmp_path)
    with EventStore.open("memory:") as store:
        bridge = Bridge(folder, EmbeddedSink(store), told.append)
        try:
            first = one_pass(bridge, only_changed=False)
            save_cursor(store, name, {})
            path = write_jsonl(tmp_path, KEY_A, A, records(A, 3))  # one more record
            again = one_pass(bridge)
            assert again.records == first.records + 1 and again.created == 1
            assert unmarked(read_cursor(store, name) or {}) == {f"jsonl:{A}": path.stat().st_size}
            assert f"the cursor {name} was changed on the node" in "\n".join(told)
        finally:
            folder.close()


def test_a_store_whose_cursors_could_not_be_read_is_read_at_the_next_pass(
        tmp_path: Path) -> None:
    """The node down as a pass reads the cursors of a store that changed: the next pass
    reads that store, though it changed no more since."""
    write_jsonl(tmp_path, KEY_A, A, records(A))
    folder = StateFolder(tmp_path)
    with EventStore.open("memory:") as store:
        sink = DownSink(store)
        bridge = Bridge(folder, sink)
        try:
            one_pass(bridge, only_changed=False)
            write_jsonl(tmp_path, KEY_A, A, records(A, 3))
            sink.down = True
            with pytest.raises(ClientError):
                one_pass(bridge)
            sink.down = False
            assert one_pass(bridge).created == 1
        finally:
            folder.close()
