"""The web console's files and the API it reads (``/v1/node``, ``GET /v1/sessions``'s
filter and summaries), over real sockets against a real store."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from crdt.events import parse_event
from crdt.log.store import EventStore
from node.console import static_files
from node.folder import FolderSize, folder_bytes
from node.server import sessions
from node.server.run import RunningNode

EventFactory = Callable[..., dict[str, Any]]
NodeFactory = Callable[..., Awaitable[RunningNode]]
TOKEN = "console-token"

#: What the page loads, by name and the content type it must come with.
FILES = {"console.js": "text/javascript", "api.js": "text/javascript",
         "dom.js": "text/javascript", "devices.js": "text/javascript",
         "sessions.js": "text/javascript", "session.js": "text/javascript",
         "transcript.js": "text/javascript",
         "console.css": "text/css"}


async def append(client: aiohttp.ClientSession, key: str, body: Any,
                 **headers: str) -> None:
    async with client.post(f"/v1/sessions/{quote(key, safe='')}/events", json=body,
                           headers=headers) as resp:
        assert resp.status == 201, await resp.text()


async def test_the_page_and_its_files_need_no_token(make_node: NodeFactory) -> None:
    node = await make_node(token=TOKEN)
    async with aiohttp.ClientSession(base_url=node.url) as client:
        async with client.get("/") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
            assert resp.headers["Cache-Control"] == "no-cache"
            assert "script-src" not in resp.headers["Content-Security-Policy"]  # self only
            assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
            page = await resp.text()
        assert 'data-testid="token-form"' in page
        for name, content_type in FILES.items():
            async with client.get(f"/console/{name}") as resp:
                assert resp.status == 200, name
                assert resp.headers["Content-Type"] == f"{content_type}; charset=utf-8"
                assert resp.headers["Cache-Control"] == "no-cache"
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
                assert resp.headers["ETag"]
        # ... while the data behind them does.
        async with client.get("/v1/node") as resp:
            assert resp.status == 401


async def test_every_file_the_console_loads_is_served(client: aiohttp.ClientSession) -> None:
    """The page's script and stylesheet, and every module a script imports."""
    async with client.get("/") as resp:
        wanted = set(re.findall(r'(?:src|href)="/console/([\w.]+)"', await resp.text()))
    for name in FILES:
        if name.endswith(".js"):
            source = (static_files() / name).read_text()
            wanted |= set(re.findall(r'from "\./([\w.]+)"', source))
    assert wanted == set(FILES)
    for name in wanted:
        async with client.get(f"/console/{name}") as resp:
            assert resp.status == 200, name


