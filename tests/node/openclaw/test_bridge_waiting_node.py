"""A record a node refuses for its time, over HTTP from a real node: the bridge tries it
again when the node's clock should take it, from the bound and clock the refusal gives as
numbers, or (from a node that gives only its words) from its words."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from crdt.events import Event
from node.cli.openclaw_sink import HttpSink
from node.client.api import Client
from node.client.errors import ClientError
from node.openclaw.bridge import Bridge
from node.openclaw.pace import AHEAD_RETRY_MAX_S, AHEAD_RETRY_MIN_S
from node.openclaw.state import StateFolder
from node.server.run import RunningNode
from tests.node.openclaw.waiting import DRIFT_MS, KEY_A, A, Clock
from tests.support.openclaw import FakeGateway, turn_records

NodeFactory = Callable[..., Awaitable[RunningNode]]


class RefusalsAs(HttpSink):
    """A node over HTTP whose refusals of a time are passed on with only their numbers
    (``numbers``: worded as a later release might word them) or only their words (as
    from a node older than those numbers); it counts the appends asked of it."""

    def __init__(self, client: Client, passed_on: str) -> None:
        super().__init__(client)
        self.passed_on = passed_on
        self.sent = 0

    async def append(self, events: list[Event]) -> int:
        self.sent += 1
        try:
            return await super().append(events)
        except ClientError as error:
            if self.passed_on == "numbers":
                raise ClientError("the node refused it: too soon", status=error.status,
                                  code=error.code, field=error.field, said="too soon",
                                  details=error.details) from None
            raise ClientError(str(error), status=error.status, code=error.code,
                              field=error.field, said=error.said) from None


@pytest.mark.parametrize("keep", ["numbers", "words"])
async def test_a_waiting_record_is_tried_again_when_the_node_should_take_it(
        tmp_path: Path, make_node: NodeFactory, keep: str) -> None:
    node = await make_node(clock_drift_max_ms=DRIFT_MS)
    now_ms = int(time.time() * 1000)
    ahead_s = 30  # due after about 29 s (less the bound): well within the retry bounds
    assert ahead_s - 10 > AHEAD_RETRY_MIN_S and ahead_s + 10 < AHEAD_RETRY_MAX_S
    gateway = FakeGateway(tmp_path)
    gateway.open_session(KEY_A, A)
    gateway.add(A, turn_records(A, [now_ms - 5000, now_ms + ahead_s * 1000]))
    gateway.close()
    told: list[str] = []
    clock = Clock()
    folder = StateFolder(tmp_path)
    async with Client(node.url) as client:
        sink = RefusalsAs(client, keep)
        bridge = Bridge(folder, sink, told.append, monotonic=clock)
        try:
            assert len((await bridge.run_pass(only_changed=True)).waiting) == 1
            [said] = [text for text in told if "dated" in text]
            assert f"which takes events at most {DRIFT_MS} ms ahead" in said, said
            sent = sink.sent
            clock.now_s += ahead_s - 10  # before its time: no request
            await bridge.run_pass(only_changed=True)
            assert sink.sent == sent
            clock.now_s += 15  # its time has come (not AHEAD_RETRY_MAX_S yet): tried once
            await bridge.run_pass(only_changed=True)
            assert sink.sent == sent + 1
        finally:
            folder.close()
