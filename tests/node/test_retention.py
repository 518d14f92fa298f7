"""node.retention: sessions too old for their rule are forgotten, with the same record on
every node that decides alone. Real stores on disk; the time is passed in."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from crdt.events import parse_event
from crdt.log import forget
from crdt.log.eventlog import EventLog
from node.retention import PAGE, check
from node.store import AsyncStore
from sync.retention import DAY_MS, parse_rules

RULES = parse_rules(["tg:*=30", "web:keep-*=3650"])
BASE_MS = 1_760_000_000_000


def events(session: str, *offsets_ms: int) -> list[Any]:
    return [parse_event({"agent_id": "main", "hlc": [BASE_MS + offset, 0], "kind": {
        "type": "message_received", "content": f"secret {session} {offset}"}},
        session_key=session) for offset in offsets_ms]


async def node_with_sessions(path: Path) -> AsyncStore:
    astore = await AsyncStore.open(path)
    await astore.append(events("tg:old", 0, 1_000) + events("tg:recent", 0, 40 * DAY_MS)
                        + events("web:keep-a", 0) + events("other", 0))
    return astore


async def forget_records(astore: AsyncStore, session: str) -> list[str]:
    found = await astore.get_events_since(session)
    return [s.event.id.hex() for s in found if s.event.kind == forget.KIND]


def test_nodes_deciding_alone_forget_the_same_sessions_alike(tmp_path: Path) -> None:
    async def run() -> None:
        now_ms = BASE_MS + 45 * DAY_MS
        a = await node_with_sessions(tmp_path / "a")
        b = await node_with_sessions(tmp_path / "b")
        try:
            assert await check(a, RULES, now_ms) == 1
            assert await check(b, RULES, now_ms) == 1
            [record] = await forget_records(a, "tg:old")
            assert await forget_records(b, "tg:old") == [record]  # the same event
            stored = (await a.read(lambda s: s.get_event(bytes.fromhex(record)))).event
            assert stored.payload["reason"] == "retention"
            assert stored.timestamp.ms == BASE_MS + 1_000 + 1  # just after the last activity
            projection = (await a.get_projection("tg:old")).to_json()
            assert projection["messages"] == []
            for kept in ("tg:recent", "web:keep-a", "other"):  # too recent, or no rule
                assert await forget_records(a, kept) == []
                assert (await a.get_projection(kept)).to_json()["messages"]
            assert await check(a, RULES, now_ms) == 0  # held already: nothing to do
            # Later, the recent session ages out too.
            assert await check(a, RULES, BASE_MS + 71 * DAY_MS) == 1
            assert len(await forget_records(a, "tg:recent")) == 1
        finally:
            await a.close()
            await b.close()

    asyncio.run(run())


def test_retention_is_off_without_rules(tmp_path: Path) -> None:
    async def run() -> None:
        astore = await node_with_sessions(tmp_path / "a")
        try:
            assert await check(astore, (), BASE_MS + 10_000 * DAY_MS) == 0
        finally:
            await astore.close()

    asyncio.run(run())


def test_more_sessions_than_a_page_are_all_checked() -> None:
    async def run() -> None:
        astore = await AsyncStore.open("memory:")  # a commit per forget: skip the fsyncs
        try:
            sessions = [f"tg:{n}" for n in range(PAGE + 1)]
            await astore.append([e for key in sessions for e in events(key, 0)])
            assert await check(astore, RULES, BASE_MS + 31 * DAY_MS) == PAGE + 1
            assert await forget_records(astore, sessions[-1])
        finally:
            await astore.close()

    asyncio.run(run())


def test_only_the_headers_of_sessions_a_rule_matches_are_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk reads keys; a header only for a session some rule may forget (the real
    reads, counted), across pages where ruled and unruled sessions interleave."""
    read: list[str] = []
    real = EventLog.session

    def counted(log: EventLog, session_key: str) -> Any:
        read.append(session_key)
        return real(log, session_key)

    async def run() -> None:
        astore = await AsyncStore.open("memory:")
        try:
            kept = [f"other:{n}" for n in range(PAGE)]
            ruled = ["tg:old", "web:keep-a", "zz:other"]
            await astore.append([e for key in [*kept, *ruled] for e in events(key, 0)])
            monkeypatch.setattr(EventLog, "session", counted)
            assert await check(astore, RULES, BASE_MS + DAY_MS) == 0  # nothing due yet
            assert sorted(read) == ["tg:old", "web:keep-a"]
            assert await check(astore, RULES, BASE_MS + 31 * DAY_MS) == 1
            assert await forget_records(astore, "tg:old")
        finally:
            await astore.close()

    asyncio.run(run())


def test_a_retention_forget_is_logged_once_as_every_forget_is(tmp_path: Path) -> None:
    """One line per forget, ``forgotten``, whoever decided it: a person searching the log
    for what was forgotten finds each forget once, with its reason and who asked."""
    async def run() -> None:
        astore = await node_with_sessions(tmp_path)
        try:
            with structlog.testing.capture_logs() as said:
                assert await check(astore, RULES, BASE_MS + 45 * DAY_MS) == 1
        finally:
            await astore.close()
        told = [line for line in said if "forgotten" in line["event"]]
        assert [(line["event"], line["session_key"], line["reason"], line["by"])
                for line in told] == [("forgotten", "tg:old", "retention", "retention")]

    asyncio.run(run())