async def test_a_known_version_is_not_sent_again(client: aiohttp.ClientSession) -> None:
    async with client.get("/console/console.js") as resp:
        etag = resp.headers["ETag"]
    async with client.get("/console/console.js", headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304
        assert await resp.read() == b""
    async with client.get("/console/console.js", headers={"If-None-Match": '"old"'}) as resp:
        assert resp.status == 200
        assert await resp.read() == (static_files() / "console.js").read_bytes()


@pytest.mark.parametrize("path", ["/console/nothing.js", "/console/..%2Fconsole.py",
                                  "/console/%2E%2E%2F__init__.py", "/console/"])
async def test_only_the_console_files_are_served(client: aiohttp.ClientSession,
                                                 path: str) -> None:
    async with client.get(path) as resp:
        assert resp.status == 404
        error = (await resp.json())["error"]
    # The console's own refusal keeps its words; "/console/" matches no route at all.
    assert (error["code"], error["message"]) == (
        ("not_found", "Not Found") if path == "/console/" else
        ("not_found", "no such console file"))


async def test_node_answers_what_it_is_and_holds(client: aiohttp.ClientSession,
                                                 node: RunningNode,
                                                 event_body: EventFactory) -> None:
    await append(client, "tg:alice", [event_body(1), event_body(2)])
    await append(client, "tg:bob", event_body(3))
    async with client.get("/v1/node") as resp:
        assert resp.status == 200
        about = await resp.json()
    assert about["node_id"] == node.astore.node_id
    # Three events and the device key record before them, in DEVICES_SESSION: a session
    # of the cluster's own, which the session list (and so this count) leaves out.
    assert (about["head"], about["events"], about["sessions"]) == (3 + 1, 3 + 1, 2)
    assert about["cluster_sessions"] == 1
    assert isinstance(about["name"], str) and about["name"]
    assert about["storage_bytes"] > 0  # the SQLite file at least


async def test_a_log_kept_elsewhere_counts_in_the_storage_size(
        make_node: NodeFactory, tmp_path: Path, event_body: EventFactory) -> None:
    """With --storage DIR the log is not in the data folder: its bytes count too."""
    node = await make_node(storage=str(tmp_path / "log"))
    async with aiohttp.ClientSession(base_url=node.url) as client:
        await append(client, "tg:alice", [event_body(1)])
        async with client.get("/v1/node") as resp:
            about = await resp.json()
    assert about["storage_bytes"] >= folder_bytes(tmp_path / "log") > 0


async def test_node_needs_the_token_when_the_node_has_one(make_node: NodeFactory) -> None:
    node = await make_node(token=TOKEN)
    async with aiohttp.ClientSession(base_url=node.url) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with client.get("/v1/node", headers=headers) as resp:
                assert resp.status == 401
        async with client.get("/v1/node", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 200
            assert (await resp.json())["node_id"] == node.astore.node_id


async def test_folder_size_is_measured_again_only_after_its_period(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10)
    size = FolderSize(tmp_path, ttl_s=3600)
    assert await size.bytes() == 10
    (tmp_path / "b").write_bytes(b"x" * 5)
    assert await size.bytes() == 10  # still the measured value
    assert await FolderSize(tmp_path, ttl_s=0).bytes() == 15


async def test_sessions_filter_by_prefix_with_summaries(client: aiohttp.ClientSession,
                                                        event_body: EventFactory) -> None:
    for key in ("tg:alice", "web:bob", "tg:carol", "tg:dave"):
        await append(client, key, event_body(len(key)))
    async with client.get("/v1/sessions?prefix=tg:&limit=2&detail=1") as resp:
        page = await resp.json()
    assert [row["session_key"] for row in page["sessions"]] == ["tg:alice", "tg:carol"]
    assert page["more"] is True
    first = page["sessions"][0]
    assert (first["state"], first["message_count"], first["event_count"]) == ("active", 1, 1)
    assert first["last_activity"].endswith("Z")
    async with client.get(f"/v1/sessions?prefix=tg:&limit=2&after={page['next']}") as resp:
        rest = await resp.json()
    assert [row["session_key"] for row in rest["sessions"]] == ["tg:dave"]
    assert rest["more"] is False
    assert "state" not in rest["sessions"][0]  # summaries only when asked for
    async with client.get("/v1/sessions?prefix=&detail=true") as resp:  # empty: all
        rows = (await resp.json())["sessions"]
    assert [row["session_key"] for row in rows] == ["tg:alice", "web:bob", "tg:carol",
                                                    "tg:dave"]
    assert all(row["state"] == "active" for row in rows)


@pytest.mark.parametrize(("query", "status"), [
    ("detail=yes", 400), ("detail=1&detail=0", 400), ("prefix=a&prefix=b", 400),
    ("prefix=%01", 400), ("prefix=" + "k" * 513, 413), ("prefix=tg&limit=0", 400),
    ("include_cluster=yes", 400), ("include_cluster=1&include_cluster=1", 400),
    ("include_cluster=", 400)])
async def test_bad_session_list_parameters_are_refused(client: aiohttp.ClientSession,
                                                       query: str, status: int) -> None:
    async with client.get(f"/v1/sessions?{query}") as resp:
        assert resp.status == status
        body = await resp.json()
    assert body["error"]["field"] in ("detail", "prefix", "limit", "include_cluster")
    assert body["error"]["field"] in query


def test_a_filtered_page_stops_after_scan_max(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A prefix that matches little reads a bounded part of the list per request, and
    the cursor goes on from where it stopped."""
    monkeypatch.setattr(sessions, "SCAN_MAX", 4)
    monkeypatch.setattr(sessions, "SCAN_STEP", 3)
    with EventStore.open(tmp_path) as store:
        for n in range(10):
            key = "match" if n == 7 else f"other{n}"
            store.append(parse_event({"agent_id": "main", "kind": {
                "type": "message_received", "content": "hi"}}, session_key=key))
        found, after, reads = [], 0, 0
        while True:
            page = sessions.session_page(store, after=after, limit=5, prefix="match",
                                         detail=False)
            reads += 1
            found += [row["session_key"] for row in page["sessions"]]
            assert page["next"] > after or not page["more"]
            after = page["next"]
            if not page["more"]:
                break
    assert found == ["match"]
    assert reads == 3  # 4 + 4 + 2 entries
