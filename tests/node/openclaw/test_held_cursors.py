"""When ``watch`` reads an agent's cursors from the node (``node.openclaw.held``): not at
the looks that only find a record still waiting for the node's clock, and a save of its
own whose answer was lost is not taken for a change made on the node."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from crdt.log.store import EventStore
from node.cli.openclaw_sink import EmbeddedSink
from node.client.errors import ClientError
from node.openclaw.bridge import Bridge
from node.openclaw.pace import AHEAD_RETRY_MAX_S, POLL_S
from node.openclaw.state import StateFolder, cursor_name
from tests.node.openclaw.waiting import DRIFT_MS, KEY_A, KEY_B, A, B, Clock, CountingSink, one_pass
from tests.support.openclaw import turn_records, write_jsonl, write_sessions


class GetCounting(CountingSink):
    """Counts the cursors read from it."""

    gets = 0

    async def cursor(self, name: str) -> dict[str, int] | None:
        self.gets += 1
        return await super().cursor(name)


class LostAnswer(EmbeddedSink):
    """Takes each save, but the answer to the one of cursor ``lose`` never comes."""

    lose: str | None = None

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        await super().save_cursor(name, cursor)
        if name == self.lose:
            self.lose = None
            raise ClientError("the connection was reset")


def test_looks_that_find_only_a_record_waiting_read_no_cursor(tmp_path: Path) -> None:
    """A record dated an hour ahead waits: the looks before its retry is due read
    nothing of the node's cursors; the look that tries it again reads them once."""
    now_ms = int(time.time() * 1000)
    write_sessions(tmp_path, {(KEY_A, A): turn_records(A, [now_ms - 5000, now_ms + 3_600_000])})
    clock = Clock()
    folder = StateFolder(tmp_path)
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        sink = GetCounting(store)
        bridge = Bridge(folder, sink, monotonic=clock)
        try:
            assert len(one_pass(bridge).waiting) == 1
            gets = sink.gets
            for _ in range(50):  # 10 s of watch, nothing changed, before its retry
                clock.now_s += POLL_S
                one_pass(bridge)
            assert sink.gets == gets
            clock.now_s += AHEAD_RETRY_MAX_S
            one_pass(bridge)
            assert sink.gets == gets + 2  # its cursor and its keys'
        finally:
            folder.close()


@pytest.mark.parametrize("lost", ["cursor", "keys"])
def test_a_save_whose_answer_was_lost_is_not_a_change_on_the_node(tmp_path: Path,
                                                                   lost: str) -> None:
    """The node took a save, but its answer never came: the next pass finds that
    cursor on the node and reads on from it silently, the keys learnt kept, and a record
    that waited for the node's clock still waits (not tried again, nor named anew)."""
    now_ms = int(time.time() * 1000)
    write_jsonl(tmp_path, KEY_A, A, turn_records(A, [now_ms - 5000, now_ms + 3_600_000]))
    name = cursor_name(tmp_path.resolve(), "main")
    told: list[str] = []
    folder = StateFolder(tmp_path)
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        sink = LostAnswer(store)
        bridge = Bridge(folder, sink, told.append, monotonic=Clock())
        try:
            assert len(one_pass(bridge, only_changed=False).waiting) == 1
            keys, waits = bridge._held.keys[name], dict(bridge._waits.waiting)
            write_jsonl(tmp_path, KEY_B, B, turn_records(B, [1_700_000_001_000]))
            sink.lose = name if lost == "cursor" else f"{name}:keys"
            with pytest.raises(ClientError):
                one_pass(bridge)
            assert one_pass(bridge).waiting == []
            assert not any("was changed on the node" in text for text in told)
            assert bridge._held.keys[name] is keys
            assert bridge._waits.waiting == waits
        finally:
            folder.close()
