"""How long tests wait for what they expect before they fail, one bound per kind of wait.

A bound is generous on purpose: a test passes as soon as what it waits for holds, so a
long bound costs nothing when all is well, and a loaded machine (two cores, two pytest
workers) never fails a test that would pass. Tests never assert on wall-clock time."""

from __future__ import annotations

import asyncio
import inspect
import linecache
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, overload

#: Seconds a test waits for a node running in the test's own process (``node.server.run``), or
#: a client of it, to do one thing.
DEADLINE_S = 10.0
#: Seconds a test waits for a process of its own to do one thing, be it a node on loopback
#: (``tests.support.processes``) or a node's signature worker (``node.peers.verifying``):
#: longer than ``DEADLINE_S``, as a process first starts Python and its imports, and two
#: processes on a busy machine take turns.
PROCESS_DEADLINE_S = 30.0
#: Seconds between two looks of ``wait_until`` at what it waits for.
POLL_S = 0.05
#: Seconds between two looks of ``until`` at a check: a check of the test's own process
#: is cheap, and a short gap keeps a test from waiting longer than what it waits for.
UNTIL_POLL_S = 0.01

T = TypeVar("T")


@overload
async def until(check: Callable[[], Awaitable[T]], /, *, within_s: float = ...,
                poll_s: float = ...) -> T: ...


@overload
async def until(check: Callable[[], T], /, *, within_s: float = ...,
                poll_s: float = ...) -> T: ...


@overload
async def until(items: AsyncIterator[T], done: Callable[[T], bool], /, *,
                within_s: float = ...) -> T: ...


async def until(what: Callable[[], Any] | AsyncIterator[Any],
                done: Callable[[Any], bool] | None = None, /, *,
                within_s: float = DEADLINE_S, poll_s: float = UNTIL_POLL_S) -> Any:
    """``until(check)``: wait until ``check()`` (a function, or an async one) returns
    something truthy, and return it, looking again every ``poll_s``.
    ``until(items, done)``: the first of ``items`` (a subscription's views, say) that is
    ``done``; fail if they end first. Either fails after ``within_s`` (``DEADLINE_S``, or
    ``PROCESS_DEADLINE_S`` for what a process of the test's does), an ``AssertionError``
    naming the check (a lambda by its text) and the last value it returned (``still
    False`` for a check that answers yes or no), or the last item seen."""
    if done is not None:
        assert not callable(what)
        last = "no item yet"
        try:
            async with asyncio.timeout(within_s):
                async for item in what:
                    if done(item):
                        return item
                    last = f"last item: {item!r}"
        except TimeoutError:
            raise AssertionError(f"not within {within_s} s: {_name(done)} of {_name(what)} "
                                 f"({last})") from None
        raise AssertionError(f"the items ended before one was {_name(done)} ({last})")
    assert callable(what)
    value: Any = None
    try:
        async with asyncio.timeout(within_s):
            while True:
                found = what()
                if inspect.isawaitable(found):
                    # apart from value: a time-out in this await leaves value the last
                    # value found, which the message names, not the look cut off
                    found = await found
                value = found
                if value:
                    return value
                await asyncio.sleep(poll_s)
    except TimeoutError:
        # A yes-or-no check's last value says nothing: what it waited for is its name.
        last = "still False" if value is False else f"last value: {value!r}"
        raise AssertionError(f"not within {within_s} s: {_name(what)} ({last})") from None


def _name(what: object) -> str:
    """A check's or an async generator's qualified name, for the message of a wait that
    failed; a lambda's text (its name, ``<lambda>``, says nothing); what has none (an
    iterator of a class, say) as its repr."""
    return _lambda_text(what) or getattr(what, "__qualname__", None) or repr(what)


def _lambda_text(what: object) -> str | None:
    """The expression of the lambda ``what`` as written, on one line: from its source
    file, between the first and last columns its instructions come from (the lambda's
    own line and column 0 excepted: where it begins and returns). None for another
    callable, or a lambda whose source is not at hand."""
    code = getattr(what, "__code__", None)
    if code is None or code.co_name != "<lambda>":
        return None
    spans = [(line, col, end_line, end_col)
             for line, end_line, col, end_col in code.co_positions()
             if None not in (line, end_line, col, end_col) and (col, end_col) != (0, 0)]
    lines = linecache.getlines(code.co_filename)
    if not spans or not lines:
        return None
    start_line, start_col = min((line, col) for line, col, _, _ in spans)
    end_line, end_col = max((line, col) for _, _, line, col in spans)
    # The columns count bytes of UTF-8, not characters.
    chosen = [line.encode() for line in lines[start_line - 1:end_line]]
    chosen[-1] = chosen[-1][:end_col]
    chosen[0] = chosen[0][start_col:]
    return " ".join(b"".join(chosen).decode(errors="replace").split()) or None


def wait_until(check: Callable[[], T | None], timeout_s: float, what: str,
               poll_s: float = POLL_S) -> T:
    """``until`` for a test that runs no event loop (one driving processes, or threads):
    call ``check`` until it returns something truthy (returned) or ``timeout_s`` passes
    (``AssertionError`` naming ``what``, the last value and the last error seen). An
    ``OSError`` or ``ValueError`` counts as not yet: a node restarting, or answering half
    a body. The last error is kept apart from the values, so that a refusal (urllib's
    HTTP 401 is an ``OSError``) is still named when a falsy value came after it."""
    deadline = time.monotonic() + timeout_s
    value: T | None = None
    error: OSError | ValueError | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError) as failed:  # urllib's URLError is an OSError
            error = failed
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout_s} s: {what} "
                                 f"(last value: {value!r}, last error: {error!r})")
        time.sleep(poll_s)
