"""Fixtures every test directory shares; the helpers behind them are in ``tests.support``."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# The support modules' asserts say what differed, as the tests' own do: registered before
# any of them is imported (pytest rewrites only test modules and conftest files itself).
pytest.register_assert_rewrite("tests.support", "tests.crdt.support", "tests.node.client.support",
                               "tests.node.openclaw.support", "tests.node.openclaw.exporting",
                               "tests.node.peers.support", "tests.sync.peer.support")

from crdt.events import Event  # noqa: E402
from crdt.log.store import EventStore  # noqa: E402
from tests.support.events import event  # noqa: E402
from tests.support.storage import BACKENDS, open_backend  # noqa: E402

OpenStore = Callable[[str], EventStore]

# Tests stop long-running commands (tail, watch, demo --keep) with Ctrl-C, and a child
# inherits an ignored SIGINT: a runner started in the background of a non-interactive
# shell has it ignored, so its children would never stop. A handler is reset at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Hypothesis fails an example that takes longer than 200 ms by default: a check of
# wall-clock time, which a loaded machine (two cores, two pytest processes) trips. And
# each run draws the same examples: a failure is the same on every run and machine,
# never a run's luck. A search further is its own run: HYPOTHESIS_PROFILE=search draws
# new examples each time, and more where a test sets no count.
settings.register_profile("clawsync", deadline=None, derandomize=True)
settings.register_profile("search", deadline=None, derandomize=False, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "clawsync")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots", metavar="DIR", type=Path, default=None,
        help="save the web console tests' pictures of each view in DIR "
             "(tests/screenshots refreshes the README's); by default each test's "
             "temporary folder")


@pytest.fixture(scope="session")
def ev() -> Callable[..., Event]:
    """``tests.support.events.event``: ``ev(kind, ms, counter, session=..., **payload)``.
    Session-scoped so that hypothesis tests may use it too."""
    return event


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each storage backend in turn: a test that takes it runs once per backend."""
    name: str = request.param
    return name


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(backend: str, store_path: Path) -> Iterator[EventStore]:
    """A real EventStore on each backend (real diskcache files in a fresh folder)."""
    opened = EventStore(open_backend(backend, store_path))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def open_store() -> Iterator[OpenStore]:
    """``open_store(name)`` opens a new in-memory EventStore (``name`` is for the reader);
    all are closed after the test."""
    opened: list[EventStore] = []

    def open_one(_name: str) -> EventStore:
        store = EventStore.open("memory:")
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()
