"""A cursor changed on the node during a pass that reads its agent, between the bridge's
read of it and its save (reset by a person, as ``import again`` or a refusal's hint says,
or saved by another bridge): the node refuses the save (``If-Match``, 412), and the
bridge reads the cursor again and goes on from the node's, never saving over it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from crdt.events import Event
from crdt.log.cursors import cursor_tag
from node.cli import openclaw_sink
from node.cli.common import CURSOR_CHANGED_EXIT
from node.cli.openclaw_sink import HttpSink
from node.client.api import Client
from node.main import main
from node.openclaw import bridge as bridge_module
from node.openclaw.bridge import Bridge
from node.openclaw.cursor_room import unmarked
from node.openclaw.held import CURSOR_CHANGED_MAX, CursorChangedTooOften
from node.openclaw.key_entries import entry_of
from node.openclaw.session_keys import keys_name
from node.openclaw.state import StateFolder, cursor_name
from node.server.run import RunningNode
from tests.node.openclaw.waiting import KEY_A, KEY_B, A, B, Clock
from tests.support.cursor_moving_node import MOVED_CURSOR_ENV, OTHER_ENTRY
from tests.support.openclaw import turn_records, write_jsonl
from tests.support.processes import NodeProcess, run_cli
from tests.support.stand_in import Quiet, serving


class ChangedMeanwhile(HttpSink):
    """A node over HTTP on which, just before the bridge's next save of cursor
    ``target`` (each save, if ``always``: its numbers one more each time), that cursor
    is saved as ``change`` by someone else."""

    target: str | None = None
    change: dict[str, int] = {}
    always = False

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.sent: list[bytes] = []  # the ids of the events of every append

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        if name == self.target:
            self.target = self.target if self.always else None
            await self.client.save_cursor(name, self.change)  # as a person's PUT: no tag
            if self.always:  # another value each time: a tag names a value
                self.change = {entry: n + 1 for entry, n in self.change.items()}
        await super().save_cursor(name, cursor)

    async def append(self, events: list[Event]) -> int:
        self.sent.extend(event.id for event in events)
        return await super().append(events)


#: A key the bridge never learns (the state folder has no such session): saved on the
#: node during a pass, it is kept in what the pass saves, not saved over.
RESET_KEYS = entry_of("set-on-the-node", "agent:main:elsewhere")


class SavedFirst(HttpSink):
    """A node over HTTP on which, just before the bridge's next save of cursor
    ``target``, ``first`` runs: another bridge's work (a pass of its own, or the same
    save)."""

    target: str | None = None

    def __init__(self, client: Client, first: Callable[[str, dict[str, int]], Awaitable[Any]]
                 ) -> None:
        super().__init__(client)
        self.first = first

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        if name == self.target:
            self.target = None
            await self.first(name, cursor)
        await super().save_cursor(name, cursor)


def times(count: int) -> list[int]:
    return [1_700_000_000_000 + n * 1000 for n in range(count)]


@asynccontextmanager
async def changed_meanwhile(state: Path, node: RunningNode,
                            tell: Callable[[str], None] = lambda _text: None
                            ) -> AsyncIterator[tuple[Client, ChangedMeanwhile, Bridge]]:
    """A client of ``node``, a ``ChangedMeanwhile`` sink over it, and a bridge reading
    the state folder ``state`` into it, telling ``tell`` (the folder closed after)."""
    folder = StateFolder(state)
    async with Client(node.url) as client:
        sink = ChangedMeanwhile(client)
        try:
            yield client, sink, Bridge(folder, sink, tell)
        finally:
            folder.close()


async def test_a_cursor_reset_during_a_pass_is_read_on_from_not_saved_over(
        tmp_path: Path, node: RunningNode) -> None:
    """Reset to import again while a pass reads new records: that pass's save is refused,
    and it reads the session again from its start (what it sends is answered as already
    stored), says so, and saves where it read up to on from the reset."""
    write_jsonl(tmp_path, KEY_A, A, turn_records(A, times(2)))
    name = cursor_name(tmp_path.resolve(), "main")
    told: list[str] = []
    async with changed_meanwhile(tmp_path, node, told.append) as (client, sink, bridge):
        await bridge.run_pass()
        first = list(sink.sent)
        read_to = await client.cursor(name)
        write_jsonl(tmp_path, KEY_A, A, turn_records(A, times(3)))
        sink.target, sink.change, sink.sent = name, {}, []
        tally = await bridge.run_pass(only_changed=True)
        assert f"the cursor {name} was changed on the node" in "\n".join(told)
        assert set(first) <= set(sink.sent)  # read again from the reset, not saved over
        assert tally.created == 1  # the new record's event; the rest already stored
        saved = await client.cursor(name)
        assert saved is not None and saved != read_to
        told.clear()
        await bridge.run_pass(only_changed=False)
        assert await client.cursor(name) == saved and told == []


async def test_a_cursor_first_saved_by_another_bridge_meanwhile_is_not_saved_over(
        tmp_path: Path, node: RunningNode) -> None:
    """The node held no cursor when the pass read it, and another bridge saved one
    before this pass's first save: that save is refused too (``If-None-Match: *``), and
    the pass reads on from the other's, said."""
    write_jsonl(tmp_path, KEY_A, A, turn_records(A, times(2)))
    name = cursor_name(tmp_path.resolve(), "main")
    told: list[str] = []
    async with changed_meanwhile(tmp_path, node, told.append) as (client, sink, bridge):
        sink.target, sink.change = name, {"db:other": 1}
        await bridge.run_pass()
        assert sink.target is None  # the other bridge saved first
        assert f"the cursor {name} was changed on the node" in "\n".join(told)
        saved = await client.cursor(name)
        assert saved is not None and saved.get("db:other") == 1  # saved on from
        assert len(unmarked(saved)) == 2  # and session A's entry


