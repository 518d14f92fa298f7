"""Set-ups the removals tests share (``test_removals``, ``test_removed_pushes``,
``test_last_push``): a node with a device to remove and a third node's events it lacks,
links waited for, and a node's writer thread held or its calls recorded."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
import pytest

from crdt.log.store import EventStore
from node.peers.runner import Runner
from node.server.run import RunningNode
from tests.node.conftest import EventFactory
from tests.node.peers.support import DEADLINE_S, FAST, NodeFactory, until

QUIET = dataclasses.replace(FAST, pull_interval_s=600.0)
#: A link whose next call of its own (a pull, a resend) is this far off is quiet for a test.
QUIET_AFTER_S = 60.0
T = TypeVar("T")


async def post(node: RunningNode, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession(base_url=node.url) as http, \
            http.post("/v1/sessions/s/events", json=body) as answer:
        assert answer.status == 201


async def linked(node: RunningNode, url: str, device_id: str) -> None:
    """Wait until ``node``'s link to ``url`` is up with the device ``device_id``."""
    runner = node.gossip.runners[f"url:{url}"]
    await until(lambda: runner.state == "up" and runner.device is not None
                and runner.device.device_id == device_id)


async def accepted(node: RunningNode) -> Runner:
    """The one link a peer opened to ``node``, once it is up."""
    [runner] = await until(lambda: [runner for runner in node.gossip.runners.values()
                                    if runner.direction == "in" and runner.state == "up"])
    return runner


async def phone_and_stranger(a: RunningNode, b: RunningNode, make_node: NodeFactory,
                             event_body: EventFactory) -> tuple[RunningNode, str, str]:
    """b added on a as "phone", and a third node linked to no one (its events reach a by
    hand); b and the third each hold one event. Returns the third, b's device id and
    b's origin."""
    third = await make_node()
    assert a.gossip.membership is not None
    phone, b_origin = b.gossip.device.device_id, b.astore.node_id
    for node in (b, third):
        async with aiohttp.ClientSession(base_url=node.url) as http, \
                http.post("/v1/sessions/s/events", json=event_body(1)) as answer:
            assert answer.status == 201
    await a.gossip.membership.add(phone, "phone")
    return third, phone, b_origin


async def dial_until_even(a: RunningNode, b: RunningNode, phone: str, b_origin: str,
                          url: str | None = None) -> None:
    """a dials b (at ``url``, else its own) until linked to b's device, each holding all
    the other's events."""
    assert await a.gossip.add_peer(url or b.url, learned=False)

    async def even() -> bool:
        if phone not in a.gossip.linked_devices():
            return False
        held = [await node.astore.read(lambda s: s.version) for node in (a, b)]
        return held[0] == held[1] and b_origin in held[0]

    await until(even)


async def told_only_its_removal(a: RunningNode, b: RunningNode, third: RunningNode,
                                link: Runner, b_origin: str) -> None:
    """b learns its removal (and takes a new origin) from a's last push on ``link``,
    which went through the retirement of b's origin, and holds nothing of the third's."""
    await until(lambda: b.gossip.own_removal() is not None and b.astore.node_id != b_origin)
    held_b = await b.astore.read(lambda s: {**s.version, **s.retired})
    own = a.astore.node_id
    assert held_b[own] == link.removal_push[own]  # through the retirement of its origin
    assert third.astore.node_id not in held_b  # nothing else it lacked


async def woken_no_more(link: Runner) -> None:
    """Wait until ``link`` took its wake (the last commit's): it pushes nothing unasked."""
    await until(lambda: not link.wake.is_set())


def link_to(node: RunningNode, device_id: str) -> Runner:
    """``node``'s one link to the device ``device_id``."""
    [link] = [runner for runner in node.gossip.runners.values()
              if runner.device is not None and runner.device.device_id == device_id]
    return link


def writer_calls(node: RunningNode, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls asked of ``node``'s writer from now on, by name, in the order asked."""
    asked: list[str] = []
    write = node.astore.write

    async def recorded(call: Callable[[EventStore], T]) -> T:
        asked.append(getattr(call, "__qualname__", ""))
        return await write(call)

    monkeypatch.setattr(node.astore, "write", recorded)
    return asked


class HeldWriter:
    """Holds a node's writer thread until ``release``: calls asked of it meanwhile run
    afterwards, in the order they were asked."""

    def __init__(self) -> None:
        self._entered, self._go = threading.Event(), threading.Event()
        self._holding: asyncio.Future[None] | None = None

    async def hold(self, node: RunningNode, then: Callable[[EventStore], T]
                   ) -> asyncio.Future[T]:
        """Hold the writer, with ``then`` asked of it right after, ahead of any other
        call; the future of ``then``."""
        def hold(_store: EventStore) -> None:
            self._entered.set()
            self._go.wait(DEADLINE_S)

        self._holding = asyncio.ensure_future(node.astore.write(hold))
        following = asyncio.ensure_future(node.astore.write(then))
        await asyncio.sleep(0)  # both asked: their tasks ran first
        assert await asyncio.to_thread(self._entered.wait, DEADLINE_S)
        return following

    async def release(self) -> None:
        assert self._holding is not None
        self._go.set()
        await self._holding
