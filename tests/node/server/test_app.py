"""The client API over real sockets against a real store."""

from __future__ import annotations

import asyncio
import errno
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from crdt import codec
from crdt.automerge.document import automerge_url
from crdt.log.store import EventStore
from node.headers import HINT_FIELD
from node.server.run import GC_YOUNG_OBJECTS, RunningNode
from tests.support.nodes import read_sse

EventFactory = Callable[..., dict[str, Any]]
NodeFactory = Callable[..., Awaitable[RunningNode]]

CBOR = "application/cbor"
#: A node writes its device key record (in ``DEVICES_SESSION``) at position 1, before its
#: first local event: the first event a test appends is at position 2.
FIRST = 2
ROOT = Path(__file__).resolve().parents[3]


async def post(client: aiohttp.ClientSession, key: str, body: Any) -> tuple[int, Any]:
    async with client.post(f"/v1/sessions/{quote(key, safe='')}/events", json=body) as resp:
        return resp.status, await resp.json()


async def get(client: aiohttp.ClientSession, path: str, **headers: str) -> tuple[int, Any]:
    async with client.get(path, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_healthz(client: aiohttp.ClientSession, node: RunningNode) -> None:
    status, body = await get(client, "/healthz")
    assert (status, body) == (200, {"status": "ok", "node_id": node.astore.node_id, "head": 0})


async def test_append_is_idempotent(client: aiohttp.ClientSession,
                                    event_body: EventFactory) -> None:
    status, body = await post(client, "s1", event_body(1))
    assert status == 201
    assert body["created"] == 1
    [stored] = body["events"]
    assert stored["position"] == FIRST and stored["created"] is True
    assert stored["kind"] == {"type": "message_received", "content": "message 1",
                              "attachments": []}
    status, again = await post(client, "s1", event_body(1))
    assert status == 200
    assert again["created"] == 0
    assert again["events"][0]["created"] is False
    assert again["events"][0]["id"] == stored["id"]


async def test_batch_with_some_new_is_201(client: aiohttp.ClientSession,
                                          event_body: EventFactory) -> None:
    await post(client, "s1", [event_body(1)])
    status, body = await post(client, "s1", [event_body(1), event_body(2)])
    assert status == 201
    assert [e["created"] for e in body["events"]] == [False, True]
    assert body["created"] == 1


async def test_event_without_timestamp_is_stamped(client: aiohttp.ClientSession) -> None:
    status, body = await post(client, "s1", {"agent_id": "main", "kind": {
        "type": "session_started", "channel": "telegram", "peer_id": "u1"}})
    assert status == 201
    assert body["events"][0]["hlc"][0] > 0


async def test_json_round_trip_and_paging(client: aiohttp.ClientSession,
                                          event_body: EventFactory) -> None:
    await post(client, "s1", [event_body(n) for n in range(5)])
    await post(client, "other", event_body(9))
    await post(client, "s1", event_body(5))
    seen: list[int] = []
    after = 0
    while True:
        status, page = await get(client, f"/v1/sessions/s1/events?after={after}&limit=2")
        assert status == 200
        seen += [event["position"] for event in page["events"]]
        after = page["next"]
        if not page["more"]:
            break
    assert seen == [FIRST + n for n in (0, 1, 2, 3, 4, 6)]
    status, page = await get(client, f"/v1/sessions/s1/events?after={after}")
    assert page == {"events": [], "next": FIRST + 6, "more": False}


async def test_cbor_round_trip(client: aiohttp.ClientSession, event_body: EventFactory) -> None:
    body = codec.encode([event_body(1), event_body(2)])
    headers = {"Content-Type": CBOR, "Accept": CBOR}
    async with client.post("/v1/sessions/s1/events", data=body, headers=headers) as resp:
        assert resp.status == 201
        assert resp.content_type == CBOR
        answer = codec.decode(await resp.read())
    assert answer["created"] == 2
    async with client.get("/v1/sessions/s1/events", headers={"Accept": CBOR}) as resp:
        page = codec.decode(await resp.read())
    assert [e["id"] for e in page["events"]] == [e["id"] for e in answer["events"]]
    # The same data as JSON when CBOR is not asked for.
    assert await get(client, "/v1/sessions/s1/events") == (200, page)


async def test_accept_prefers_json_on_a_tie(client: aiohttp.ClientSession) -> None:
    async with client.get("/healthz", headers={"Accept": f"{CBOR}, application/json"}) as resp:
        assert resp.content_type == "application/json"
    async with client.get("/healthz", headers={"Accept": f"application/json;q=0.5, {CBOR}"}
                          ) as resp:
        assert resp.content_type == CBOR


async def test_projection_and_automerge(client: aiohttp.ClientSession,
                                        event_body: EventFactory) -> None:
    await post(client, "s1", [event_body(1), event_body(2)])
    status, view = await get(client, "/v1/sessions/s1")
    assert status == 200
    assert view["session_key"] == "s1"
    assert view["message_count"] == 2
    assert [m["content"] for m in view["messages"]] == ["message 1", "message 2"]
    assert view["automerge_url"] == automerge_url("s1")
    async with client.get("/v1/sessions/s1/automerge") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/octet-stream"
        document = await resp.read()
    assert document[:4] == bytes([0x85, 0x6F, 0x4A, 0x83])  # Automerge's magic bytes


@pytest.mark.parametrize("path", ["/v1/sessions/nobody", "/v1/sessions/nobody/events",
                                  "/v1/sessions/nobody/automerge"])
async def test_unknown_session_is_404(client: aiohttp.ClientSession, path: str) -> None:
    status, body = await get(client, path)
    assert status == 404
    assert body["error"]["code"] == "not_found"


async def test_list_sessions_pages(client: aiohttp.ClientSession,
                                   event_body: EventFactory) -> None:
    for n, key in enumerate(["a", "b", "c"]):
        await post(client, key, event_body(n))
    # The node's device key record opened DEVICES_SESSION first (index 1): a cluster
    # session, left out of the list (``test_session_list``).
    status, page = await get(client, "/v1/sessions?limit=2")
    assert status == 200
    assert page == {"sessions": [{"index": 2, "session_key": "a"},
                                 {"index": 3, "session_key": "b"}], "next": 3, "more": True}
    assert await get(client, "/v1/sessions?after=3&limit=2") == (200, {
        "sessions": [{"index": 4, "session_key": "c"}], "next": 4, "more": False})


async def test_url_encoded_session_keys(client: aiohttp.ClientSession,
                                        event_body: EventFactory) -> None:
    keys = ["agent:main/tg chat:42", "x/events", "100%/automerge", "ключ"]
    for n, key in enumerate(keys):
        status, body = await post(client, key, event_body(n))
        assert status == 201, body
        assert body["events"][0]["session_key"] == key
    for key in keys:
        encoded = quote(key, safe="")
        status, view = await get(client, f"/v1/sessions/{encoded}")
        assert (status, view["session_key"]) == (200, key)
        status, page = await get(client, f"/v1/sessions/{encoded}/events")
        assert [e["session_key"] for e in page["events"]] == [key]
        async with client.get(f"/v1/sessions/{encoded}/automerge") as resp:
            assert resp.status == 200
    status, listing = await get(client, "/v1/sessions")
    assert [s["session_key"] for s in listing["sessions"]] == keys


async def test_node_events_long_poll_wakes_on_append(client: aiohttp.ClientSession,
                                                     event_body: EventFactory) -> None:
    await post(client, "s1", event_body(1))
    poll = asyncio.create_task(get(client, f"/v1/events?after={FIRST}&wait=30"))
    await get(client, "/healthz")  # a full round trip: the poll has reached the server
    assert not poll.done()
    await post(client, "s2", event_body(2))
    status, page = await poll
    assert status == 200
    assert [(e["position"], e["session_key"]) for e in page["events"]] == [(FIRST + 1, "s2")]
    assert page["next"] == FIRST + 1


async def test_long_poll_answers_empty_when_nothing_comes(
        client: aiohttp.ClientSession) -> None:
    status, page = await get(client, "/v1/events?after=0&wait=0.01")
    assert (status, page) == (200, {"events": [], "next": 0, "more": False})


async def test_node_events_page(client: aiohttp.ClientSession,
                                event_body: EventFactory) -> None:
    await post(client, "a", [event_body(1), event_body(2)])
    await post(client, "b", event_body(3))
    status, page = await get(client, "/v1/events?after=1&limit=1")
    assert status == 200
    assert [e["position"] for e in page["events"]] == [2]
    assert (page["next"], page["more"]) == (2, True)


async def test_sse_delivers_and_resumes(client: aiohttp.ClientSession,
                                        event_body: EventFactory) -> None:
    await post(client, "s1", event_body(1))
    headers = {"Accept": "text/event-stream"}
    async with client.get(f"/v1/events?after={FIRST - 1}", headers=headers) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        [first] = await read_sse(resp, 1)
        await post(client, "s2", event_body(2))
        [second] = await read_sse(resp, 1)
    assert (first["id"], first["event"]) == (str(FIRST), "event")
    assert '"session_key":"s1"' in first["data"]
    assert second["id"] == str(FIRST + 1)
    assert '"session_key":"s2"' in second["data"]
    await post(client, "s1", event_body(3))
    # A reconnecting EventSource repeats its URL and adds Last-Event-ID, which wins.
    resume = {**headers, "Last-Event-ID": str(FIRST + 1)}
    async with client.get("/v1/events?after=0", headers=resume) as resp:
        [third] = await read_sse(resp, 1)
    assert third["id"] == str(FIRST + 2)


async def test_sse_sends_keepalive_comments(make_node: NodeFactory) -> None:
    node = await make_node(sse_keepalive_s=0.01)
    async with aiohttp.ClientSession(base_url=node.url) as client, client.get(
            "/v1/events", headers={"Accept": "text/event-stream"}) as resp:
        assert await resp.content.readline() == b": keepalive\n"


async def test_stopping_ends_long_polls_and_streams(make_node: NodeFactory) -> None:
    node = await make_node()
    async with aiohttp.ClientSession(base_url=node.url) as client:
        poll = asyncio.create_task(get(client, "/v1/events?wait=60"))
        async with client.get("/v1/events", headers={"Accept": "text/event-stream"}) as resp:
            await get(client, "/healthz")
            await node.stop()
            assert await resp.content.read() == b""  # the stream ended cleanly
        # No news, and the node stopping: asked again after the wait of a restart.
        status, body = await poll
        assert (status, body["error"]["code"]) == (503, "unavailable")


async def test_token_is_required(make_node: NodeFactory, event_body: EventFactory) -> None:
    node = await make_node(token="s3cret")
    good = {"Authorization": "Bearer s3cret"}
    async with aiohttp.ClientSession(base_url=node.url) as client:
        for path in ["/v1/sessions", "/v1/events", "/v1/sessions/s1", "/metrics",
                     "/v1/nowhere"]:
            for headers in [{}, {"Authorization": "Bearer wrong"},
                            {"Authorization": "Basic czNjcmV0"}]:
                async with client.get(path, headers=headers) as resp:
                    assert resp.status == 401, path
                    assert resp.headers["WWW-Authenticate"] == "Bearer"
                    assert (await resp.json())["error"]["code"] == "unauthorized"
        async with client.post("/v1/sessions/s1/events", json=event_body(1)) as resp:
            assert resp.status == 401
        assert node.astore.head == 0
        async with client.post("/v1/sessions/s1/events", json=event_body(1),
                               headers=good) as resp:
            assert resp.status == 201
        assert (await get(client, "/v1/sessions", **good))[0] == 200
        async with client.get("/metrics", headers=good) as resp:
            assert resp.status == 200
        assert (await get(client, "/healthz"))[0] == 200


async def test_refused_requests_are_answered_and_counted(make_node: NodeFactory,
                                                        event_body: EventFactory) -> None:
    """The token is checked in the layer that translates errors and counts answers: a
    refusal is the JSON 401 (with its challenge), counted under the request's route."""
    node = await make_node(token="s3cret")
    good = {"Authorization": "Bearer s3cret"}
    async with aiohttp.ClientSession(base_url=node.url) as client:
        async with client.post("/v1/sessions/s1/events", json=event_body(1),
                               headers={"Authorization": "Bearer s3cre"}) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"] == "Bearer"
            assert resp.content_type == "application/json"
            assert await resp.read() == (
                b'{"error":{"code":"unauthorized","message":"a valid \'Authorization: '
                b'Bearer <token>\' is required","field":"Authorization"}}')
        async with client.get("/v1/nowhere", headers=good) as resp:
            assert resp.status == 404  # with the token, on to routing
        async with client.get("/metrics", headers=good) as resp:
            text = await resp.text()
    assert ('clawsync_http_requests_total{method="POST",route="/v1/sessions/{key}/events",'
            'status="401"} 1.0') in text
    assert 'route="unmatched",status="404"} 1.0' in text
    assert "s3cret" not in text


async def test_metrics(client: aiohttp.ClientSession, event_body: EventFactory) -> None:
    await post(client, "s1", [event_body(1), event_body(2)])
    await post(client, "s1", event_body(2))
    async with client.get("/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    # Every event stored counts, the device_key record before the first one too.
    assert f"clawsync_events_appended_total {FIRST + 1:.1f}" in text
    assert f"clawsync_commit_events_sum {FIRST + 2:.1f}" in text  # and the duplicate
    assert f"clawsync_head_position {FIRST + 1:.1f}" in text
    assert "clawsync_sessions 2.0" in text  # s1 and DEVICES_SESSION
    assert "clawsync_append_seconds_count 2.0" in text
    assert ('clawsync_http_requests_total{method="POST",route="/v1/sessions/{key}/events",'
            'status="201"} 1.0') in text
    assert ('clawsync_http_requests_total{method="POST",route="/v1/sessions/{key}/events",'
            'status="200"} 1.0') in text


async def test_unknown_route_and_method_are_json(client: aiohttp.ClientSession) -> None:
    status, body = await get(client, "/nowhere")
    assert (status, body["error"]["code"]) == (404, "not_found")
    # "Not Found" as before: an older client knows a missing route by it alone, and took
    # other words for a missing session; the route is named in the hint.
    assert (body["error"]["message"], body["error"][HINT_FIELD]) == (
        "Not Found", "this node has no route GET /nowhere; the README's \"HTTP API\" "
        "section lists the routes")
    async with client.delete("/v1/sessions") as resp:
        assert resp.status == 405
        assert "GET" in resp.headers["Allow"]
        error = (await resp.json())["error"]
        assert error["code"] == "method_not_allowed"
        assert error["message"] == ("DELETE is not a method of /v1/sessions (it takes GET, "
                                    "HEAD); the README's \"HTTP API\" section lists the "
                                    "routes")


async def test_body_without_content_type_is_json(client: aiohttp.ClientSession,
                                                 event_body: EventFactory) -> None:
    body = json.dumps(event_body(1)).encode()
    async with client.post("/v1/sessions/s1/events", data=body,
                           skip_auto_headers=["Content-Type"]) as resp:
        assert "Content-Type" not in resp.request_info.headers
        assert resp.status == 201


def address(node: RunningNode) -> tuple[str, int]:
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"])
async def test_slow_headers_are_cut_off(make_node: NodeFactory, sent: bytes) -> None:
    node = await make_node(read_timeout_s=0.05)
    reader, writer = await asyncio.open_connection(*address(node))
    writer.write(sent)  # nothing, or headers that never end
    # The server closes the connection without an answer.
    assert await reader.read() == b""
    writer.close()


async def test_connections_beyond_the_cap_wait(make_node: NodeFactory) -> None:
    node = await make_node(connections_max=2)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    held = [await asyncio.open_connection(*address(node)) for _ in range(2)]
    for reader, writer in held:  # both are being served
        writer.write(request)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    assert node.site.connections == 2
    reader, writer = await asyncio.open_connection(*address(node))  # the kernel queues it
    writer.write(request)
    with pytest.raises(TimeoutError):  # no answer while both slots are taken
        await asyncio.wait_for(reader.read(1), 0.2)
    assert node.site.connections == 2
    held[0][1].close()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    writer.close()
    held[1][1].close()


async def test_run_serves_until_sigterm(tmp_path: Path, event_body: EventFactory) -> None:
    code = ("import sys; from pathlib import Path; from node.config import Config; "
            "from node.server.run import run; "
            "run(Config(data_dir=Path(sys.argv[1]), port=0, log_format='json'))")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(tmp_path / "data"), cwd=ROOT,
        stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    line = json.loads(await process.stderr.readline())
    assert line["event"] == "serving"
    assert line["head"] == 0
    async with aiohttp.ClientSession(base_url=line["url"]) as client:
        assert (await post(client, "s1", event_body(1)))[0] == 201
    process.send_signal(signal.SIGTERM)
    rest = await process.stderr.read()
    assert await process.wait() == 0
    # Alone on loopback, it says that no other device can dial it (node.server.reach).
    assert [json.loads(x)["event"] for x in rest.splitlines()] == [
        "other devices cannot dial this node", "stopping", "stopped"]
    with EventStore.open(tmp_path / "data") as store:
        assert store.node_id == line["node_id"]
        assert store.head == FIRST


async def test_run_collects_cycles_less_often_and_never_its_startup_objects(
        tmp_path: Path) -> None:
    """A serving node runs the cycle collector only every ``GC_YOUNG_OBJECTS`` net new
    objects and leaves what it made to start out of it (``gc.freeze``): said, as the
    process ends, by a hook of its own."""
    code = ("import atexit, gc, sys; from pathlib import Path; from node.config import Config; "
            "from node.server.run import run; "
            "atexit.register(lambda: print(gc.get_threshold()[0], gc.get_freeze_count() > 0)); "
            "run(Config(data_dir=Path(sys.argv[1]), port=0, log_format='json'))")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(tmp_path / "data"), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None and process.stdout is not None
    assert json.loads(await process.stderr.readline())["event"] == "serving"
    process.send_signal(signal.SIGTERM)
    said = (await process.stdout.read()).decode().split()
    await process.stderr.read()
    assert await process.wait() == 0
    assert said == [str(GC_YOUNG_OBJECTS), "True"]


async def test_a_step_of_stop_that_fails_leaves_the_others_done(make_node: NodeFactory
                                                                ) -> None:
    """A log line that cannot be written (a full disk under stderr) while the peer links
    end: the node still stops serving, closes its store and lets go of its folder."""
    node = await make_node()
    before = address(node)
    end_links = node.gossip.stop

    async def links_end_with_a_log_error() -> None:
        # The links end (and their HTTP session closes) before the log line fails.
        await end_links()
        raise OSError(errno.ENOSPC, "No space left on device")

    node.gossip.stop = links_end_with_a_log_error  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space left"):
        await node.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection(*before)
    again = await make_node(data_dir=node.config.data_dir)  # FolderInUse if left open
    assert again.astore.node_id == node.astore.node_id


async def test_looks_at_the_tls_files_that_ended_in_error_leave_stop_whole(
        make_node: NodeFactory) -> None:
    """However the task looking at the TLS files ended, stop runs every step: it stops
    serving, closes the store and lets go of the folder, and raises nothing."""
    node = await make_node()
    before = address(node)

    async def looks_that_failed() -> None:
        raise RuntimeError("looks ended")

    node.tls_watch = asyncio.create_task(looks_that_failed())
    await asyncio.sleep(0)  # it has ended
    await node.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection(*before)
    again = await make_node(data_dir=node.config.data_dir)  # FolderInUse if left open
    assert again.astore.node_id == node.astore.node_id
