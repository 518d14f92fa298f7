"""A record dated further ahead than a fast clock explains (years, not seconds), as
``clawsync openclaw import`` and ``watch`` meet it against a real node: said to be a
wrong timestamp or clock that waiting will not mend, the file and line named; and each
summary of a watch counts the records still waiting, in the order the file holds them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.openclaw.pace import AHEAD_PLAUSIBLE_MAX_S
from tests.support.openclaw import iso_ms, turn_records, watching, write_jsonl
from tests.support.processes import NodeProcess, run_cli

SID, KEY = "f0f0f0f0-0000-4000-8000-000000000001", "agent:main:explicit:far"
OTHER_SID, OTHER_KEY = "f0f0f0f0-0000-4000-8000-000000000002", "agent:main:explicit:near"
THIRD_SID, THIRD_KEY = "f0f0f0f0-0000-4000-8000-000000000003", "agent:main:explicit:third"
#: About three years ahead: no clock running fast explains it.
YEARS_MS = 3 * 365 * 86_400_000


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(tmp_path_factory.mktemp("node")) as started:
        yield started


def _lines(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def test_import_says_a_record_years_ahead_is_to_be_fixed_not_waited_for(
        tmp_path: Path, node: NodeProcess) -> None:
    assert YEARS_MS > AHEAD_PLAUSIBLE_MAX_S * 1000
    now_ms = int(time.time() * 1000)
    records = turn_records(SID, [now_ms - 2000, now_ms + YEARS_MS, now_ms - 1000])
    path = write_jsonl(tmp_path, KEY, SID, records)
    at = len(_lines(records[:2]))  # the line dated ahead
    done = run_cli(node, "openclaw", "import", "--state-dir", str(tmp_path))
    assert done.returncode == 1, done.stderr
    assert (f"{path}, line at byte {at}: dated {iso_ms(now_ms + YEARS_MS)}"
            in done.stderr), done.stderr
    assert ("more than a day ahead, which no clock running fast explains: the record's "
            "timestamp (or the clock of OpenClaw's machine, or the node's) is wrong, and "
            "waiting will not bring it in") in done.stderr, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.endswith("; 1 record is dated more than a day ahead, which waiting will "
                          "not mend: fix its timestamp or the clock (named above), then "
                          "import again"), error
    assert "import again later" not in error  # that advice would not help


def test_each_watch_summary_counts_the_records_still_waiting_in_file_order(
        tmp_path: Path, node: NodeProcess) -> None:
    now_ms = int(time.time() * 1000)
    far = turn_records(SID, [now_ms - 2000, now_ms + YEARS_MS, now_ms - 1000])
    path = write_jsonl(tmp_path, KEY, SID, far)
    near = turn_records(OTHER_SID, [now_ms - 2000])
    other = write_jsonl(tmp_path, OTHER_KEY, OTHER_SID, near)
    with watching(node, tmp_path) as (_watch, said):
        said.wait_for(f"{path}, line at byte {len(_lines(far[:2]))}: dated")
        said.wait_for("1 record waiting for the node's clock")
        # Three lines more in the other session: one that reads, one damaged, one dated
        # years ahead. Each is named in the file's order, and the summary counts them
        # all: one read, one skipped, one waiting, beside the first session's still
        # waiting.
        start = other.stat().st_size
        good = turn_records(OTHER_SID, [now_ms - 2000, now_ms - 1000])[-1]
        ahead = turn_records(OTHER_SID, [now_ms - 2000, now_ms - 1000, now_ms + YEARS_MS])[-1]
        damaged = b'{"type": "message", "id": \n'
        with other.open("ab") as file:
            file.write(_lines([good]) + damaged + _lines([ahead]))
        damaged_at = start + len(_lines([good]))
        ahead_at = damaged_at + len(damaged)
        summary = said.wait_for(" read: ")
        named = [line for line in said.seen if f"{other}, line at byte" in line]
        assert [f"byte {damaged_at}:" in named[0], f"byte {ahead_at}:" in named[1]] == [
            True, True], named
        assert summary.strip() == ("1 record read: 1 new event, 0 already stored, 1 record "
                                   "or file skipped, 2 records waiting for the node's "
                                   "clock"), summary
        # A later summary, of another session, still counts them.
        write_jsonl(tmp_path, THIRD_KEY, THIRD_SID, turn_records(THIRD_SID, [now_ms - 1000]))
        summary = said.wait_for(" read: ")
        assert summary.strip().endswith(", 2 records waiting for the node's clock"), summary