async def test_keys_reset_during_a_pass_are_read_on_from_not_saved_over(
        tmp_path: Path, node: RunningNode) -> None:
    """The keys cursor changed on the node (as a reset, to one key the bridge would never
    learn) while a pass learns a new key: the save is refused, the keys are read again
    from the node and said changed, and what the pass learns is saved on from the
    node's: that key stays."""
    write_jsonl(tmp_path, KEY_A, A, turn_records(A, times(2)))
    keys = keys_name(cursor_name(tmp_path.resolve(), "main"))
    told: list[str] = []
    async with changed_meanwhile(tmp_path, node, told.append) as (client, sink, bridge):
        await bridge.run_pass()
        sink.target, sink.change = keys, {RESET_KEYS: 1}
        write_jsonl(tmp_path, KEY_B, B, turn_records(B, times(2)))
        await bridge.run_pass(only_changed=True)
        assert sink.target is None  # the change was made
        assert f"the cursor {keys} was changed on the node" in "\n".join(told)
        saved = await client.cursor(keys)
        assert saved is not None and RESET_KEYS in saved  # not saved over
        assert any(entry.endswith(KEY_B) for entry in saved)  # and what the pass learnt


async def test_a_cursor_saved_ahead_by_another_bridge_counts_what_the_pass_stored(
        tmp_path: Path, node: RunningNode) -> None:
    """Another bridge reads the same folder further (a record more) and saves its cursor
    between this pass's append and its save: refused, the pass reads on from the
    other's, which leaves nothing to read; what its refused step read and stored is
    counted all the same (never fewer already stored than none)."""
    write_jsonl(tmp_path, KEY_A, A, turn_records(A, times(2)))
    name = cursor_name(tmp_path.resolve(), "main")
    told: list[str] = []
    folder, other_folder = StateFolder(tmp_path), StateFolder(tmp_path)
    async with Client(node.url) as client:
        other = Bridge(other_folder, HttpSink(client))

        async def other_pass(_name: str, _cursor: dict[str, int]) -> None:
            write_jsonl(tmp_path, KEY_A, A, turn_records(A, times(4)))
            await other.run_pass()

        sink = SavedFirst(client, other_pass)
        bridge = Bridge(folder, sink, told.append)
        try:
            await bridge.run_pass()
            write_jsonl(tmp_path, KEY_A, A, turn_records(A, times(3)))
            sink.target = name
            tally = await bridge.run_pass(only_changed=True)
            assert sink.target is None  # the other bridge saved first
            assert f"the cursor {name} was changed on the node" in "\n".join(told)
            assert (tally.records, tally.events, tally.created) == (1, 1, 1)
            assert await client.cursor(name) == other._held.main[name]  # not saved over
        finally:
            folder.close()
            other_folder.close()


