"""Errors that take more than a message pickle and copy as they are.

An exception pickles and copies as ``cls(*args)`` by default: one whose ``__init__``
takes other required arguments fails to come back (``TypeError``), and one that builds
its message from its arguments comes back with another. One instance of every such
error of ``crdt``, ``sync`` and ``node``, and of their subclasses; and a walk of the
packages that finds every error requiring more than a message.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import pickle
import pkgutil
from collections.abc import Callable
from pathlib import Path

import pytest

from crdt.errors import (
    InvalidInput,
    Picklable,
    StorageBusy,
    StorageDamaged,
    StorageFull,
    StorageUnavailable,
    TimestampAhead,
)
from node.config import AddressRefused
from node.http.errors import HttpError
from node.openclaw.lock_holders import HeldLock, StateLockUnreadable
from node.openclaw.state_locks import StateLockHeld
from node.peers.link_errors import LinkRefused, Refusal
from node.peers.members_fetch import MembersRefused, MembersUnlisted
from node.workers import WorkerRaised
from sync.errors import FAULT_CHARS_MAX, PeerFault
from sync.peer.live import OriginLive
from sync.repo.connection import _Refuse
from sync.repo.host import CLOSE_POLICY

ERRORS: list[BaseException] = [
    StorageUnavailable("cannot open", location="/data/log"),
    StorageFull("disk full", location="/data/log"),
    StorageBusy("database is locked", location="/data/log/cache.db"),
    StorageDamaged("disk I/O error", location="/data/log/cache.db"),
    TimestampAhead("too far ahead", field="timestamp", bound_ms=60_000,
                   clock_ms=1_700_000_000_000),
    InvalidInput("too long", field="kind.content"),
    MembersUnlisted("HTTP 404", lasting=True),
    MembersUnlisted("HTTP 503", lasting=False),
    MembersRefused("HTTP 403"),
    LinkRefused("not a member", Refusal("device_removed", {"reason": "lost"}, "dev-a")),
    HttpError(400, "bad_parameter", "must be an integer", field="limit",
              headers={"Retry-After": "5"}),
    AddressRefused("has a password", "peers"),
    StateLockUnreadable("cannot look at the lock", Path("/state/locks"), 13),
    StateLockHeld(Path("/state/agent.lock"), HeldLock(Path("/state/agent.lock"), 42)),
    WorkerRaised("MemoryError", "out of memory"),
    OriginLive("origin-1", "a member device", "dev-b"),
    _Refuse(CLOSE_POLICY, "joined twice"),
    # Both cut: built again from its message, it would be cut once more.
    PeerFault("x" * FAULT_CHARS_MAX * 2, field="y" * FAULT_CHARS_MAX * 2),
]

TWINS: dict[str, Callable[[BaseException], BaseException]] = {
    "pickle": lambda error: pickle.loads(pickle.dumps(error)),  # type: ignore[no-any-return]
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
}


@pytest.mark.parametrize("twin", TWINS.values(), ids=TWINS.keys())
@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_an_error_comes_back_as_it_was(
        error: BaseException, twin: Callable[[BaseException], BaseException]) -> None:
    back = twin(error)
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert back.args == error.args
    assert vars(back) == vars(error)


#: The packages whose errors must pickle.
PACKAGES = ("crdt", "sync", "node")


def defined_errors() -> list[type[BaseException]]:
    """Every exception class defined in a module of ``crdt``, ``sync`` or ``node``, each
    module imported."""
    modules = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        modules.append(package)
        modules += [importlib.import_module(info.name)
                    for info in pkgutil.walk_packages(package.__path__, f"{name}.")]
    return [value for module in modules for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, BaseException)
            and value.__module__ == module.__name__]


def required_beyond_message(error: type[BaseException]) -> list[str]:
    """The parameters ``error.__init__`` requires besides one (its message): an error
    that requires any does not come back as ``cls(*args)``."""
    parameters = list(inspect.signature(error.__init__).parameters.values())[1:]
    required = [parameter.name for parameter in parameters
                if parameter.default is parameter.empty
                and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)]
    return required[1:]


def test_every_error_that_requires_more_than_a_message_is_picklable() -> None:
    """Found by walking the packages, so that a new error is held to it too. (One that
    builds its message from optional arguments is not found: list it in ``ERRORS``.)"""
    errors = defined_errors()
    assert StorageFull in errors and OriginLive in errors  # the walk finds them
    unpicklable = [f"{error.__module__}.{error.__qualname__}{required_beyond_message(error)}"
                   for error in errors
                   if required_beyond_message(error) and not issubclass(error, Picklable)]
    assert unpicklable == []
