"""Bad URLs: cursors, query parameters a route does not take, positions past the head,
escapes that are not UTF-8, a bad Last-Event-ID, session keys and prefixes no key could
have, on the plain routes and the live streams. Each test checks the 4xx status, that the
JSON error names the problem and the field, that nothing was written, and that the node
still serves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import yarl

from node.server.run import RunningNode
from tests.node.server.bad_input.refusals import URL, post_json, refused

EventFactory = Callable[..., dict[str, Any]]


@pytest.mark.parametrize(("path", "field", "says"), [
    (URL + "?after=-1", "after", "must be an integer from 0"),
    (URL + "?after=abc", "after", "must be an integer from 0"),
    (URL + "?limit=0", "limit", "must be an integer from 1 to 1000"),
    (URL + "?limit=100000", "limit", "must be an integer from 1 to 1000"),
    (URL + "?after=1&after=2", "after", "more than once"),
    ("/v1/sessions?after=1.5", "after", "must be an integer"),
    ("/v1/events?limit=", "limit", "must be an integer"),
    ("/v1/events?wait=nan", "wait", "seconds"),
    ("/v1/events?wait=3600", "wait", "seconds from 0 to 60"),
    ("/v1/events?after=99999999999999999999", "after", "must be an integer"),
])
async def test_bad_cursor(client: aiohttp.ClientSession, path: str, field: str,
                          says: str) -> None:
    async with client.get(path) as resp:
        await refused(resp, 400, "invalid_parameter", field, says)


@pytest.mark.parametrize(("method", "path", "field", "takes"), [
    ("GET", "/v1/events?limt=5", "limt", "after, limit, wait"),
    ("GET", URL + "?after=0&prefix=s", "prefix", "after, limit"),
    ("POST", URL + "?session=s2", "session", "none"),
    ("GET", "/v1/sessions/s1?detail=1", "detail", "none"),
    ("DELETE", "/v1/sessions/s1?reason=gdpr", "reason", "none"),  # not forgotten for "user"
    ("GET", "/v1/node?x", "x", "none"),
    ("GET", "/automerge?tokn=abc", "tokn", "token"),
])
async def test_a_query_parameter_the_route_does_not_take(
        client: aiohttp.ClientSession, event_body: EventFactory, method: str, path: str,
        field: str, takes: str) -> None:
    """A typo or a stray parameter is named, not silently the default."""
    async with client.request(method, path, json=event_body(7)) as resp:
        await refused(resp, 400, "invalid_parameter", field, f"(it takes {takes})")


async def test_the_routes_take_their_parameters_and_peers_routes_any(
        client: aiohttp.ClientSession) -> None:
    for path in ("/v1/sessions?after=0&limit=5&prefix=s&detail=1&include_cluster=0",
                 URL + "?after=0&limit=5", "/v1/events?after=0&limit=5&wait=0"):
        async with client.get(path) as resp:
            assert resp.status == 200, (path, await resp.text())
    # A newer node may call a peer route with parameters this one does not know.
    async with client.get("/peer/v1/members?since=5") as resp:
        assert resp.status != 400, await resp.text()


STREAM = {"Accept": "text/event-stream"}


@pytest.mark.parametrize(("path", "field"), [
    ("/v1/events?limit=0", "limit"), ("/v1/events?wait=abc", "wait"),
    ("/v1/events?after=-1", "after")])
async def test_a_live_stream_checks_its_parameters_too(
        client: aiohttp.ClientSession, path: str, field: str) -> None:
    async with client.get(path, headers=STREAM) as resp:
        await refused(resp, 400, "invalid_parameter", field, "must be")


@pytest.mark.parametrize(("path", "headers", "field"), [
    (URL + "?after={at}", {}, "after"),
    ("/v1/events?after={at}", {}, "after"),
    ("/v1/events?after={at}&wait=1", {}, "after"),
    ("/v1/events?after={at}", STREAM, "after"),
    ("/v1/events", {**STREAM, "Last-Event-ID": "{at}"}, "Last-Event-ID"),
])
async def test_a_position_past_the_head_is_refused(
        client: aiohttp.ClientSession, node: RunningNode, path: str,
        headers: dict[str, str], field: str) -> None:
    """Positions are each node's own: one past the head (another node's, or from before
    a restore) would skip every event stored until the head reached it."""
    head = node.astore.head

    def at(position: int) -> tuple[str, dict[str, str]]:
        return path.format(at=position), {name: value.format(at=position)
                                          for name, value in headers.items()}

    past, past_headers = at(head + 3)
    async with client.get(past, headers=past_headers) as resp:
        await refused(resp, 400, "invalid_parameter", field,
                      f"past this node's newest position ({head})")
    here, _ = at(head)
    if here != path:  # the head itself, as a page (which ends): nothing after it yet
        async with client.get(here) as resp:
            assert resp.status == 200 and (await resp.json())["events"] == []


async def test_a_session_index_past_the_last_is_refused(
        client: aiohttp.ClientSession, node: RunningNode) -> None:
    """Like positions, session indexes are each node's own: one past the last would skip
    every session created until the list reached it."""
    listed = (await node.astore.stats())["sessions"]
    async with client.get(f"/v1/sessions?after={listed + 1}") as resp:
        await refused(resp, 400, "invalid_parameter", "after",
                      f"past this node's last session index ({listed})")
    async with client.get(f"/v1/sessions?after={listed}") as resp:
        assert resp.status == 200 and (await resp.json())["sessions"] == []


@pytest.mark.parametrize("query", ["prefix=%ff", "prefix=a%C3", "after=%C3%28"])
async def test_a_query_whose_escapes_are_not_utf8_is_refused(
        client: aiohttp.ClientSession, query: str) -> None:
    # aiohttp reads "%ff" as U+FFFD, which would match the keys that start with it.
    url = client._build_url("/v1/sessions").with_query(None)
    async with client.get(yarl.URL(f"{url}?{query}", encoded=True)) as resp:
        await refused(resp, 400, "invalid_parameter", query.split("=")[0],
                      "percent-encoded UTF-8")
    async with client.get(yarl.URL(f"{url}?prefix=%EF%BF%BD", encoded=True)) as resp:
        assert resp.status == 200  # U+FFFD itself, well encoded


@pytest.mark.parametrize(("field", "value", "says"), [
    ("position", "abc", "a non-negative integer, not string"),
    ("seq", -3, "a non-negative integer, not -3"),
    ("position", True, "a non-negative integer, not boolean"),
    ("origin", [1], "a string, not array"),
    ("created", "yes", "a boolean, not string"),
    ("known_kind", 0, "a boolean, not 0"),
])
async def test_a_nodes_own_numbering_must_have_its_type(
        client: aiohttp.ClientSession, event_body: EventFactory, field: str, value: Any,
        says: str) -> None:
    """A node's output may be posted again: its numbering is ignored, but checked."""
    await post_json(client, event_body(5, **{field: value}), 400, "invalid_input",
                    f"events[0].{field}", says)


