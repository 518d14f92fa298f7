"""``GET /v1/sessions`` on a real node: the cluster's own sessions (device records,
retired origins) are left out of the list unless ``include_cluster=1`` asks for them,
stay readable by their key, and paging neither comes short nor repeats or skips a
session where they fall inside a page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import structlog

from crdt import codec
from crdt.events import parse_event
from crdt.log import reads as log_reads
from crdt.log.retire import ORIGINS_SESSION
from crdt.log.store import EventStore
from crdt.membership import DEVICES_SESSION
from crdt.storage.disk import DiskStorage
from node.server import sessions
from node.server.run import RunningNode
from tests.support.events import event, event_body
from tests.support.storage import CountedStorage

EventFactory = Callable[..., dict[str, Any]]
NodeFactory = Callable[..., Awaitable[RunningNode]]
OLD = "0123456789abcdef"
#: The sessions ``listed`` makes, in creation order: the device key record comes with the
#: first append, the retirement of ``OLD`` between the others.
ORDER = [DEVICES_SESSION, "a", "old", ORIGINS_SESSION, "b", "c"]
USERS = [key for key in ORDER if not key.startswith("clawsync:")]
#: An event the node dates now: after any forget of the tests (one dated before a forget
#: is stored forgotten).
NOW = {"agent_id": "main", "kind": {"type": "message_received", "content": "back"}}


async def get(client: aiohttp.ClientSession, path: str) -> Any:
    async with client.get(path) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


@pytest.fixture
async def listed(node: RunningNode, client: aiohttp.ClientSession,
                 event_body: EventFactory) -> aiohttp.ClientSession:
    """A node whose session list holds both cluster sessions among the users' ones."""
    async def append(key: str, n: int) -> None:
        async with client.post(f"/v1/sessions/{key}/events", json=event_body(n)) as resp:
            assert resp.status == 201, await resp.text()

    await append("a", 1)
    await node.astore.write(lambda store: store.ingest(
        [(event(ms=1_000 + n, content=f"old {n}", session="old"), OLD, n) for n in (1, 2)]))
    async with client.delete(f"/v1/origins/{OLD}") as resp:
        assert resp.status == 201, await resp.text()
    await append("b", 2)
    await append("c", 3)
    every = await get(client, "/v1/sessions?include_cluster=1")
    assert [row["session_key"] for row in every["sessions"]] == ORDER
    return client


async def walk(client: aiohttp.ClientSession, query: str, limit: int) -> list[str]:
    """Every page of the list: each one full while ``more``, and the cursor moving on."""
    keys: list[str] = []
    after = 0
    while True:
        page = await get(client, f"/v1/sessions?{query}&after={after}&limit={limit}")
        keys += [row["session_key"] for row in page["sessions"]]
        if not page["more"]:
            return keys
        assert len(page["sessions"]) == limit, page
        assert page["next"] > after
        after = page["next"]


async def test_the_cluster_sessions_are_left_out_by_default(listed: aiohttp.ClientSession
                                                            ) -> None:
    page = await get(listed, "/v1/sessions?detail=1")
    assert [row["session_key"] for row in page["sessions"]] == USERS
    assert page["more"] is False and page["next"] == ORDER.index("c") + 1
    for query in ("include_cluster=0", "include_cluster=false", "prefix=clawsync:"):
        page = await get(listed, f"/v1/sessions?{query}")
        assert [row["session_key"] for row in page["sessions"]] == \
            ([] if "prefix" in query else USERS)
    page = await get(listed, "/v1/sessions?prefix=clawsync:&include_cluster=true&detail=1")
    assert [row["session_key"] for row in page["sessions"]] == [DEVICES_SESSION,
                                                                ORIGINS_SESSION]
    assert all("state" in row for row in page["sessions"])  # with their summaries