@pytest.mark.parametrize("saved", ["cursor", "keys"])
async def test_the_same_value_saved_first_by_another_bridge_is_taken_as_its_own(
        tmp_path: Path, node: RunningNode, saved: str) -> None:
    """Another bridge saves the very value this one saves, just before it: the node
    refuses this one (a tag names a value), and the read again finds what it sent, taken
    as its own save: nothing said, the keys learnt kept, and a record that waited for
    the node's clock still waits (not tried again, nor named anew)."""
    now_ms = int(time.time() * 1000)
    write_jsonl(tmp_path, KEY_A, A, turn_records(A, [now_ms - 5000, now_ms + 3_600_000]))
    name = cursor_name(tmp_path.resolve(), "main")
    told: list[str] = []
    folder = StateFolder(tmp_path)
    async with Client(node.url) as client:
        sink = SavedFirst(client, client.save_cursor)  # no tag: saved whatever is there
        bridge = Bridge(folder, sink, told.append, monotonic=Clock())
        try:
            assert len((await bridge.run_pass()).waiting) == 1
            keys, waits = bridge._held.keys[name], dict(bridge._waits.waiting)
            told.clear()
            write_jsonl(tmp_path, KEY_B, B, turn_records(B, [1_700_000_001_000]))
            sink.target = name if saved == "cursor" else keys_name(name)
            tally = await bridge.run_pass(only_changed=True)
            assert sink.target is None  # the other bridge saved first
            assert told == [] and tally.waiting == []
            assert bridge._held.keys[name] is keys
            assert bridge._waits.waiting == waits
        finally:
            folder.close()


