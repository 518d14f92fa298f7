"""Events a node refuses inside a well-formed body: an unknown kind, a missing, mistyped
or unknown field, too many in a batch, one over the size limit, an id that does not
match the content, a timestamp far ahead, a session key other than the URL's, a page
posted whole. Each test checks the 4xx status, that the JSON error names the problem and
the field, that nothing was written, and that the node still serves."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from crdt.events import EVENT_BYTES_MAX
from node.limits import Limits
from node.server.run import RunningNode
from tests.node.server.bad_input.refusals import BATCH_EVENTS_MAX, URL, post_json, refused

EventFactory = Callable[..., dict[str, Any]]
NodeFactory = Callable[..., Awaitable[RunningNode]]


async def test_unknown_kind(client: aiohttp.ClientSession, event_body: EventFactory) -> None:
    event = event_body(5, kind={"type": "teleport", "to": "mars"})
    await post_json(client, event, 400, "invalid_input", "events[0].kind.type",
                    "unknown event type 'teleport'")


async def test_missing_field(client: aiohttp.ClientSession, event_body: EventFactory) -> None:
    event = event_body(5)
    del event["agent_id"]
    await post_json(client, event, 400, "invalid_input", "events[0].agent_id", "is required")


async def test_wrongly_typed_field(client: aiohttp.ClientSession,
                                   event_body: EventFactory) -> None:
    event = event_body(5, kind={"type": "message_received", "content": 5})
    await post_json(client, event, 400, "invalid_input", "events[0].kind.content",
                    "must be a string")


@pytest.mark.parametrize(("kind", "field"), [
    ({"type": "agent_response", "content": "c", "model": "m", "tokens": {"input": 2**64}},
     "events[0].kind.tokens.input"),
    ({"type": "message_received", "content": "c",
      "attachments": [{"kind": "image", "mime_type": None, "size": 2**64}]},
     "events[0].kind.attachments[0].size"),
])
async def test_a_count_past_64_bits_is_said_to_be_out_of_range_not_negative(
        client: aiohttp.ClientSession, event_body: EventFactory, kind: dict[str, Any],
        field: str) -> None:
    await post_json(client, event_body(5, kind=kind), 400, "invalid_input", field,
                    "must be an integer from 0 to 2^64 - 1")


async def test_unknown_field(client: aiohttp.ClientSession, event_body: EventFactory) -> None:
    await post_json(client, event_body(5, colour="red"), 400, "invalid_input", "events[0]",
                    "unknown field 'colour'")


async def test_too_many_events_in_a_batch(client: aiohttp.ClientSession,
                                          event_body: EventFactory) -> None:
    events = [event_body(n) for n in range(5, 5 + BATCH_EVENTS_MAX + 1)]
    await post_json(client, events, 413, "limit_exceeded", "events",
                    f"the limit is {BATCH_EVENTS_MAX}")


async def test_event_over_the_size_limit(make_node: NodeFactory,
                                         event_body: EventFactory) -> None:
    node = await make_node()  # default body limit: the event fits the body, not the event limit
    event = event_body(5, kind={"type": "message_received",
                                "content": "x" * (EVENT_BYTES_MAX + 1)})
    async with aiohttp.ClientSession(base_url=node.url) as client:
        async with client.post(URL, json=event) as resp:
            await refused(resp, 413, "limit_exceeded", "events[0]",
                          f"the limit is {EVENT_BYTES_MAX}")
        assert node.astore.head == 0
        async with client.post(URL, json=event_body(6)) as resp:
            assert resp.status == 201


async def test_id_not_matching_content(client: aiohttp.ClientSession,
                                       event_body: EventFactory) -> None:
    await post_json(client, event_body(5, id="00" * 32), 400, "id_mismatch", "events[0].id",
                    "does not match")


async def test_one_bad_event_refuses_the_whole_batch(client: aiohttp.ClientSession,
                                                     event_body: EventFactory) -> None:
    events = [event_body(5), event_body(6), event_body(7, agent_id="")]
    await post_json(client, events, 400, "invalid_input", "events[2].agent_id", "empty")


@pytest.mark.parametrize("when", [
    {"timestamp": "9999-12-31T23:59:59.999Z"},
    {"hlc": [253_402_300_799_999, 0]},
    {"hlc": [int(time.time() * 1000) + 3 * 3_600_000, 0]},  # a device three hours fast
])
async def test_a_timestamp_far_ahead_of_the_node_clock(client: aiohttp.ClientSession,
                                                       event_body: EventFactory,
                                                       when: dict[str, Any]) -> None:
    # In a batch with a good event, so that the whole request is seen to be refused.
    late = {name: value for name, value in event_body(6).items() if name != "hlc"}
    events = [event_body(5), {**late, **when}]
    await post_json(client, events, 400, "timestamp_ahead", "events[1].timestamp",
                    "ms ahead of this node's clock")


async def test_a_timestamp_far_ahead_is_refused_with_the_nodes_bound_and_clock(
        client: aiohttp.ClientSession, event_body: EventFactory) -> None:
    """In numbers beside the words, so that a client can tell when the node will take
    the event without reading them."""
    before_ms = int(time.time() * 1000)
    late = {name: value for name, value in event_body(6).items() if name != "hlc"}
    async with client.post(URL, json=[{**late, "hlc": [before_ms + 3_600_000, 0]}]) as resp:
        after_ms = int(time.time() * 1000)
        await refused(resp, 400, "timestamp_ahead", "events[0].timestamp", "ms ahead")
        error = (await resp.json())["error"]
    assert error["bound_ms"] == Limits().clock_drift_max_ms
    assert before_ms <= error["clock_ms"] <= after_ms


async def test_session_key_in_body_differs_from_url(client: aiohttp.ClientSession,
                                                    event_body: EventFactory) -> None:
    await post_json(client, event_body(5, session_key="s2"), 400, "invalid_input",
                    "events[0].session_key", "differs from the session in the URL")


async def test_a_page_posted_whole_says_to_post_its_events(
        client: aiohttp.ClientSession, event_body: EventFactory) -> None:
    page = {"events": [event_body(5)], "next": 9, "more": False}
    await post_json(client, page, 400, "invalid_input", "events", "post its \"events\" list")