async def test_bad_last_event_id(client: aiohttp.ClientSession) -> None:
    headers = {"Accept": "text/event-stream", "Last-Event-ID": "x"}
    async with client.get("/v1/events", headers=headers) as resp:
        await refused(resp, 400, "invalid_parameter", "Last-Event-ID", "must be")


async def test_bad_session_key_in_url(client: aiohttp.ClientSession,
                                      event_body: EventFactory) -> None:
    async with client.post("/v1/sessions/a%01b/events", json=event_body(5)) as resp:
        await refused(resp, 400, "invalid_input", "session_key", "control characters")


@pytest.mark.parametrize("escaped", ["%ff", "a%C3", "%C3%28"])
async def test_a_key_whose_escapes_are_not_utf8_is_refused_everywhere(
        client: aiohttp.ClientSession, node: RunningNode, event_body: EventFactory,
        escaped: str) -> None:
    # aiohttp would hand the route "%ff" as text, the key "%25ff" names: two spellings
    # of one session, one of them a mistake.
    head = node.astore.head
    path = f"/v1/sessions/{escaped}"
    for method, suffix, body in (("POST", "/events", event_body(5)), ("GET", "", None),
                                 ("GET", "/events", None), ("DELETE", "", None),
                                 ("POST", "/forget", {"events": ["00" * 32]})):
        async with client.request(method, path + suffix, json=body) as resp:
            await refused(resp, 400, "invalid_input", "session_key",
                          "percent-encoded UTF-8")
    assert node.astore.head == head


async def test_a_prefix_that_no_key_could_start_with(client: aiohttp.ClientSession) -> None:
    async with client.get("/v1/sessions?prefix=%00") as resp:
        await refused(resp, 400, "invalid_parameter", "prefix", "control characters")