async def test_a_cursor_changed_at_each_save_stops_the_pass(
        tmp_path: Path, node: RunningNode, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another bridge saving the same cursor all along: the pass gives up after
    ``CURSOR_CHANGED_MAX`` refused saves, saying why, with what it did before, and
    never saves over it."""
    monkeypatch.setattr(bridge_module, "CURSOR_CHANGED_MAX", 3)
    write_jsonl(tmp_path, KEY_A, A, turn_records(A, times(2)))
    name = cursor_name(tmp_path.resolve(), "main")
    async with changed_meanwhile(tmp_path, node) as (client, sink, bridge):
        await bridge.run_pass()
        write_jsonl(tmp_path, KEY_A, A, turn_records(A, times(3)))
        sink.target, sink.change, sink.always = name, {"db:other": 1}, True
        with pytest.raises(CursorChangedTooOften) as raised:
            await bridge.run_pass(only_changed=True)
        assert raised.value.tally.created == 1  # the new record's event, stored
        assert f"the cursor {name} was changed on the node 3 times" in str(raised.value)
        assert "run one only" in str(raised.value)
        assert await client.cursor(name) == {"db:other": 3}


def with_a_bad_line(state: Path, times_ms: list[int]) -> None:
    """Session A at ``times_ms``, with a line that does not read after its first two
    records (those the first pass imports)."""
    records = turn_records(A, times_ms)
    path = write_jsonl(state, KEY_A, A, records[:3])
    path.write_bytes(path.read_bytes() + b"{not json\n"
                     + b"".join(json.dumps(record).encode() + b"\n" for record in records[3:]))


async def test_a_refused_step_counts_what_it_skipped_and_what_waits_once(
        tmp_path: Path, node: RunningNode) -> None:
    """Reset while a pass reads a line that does not read and a record the node refuses
    for its time: the refused step's problem and wait are counted (the read again from
    the reset meets the line, said already, and names the wait anew), each once."""
    write_jsonl(tmp_path, KEY_A, A, turn_records(A, times(2)))
    name = cursor_name(tmp_path.resolve(), "main")
    async with changed_meanwhile(tmp_path, node) as (_client, sink, bridge):
        await bridge.run_pass()
        with_a_bad_line(tmp_path, [*times(2), int(time.time() * 1000) + 3_600_000])
        sink.target, sink.change = name, {}
        tally = await bridge.run_pass(only_changed=True)
        assert sink.target is None  # reset
        assert (len(tally.problems), len(tally.waiting)) == (1, 1), tally


# watch runs till stopped: were the limit not kept, it would fail here, not hang.
@pytest.mark.parametrize("command", [
    "import", pytest.param("watch", marks=pytest.mark.timeout(60))])
def test_import_and_watch_stop_with_their_own_exit_when_a_cursor_changed_too_often(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    """Another import saving the same cursor all along is a set-up mistake, which
    running again does not mend: the command says what it stored, then why it stops,
    with ``CURSOR_CHANGED_EXIT`` (which the systemd unit does not restart)."""
    monkeypatch.setattr(bridge_module, "CURSOR_CHANGED_MAX", 3)
    write_jsonl(tmp_path / "state", KEY_A, A, turn_records(A, times(2)))
    name = cursor_name((tmp_path / "state").resolve(), "main")
    with NodeProcess(tmp_path) as node:
        def run(*args: str) -> Result:
            return CliRunner().invoke(main, ["--node", node.url, "openclaw", *args,
                                             "--state-dir", str(tmp_path / "state")])

        assert run("import").exit_code == 0  # the cursor is on the node: saved with its tag
        write_jsonl(tmp_path / "state", KEY_A, A, turn_records(A, times(3)))

        class ChangedTooOften(ChangedMeanwhile):
            target, change, always = name, {"db:other": 1}, True

        monkeypatch.setattr(openclaw_sink, "HttpSink", ChangedTooOften)
        result = run(command)
    assert result.exit_code == CURSOR_CHANGED_EXIT == 3, result.output
    lines = result.output.splitlines()
    # Each of the 3 reads began at the session's start (the other's cursor lacks it).
    assert lines[-2].startswith("9 records read: 1 new event, 8 already stored")
    assert lines[-1].startswith("Error: ") and lines[-1].endswith("run one only")
    assert f"the cursor {name} was changed on the node 3 times" in lines[-1]


@pytest.mark.parametrize("command", ["import", "watch"])
def test_the_command_run_as_a_process_exits_3_when_another_saves_its_cursor_each_time(
        tmp_path: Path, command: str) -> None:
    """The real command, as a process, against a node process on which another import
    saves the agent's cursor just before each of the command's saves (no timing: the
    node moves it as it takes the save, ``tests.support.cursor_moving_node``). The node
    refuses every save; the command stops after ``CURSOR_CHANGED_MAX`` of them, its exit
    status ``CURSOR_CHANGED_EXIT``, having saved over none."""
    state = tmp_path / "state"
    write_jsonl(state, KEY_A, A, turn_records(A, times(2)))
    name = cursor_name(state.resolve(), "main")
    with NodeProcess(tmp_path, program="tests.support.cursor_moving_node",
                     env={MOVED_CURSOR_ENV: name}) as node:
        result = run_cli(node, "openclaw", command, "--state-dir", str(state))
        saved = node.get(f"/v1/cursors/{name}")["cursor"]
    assert result.returncode == CURSOR_CHANGED_EXIT == 3, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"the cursor {name} was changed on the node {CURSOR_CHANGED_MAX} times" \
        in result.stderr.splitlines()[-1]
    assert saved == {OTHER_ENTRY: CURSOR_CHANGED_MAX}


@pytest.mark.parametrize("changed", ["ahead", "reset"])
def test_an_import_whose_refused_step_skipped_a_line_says_so_and_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changed: str) -> None:
    """The cursor saved ahead by another import, or reset, while a pass reads a line
    that does not read: the line is counted as skipped, and the import fails (exit 1),
    though the read again from the node's cursor does not count it (passed, or said)."""
    state = tmp_path / "state"
    write_jsonl(state, KEY_A, A, turn_records(A, times(2)))
    name = cursor_name(state.resolve(), "main")
    with NodeProcess(tmp_path) as node:
        def run() -> Result:
            return CliRunner().invoke(main, ["--node", node.url, "openclaw", "import",
                                             "--state-dir", str(state)])

        assert run().exit_code == 0
        with_a_bad_line(state, times(3))

        async def other_pass(client: Client) -> None:  # a record further
            with_a_bad_line(state, times(4))
            folder = StateFolder(state)
            try:
                await Bridge(folder, HttpSink(client)).run_pass()
            finally:
                folder.close()

        class Ahead(SavedFirst):
            def __init__(self, client: Client) -> None:
                super().__init__(client, lambda _name, _cursor: other_pass(client))
                self.target = name

        class Reset(ChangedMeanwhile):
            target, change = name, {}

        monkeypatch.setattr(openclaw_sink, "HttpSink", Ahead if changed == "ahead" else Reset)
        result = run()
    assert result.exit_code == 1, result.output
    assert f"the cursor {name} was changed on the node" in result.output
    assert "1 record or file skipped" in result.output
    assert result.output.splitlines()[-1].startswith(
        "Error: 1 record or file was skipped (named above)")


