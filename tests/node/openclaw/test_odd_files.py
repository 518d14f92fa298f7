"""An entry of an agent's sessions folder that is no transcript a read can take (a link
leading nowhere or in a loop, a FIFO) is said, and stops no other session of the agent:
each is imported, and followed by ``watch``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from crdt.log.store import EventStore
from node.openclaw.bridge import Bridge
from node.openclaw.state import StateFolder
from tests.node.openclaw.waiting import CountingSink, one_pass
from tests.support.openclaw import turn_records, write_jsonl

OTHER = "00000000-0000-4000-8000-00000000000b"


def links(folder: Path, kind: str) -> None:
    if kind == "dangling":
        (folder / "gone.jsonl").symlink_to("nowhere.jsonl")
    else:
        (folder / "a.jsonl").symlink_to("b.jsonl")
        (folder / "b.jsonl").symlink_to("a.jsonl")


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_a_link_leading_nowhere_stops_no_watch_of_the_folder(tmp_path: Path,
                                                            kind: str) -> None:
    """One bridge's passes over what changed, as ``watch`` runs them: the folder holds a
    link leading nowhere, or two leading to each other, beside a session; the session is
    read at the first pass, and a record it gets at the next. Before, the folder's stamp
    failed on the link at every look, and ``watch`` took the folder for unchanged: it
    read none of the agent's files, and said nothing."""
    now_ms = int(time.time() * 1000)
    records = turn_records(OTHER, [now_ms - 1000, now_ms])
    path = write_jsonl(tmp_path, "agent:main:other", OTHER, records[:2])
    links(path.parent, kind)
    folder = StateFolder(tmp_path)
    try:
        with EventStore.open("memory:") as store:
            bridge = Bridge(folder, CountingSink(store))
            first = one_pass(bridge)
            path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records))
            second = one_pass(bridge)
            assert len(store.get_events("agent:main:other")) == 3
    finally:
        folder.close()
    assert (first.records, second.records) == (2, 1)
    assert all(".jsonl: " in problem for problem in first.problems) and first.problems


@pytest.mark.timeout(60)  # before, the pass blocked till something wrote to the FIFO
def test_a_fifo_named_as_a_transcript_is_said_and_blocks_no_import(tmp_path: Path) -> None:
    """A FIFO ``fifo.jsonl`` beside a session: said not to be a regular file, at each
    pass, and the session imported, once. Before, opening it blocked the pass (every
    agent's) till something wrote to it, at every run."""
    now_ms = int(time.time() * 1000)
    path = write_jsonl(tmp_path, "agent:main:other", OTHER, turn_records(OTHER, [now_ms]))
    os.mkfifo(path.parent / "fifo.jsonl")
    folder = StateFolder(tmp_path)
    try:
        with EventStore.open("memory:") as store:
            passes = [one_pass(Bridge(folder, CountingSink(store)), only_changed=False)
                      for _ in range(2)]
    finally:
        folder.close()
    assert [tally.records for tally in passes] == [2, 0]
    assert all(tally.problems == [f"{path.parent}/fifo.jsonl: cannot be read (is not a "
                                  "regular file)"] for tally in passes)


@pytest.mark.timeout(60)
def test_a_fifo_for_the_index_is_said_and_blocks_no_import(tmp_path: Path) -> None:
    """``sessions.json`` a FIFO: the agent's transcripts wait, as for an index that does
    not read, and it is said; the pass ends. Before, it blocked reading the index."""
    now_ms = int(time.time() * 1000)
    path = write_jsonl(tmp_path, "agent:main:other", OTHER, turn_records(OTHER, [now_ms]))
    (path.parent / "sessions.json").unlink()
    os.mkfifo(path.parent / "sessions.json")
    folder = StateFolder(tmp_path)
    try:
        with EventStore.open("memory:") as store:
            tally = one_pass(Bridge(folder, CountingSink(store)), only_changed=False)
    finally:
        folder.close()
    assert tally.records == 0
    assert tally.problems == [f"{path.parent}/sessions.json: cannot be read (is not a "
                              "regular file); this agent's transcripts are read again on "
                              "the next pass"]