async def test_the_node_counts_the_sessions_the_list_shows(listed: aiohttp.ClientSession
                                                           ) -> None:
    """``GET /v1/node``'s ``sessions`` is the length of the list, the cluster's own
    sessions counted apart: the console shows both figures side by side. Its
    ``sessions_live`` are those the list does not mark forgotten, as ``clawsync
    sessions`` shows them; an event after the forget counts the session again."""
    about = await get(listed, "/v1/node")
    shown = await walk(listed, "detail=0", 1000)
    every = await walk(listed, "include_cluster=1", 1000)
    assert about["sessions"] == about["sessions_live"] == len(shown) == len(USERS)
    assert about["cluster_sessions"] == len(every) - len(shown) == 2
    async with listed.delete("/v1/sessions/b") as resp:
        assert resp.status == 200, await resp.text()
    rows = (await get(listed, "/v1/sessions?detail=1"))["sessions"]
    about = await get(listed, "/v1/node")
    assert about["sessions"] == len(rows) == len(USERS)  # forgotten whole: listed still
    assert about["sessions_live"] == len([row for row in rows if not row["forgotten"]]) \
        == len(USERS) - 1
    async with listed.post("/v1/sessions/b/events", json=NOW) as resp:
        assert resp.status == 201, await resp.text()
    assert (await get(listed, "/v1/node"))["sessions_live"] == len(USERS)


def test_the_live_count_stays_within_the_sessions_listed() -> None:
    """A forgotten count that disagrees with the list (a damaged folder) gives no live
    count below 0 or above the sessions listed, and warns once."""
    live = sessions.LiveCount()
    with structlog.testing.capture_logs() as said:
        assert (live(3, 5), live(3, -2), live(3, 1), live(3, 4)) == (0, 3, 2, 0)
    assert [(line["log_level"], line["listed"], line["forgotten"]) for line in said] == [
        ("warning", 3, 5)]


async def test_a_session_read_by_its_key_says_forgotten_as_its_row_does(
        listed: aiohttp.ClientSession) -> None:
    """``GET /v1/sessions/{key}`` says ``forgotten`` beside the projection, in JSON and
    CBOR, the same as the session's ``detail=1`` row."""
    async def agree(key: str, forgotten: bool) -> None:
        [row] = (await get(listed, f"/v1/sessions?detail=1&prefix={key}"))["sessions"]
        view = await get(listed, f"/v1/sessions/{key}")
        async with listed.get(f"/v1/sessions/{key}",
                              headers={"Accept": "application/cbor"}) as resp:
            assert resp.status == 200
            binary = codec.decode(await resp.read())
        assert row["forgotten"] is view["forgotten"] is binary["forgotten"] is forgotten

    await agree("a", False)
    async with listed.delete("/v1/sessions/a") as resp:
        assert resp.status == 200, await resp.text()
    await agree("a", True)
    async with listed.post("/v1/sessions/a/events", json=NOW) as resp:
        assert resp.status == 201, await resp.text()
    await agree("a", False)


def test_a_page_with_summaries_reads_its_headers_at_once(tmp_path: Path) -> None:
    """``detail`` reads the headers of a page's sessions in one read of storage, not one
    per row: a page of 300 costs what a page of 3 does."""
    storage = CountedStorage(DiskStorage.open(tmp_path))
    with EventStore(storage) as store:
        store.append_batch([parse_event(event_body(n), session_key=f"s{n}")
                            for n in range(300)])
        store.forget("s7")
        reads = []
        for limit in (3, 300):
            storage.reads = 0
            page = sessions.session_page(store, after=0, limit=limit, prefix=None,
                                         detail=True)
            reads.append(storage.reads)
            assert [row["session_key"] for row in page["sessions"]] == \
                [f"s{n}" for n in range(limit)]
        assert reads[0] == reads[1] <= 2  # the list's entries, then their headers
        assert [row["session_key"] for row in page["sessions"] if row["forgotten"]] == ["s7"]
        assert list(page["sessions"][0]) == ["index", "session_key",
                                             *sessions.DETAIL_FIELDS]


