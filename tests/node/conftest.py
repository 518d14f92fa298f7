"""Fixtures for the node tests: real nodes (real EventStore on tmp_path, real sockets), and
real device stores that sign, with their Devices (``nodes``)."""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from crdt.device import private_key_from_seed
from crdt.log.store import EventStore
from crdt.signing import Signer
from node.config import Config
from node.device import DeviceKey
from node.devices import Devices
from node.limits import Limits
from node.server.run import RunningNode, start
from node.store import AsyncStore
from tests.support.device_stores import Node
from tests.support.events import event_body as body_of
from tests.support.other_user import OtherUser, as_other_user

EventFactory = Callable[..., dict[str, Any]]
NodeFactory = Callable[..., Awaitable[RunningNode]]


@pytest.fixture(scope="session")
def other_user() -> Iterator[OtherUser]:
    """``nobody``, able to run this checkout's code (``tests.support.other_user``);
    skipped where it cannot be, failed so in CI."""
    with as_other_user() as user:
        yield user


@pytest.fixture
def event_body() -> EventFactory:
    """``tests.support.events.event_body``: ``event_body(n, content=..., **fields)``."""
    return body_of


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[list[Node]]:
    """Three device stores that sign, each with its Devices (``tests.support.device_stores``),
    named d0, d1 and d2; closed at teardown."""
    made = []
    for n in range(3):
        key = DeviceKey(private_key_from_seed(bytes([n + 1]) * 32), tmp_path / f"k{n}")
        store = EventStore.open(tmp_path / f"n{n}", signer=Signer(key.private_key, f"d{n}"))
        astore = AsyncStore(store, ThreadPoolExecutor(max_workers=1))
        devices = await Devices.open(astore, key, name=f"d{n}", address=None)
        made.append(Node(store, astore, devices, key))
    yield made
    for node in made:
        await node.devices.close()
        await node.astore.close()


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """Start nodes with given Config fields or Limits fields; all stop at teardown."""
    running: list[RunningNode] = []

    async def factory(**overrides: Any) -> RunningNode:
        limit_names = {field.name for field in dataclasses.fields(Limits)}
        limits = Limits(**{k: v for k, v in overrides.items() if k in limit_names})
        settings = {k: v for k, v in overrides.items() if k not in limit_names}
        settings.setdefault("data_dir", tmp_path / f"node{len(running)}")
        settings.setdefault("port", 0)
        config = Config(limits=limits, **settings)
        node = await start(config)
        running.append(node)
        return node

    yield factory
    for node in running:
        await node.stop()


@pytest.fixture
async def node(make_node: NodeFactory) -> RunningNode:
    return await make_node()


@pytest.fixture
async def client(node: RunningNode) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=node.url) as session:
        yield session


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Logging as it was before the test, which configures it (``node.logs``), and where
    Python's warnings, unraisable exceptions, uncaught exceptions and handlers' failures
    go."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = (warnings._showwarnmsg_impl,  # type: ignore[attr-defined]
             sys.unraisablehook, sys.excepthook, threading.excepthook)
    handle_error = logging.Handler.handleError
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.Handler.handleError = handle_error  # type: ignore[method-assign]
    (warnings._showwarnmsg_impl,  # type: ignore[attr-defined]
     sys.unraisablehook, sys.excepthook, threading.excepthook) = hooks