async def test_a_node_that_gives_no_tags_is_saved_to_without_a_condition() -> None:
    """A node older than cursor tags answers no ``ETag``: the sink sends no ``If-Match``
    (which such a node does not look at), so a newer bridge works with it as before."""
    sent: list[str | None] = []

    class OlderNode(Quiet):
        def do_GET(self) -> None:
            self.answer(200, {"name": "c", "cursor": {"db:s": 1}})

        def do_PUT(self) -> None:
            sent.append(self.headers.get("If-Match"))
            self.rfile.read(int(self.headers["Content-Length"]))
            self.answer(200, {"name": "c", "cursor": {"db:s": 2}})

    with serving(OlderNode) as url:
        async with Client(url) as client:
            sink = HttpSink(client)
            assert await sink.cursor("c") == {"db:s": 1}
            await sink.save_cursor("c", {"db:s": 2})
            await sink.save_cursor("c", {"db:s": 3})
    assert sent == [None, None]


async def test_each_save_names_the_tag_last_read_or_saved(node: RunningNode) -> None:
    """Against a node that gives tags: for a cursor read as absent, that it is still
    absent (``If-None-Match: *``); then the tag its read or its last save answered."""
    sent: list[Any] = []

    class Watched(Client):
        async def save_cursor(self, name: str, cursor: dict[str, int], *,
                              if_match: str | None = None, if_absent: bool = False
                              ) -> str | None:
            sent.append("absent" if if_absent else if_match)
            return await super().save_cursor(name, cursor, if_match=if_match,
                                             if_absent=if_absent)

    async with Watched(node.url) as client:
        sink = HttpSink(client)
        assert await sink.cursor("c") is None
        await sink.save_cursor("c", {"db:s": 1})
        await sink.save_cursor("c", {"db:s": 2})
        assert await sink.cursor("c") == {"db:s": 2}
        await sink.save_cursor("c", {"db:s": 3})
    tags = [f'"{cursor_tag({"db:s": n})}"' for n in (1, 2)]
    assert sent == ["absent", tags[0], tags[1]]