async def test_the_cluster_sessions_stay_readable_by_key(listed: aiohttp.ClientSession
                                                         ) -> None:
    for key in (DEVICES_SESSION, ORIGINS_SESSION):
        view = await get(listed, f"/v1/sessions/{quote(key, safe='')}")
        assert view["session_key"] == key
        page = await get(listed, f"/v1/sessions/{quote(key, safe='')}/events")
        assert page["events"] and all(e["session_key"] == key for e in page["events"])


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("query", ["detail=0", "detail=1", "include_cluster=1",
                                   "prefix=&include_cluster=0"])
async def test_pages_are_full_and_neither_repeat_nor_skip(listed: aiohttp.ClientSession,
                                                          query: str, limit: int) -> None:
    wanted = ORDER if "include_cluster=1" in query else USERS
    assert await walk(listed, query, limit) == wanted


async def test_a_page_that_ends_before_a_hidden_session_says_whether_more_follow(
        listed: aiohttp.ClientSession) -> None:
    """The last user session but one fills the page; a hidden session and one more user
    session follow: ``more``, and the next page holds that one alone."""
    page = await get(listed, f"/v1/sessions?after={ORDER.index('a') + 1}&limit=1")
    assert [row["session_key"] for row in page["sessions"]] == ["old"]
    assert page["more"] is True
    rest = await get(listed, f"/v1/sessions?after={page['next']}&limit=1")
    assert [row["session_key"] for row in rest["sessions"]] == ["b"]


def test_a_page_beyond_what_the_store_reads_at_once_is_still_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node configured with ``page_max`` past the store's ``PAGE_MAX``: the list is
    read in several reads, and neither ends early nor says "no more" too soon."""
    monkeypatch.setattr(log_reads, "PAGE_MAX", 3)
    monkeypatch.setattr(sessions, "PAGE_MAX", 3)
    keys = ["a", DEVICES_SESSION, "b", "c", ORIGINS_SESSION, "d", "e"]
    with EventStore.open(tmp_path) as store:
        for key in keys:
            store.append(parse_event(event_body(len(key), content=key), session_key=key))
        # The store's own reads are limited too: its limit is looked up in crdt.log.reads,
        # not where crdt.log.store names it again.
        assert len(store.list_sessions(0, 10)) == 3
        first = sessions.session_page(store, after=0, limit=4, prefix=None, detail=False)
        assert [row["session_key"] for row in first["sessions"]] == ["a", "b", "c", "d"]
        assert first["more"] is True
        rest = sessions.session_page(store, after=first["next"], limit=4, prefix=None,
                                     detail=False)
        assert [row["session_key"] for row in rest["sessions"]] == ["e"]
        assert rest["more"] is False


async def test_a_wholly_forgotten_session_is_listed_and_said_so_where_headers_are_read(
        listed: aiohttp.ClientSession) -> None:
    """A plain page lists it as before (no header read for it); a ``detail`` row says
    ``forgotten``; an event after the forget makes it a session again."""
    async with listed.delete("/v1/sessions/b") as resp:
        assert resp.status in (200, 201), await resp.text()
    plain = await get(listed, "/v1/sessions")
    assert [row["session_key"] for row in plain["sessions"]] == USERS
    assert all(set(row) == {"index", "session_key"} for row in plain["sessions"])
    rows = {row["session_key"]: row for row in
            (await get(listed, "/v1/sessions?detail=1"))["sessions"]}
    assert rows["b"]["forgotten"] is True and rows["b"]["event_count"] == 0
    assert not any(rows[key]["forgotten"] for key in ("a", "old", "c"))
    async with listed.post("/v1/sessions/b/events", json={
            "agent_id": "main", "kind": {"type": "message_received", "content": "again"}}
            ) as resp:
        assert resp.status == 201, await resp.text()
    rows = {row["session_key"]: row for row in
            (await get(listed, "/v1/sessions?detail=1"))["sessions"]}
    assert rows["b"]["forgotten"] is False and rows["b"]["message_count"] == 1
