"""The tests' waits (``tests.support.waits``). ``until`` returns what its check found, be
the check a function or an async one, and when it gives up names the last value seen,
though the time-out cuts a look short, and a lambda by its text; over items (a
subscription's views), the last item.
``wait_until``, the wait without an event loop, takes an ``OSError`` or ``ValueError`` as
not yet, but when it gives up its message still names the last such error, though a falsy
value came after it, beside that value."""

from __future__ import annotations

import asyncio
import urllib.error
from collections.abc import AsyncIterator
from email.message import Message

import pytest

from tests.support.waits import until, wait_until


async def test_until_returns_the_first_truthy_value_of_a_check_or_of_an_async_one() -> None:
    looks: list[int] = []

    def check() -> list[int]:
        looks.append(len(looks))
        return looks[2:]

    async def async_check() -> list[int]:
        await asyncio.sleep(0)
        return check()

    assert await until(check) == [2]
    looks.clear()
    assert await until(async_check) == [2]


async def test_until_gives_up_naming_what_it_waited_on_and_the_last_value() -> None:
    async def seats_left() -> list[str]:
        return []

    with pytest.raises(AssertionError) as failed:
        await until(seats_left, within_s=0.05)
    assert "not within 0.05 s:" in str(failed.value)
    assert "seats_left (last value: [])" in str(failed.value)



async def test_until_a_check_that_stays_false_names_what_it_waited_for() -> None:
    """Most checks are lambdas that answer yes or no: their name (``<lambda>``) and their
    last value (``False``) say nothing, so the message gives the lambda's text, on one
    line, and that it stayed False."""
    class Runner:
        state = "down"

    runner = Runner()
    with pytest.raises(AssertionError) as failed:
        await until(lambda: runner.state == "up", within_s=0.05)
    assert str(failed.value) == 'not within 0.05 s: runner.state == "up" (still False)'
    with pytest.raises(AssertionError) as failed:
        await until(lambda: (runner.state
                             in ("up", "linked")), within_s=0.05)
    assert str(failed.value) == ('not within 0.05 s: runner.state in ("up", "linked") '
                                 "(still False)")

def test_a_failed_wait_names_the_last_error_though_a_value_came_after_it() -> None:
    calls = 0

    def check() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:  # as a node that refuses the token, before it answers nothing
            raise urllib.error.HTTPError("http://node/", 401, "Unauthorized", Message(), None)
        return 0

    with pytest.raises(AssertionError) as failed:
        wait_until(check, 0.2, "the node's answer", poll_s=0.01)
    assert "the node's answer" in str(failed.value)
    assert "last error: <HTTPError 401: 'Unauthorized'>" in str(failed.value)


async def test_until_cut_off_mid_look_names_the_last_value_not_the_look() -> None:
    looks = 0

    async def slow_look() -> list[str]:
        nonlocal looks
        looks += 1
        await asyncio.sleep(0 if looks == 1 else 10)  # the second look outlasts the bound
        return []

    with pytest.raises(AssertionError) as failed:
        await until(slow_look, within_s=0.2)
    assert "(last value: [])" in str(failed.value)


async def test_until_over_items_gives_up_naming_the_last_item_seen() -> None:
    async def views() -> AsyncIterator[dict[str, int]]:
        yield {"messages": 1}
        await asyncio.sleep(10)  # a subscription that goes quiet before the view waited for
        yield {"messages": 2}

    def two_messages(view: dict[str, int]) -> bool:
        return view["messages"] == 2

    with pytest.raises(AssertionError) as failed:
        await until(views(), two_messages, within_s=0.2)
    assert "not within 0.2 s:" in str(failed.value)
    assert "two_messages" in str(failed.value)
    assert "(last item: {'messages': 1})" in str(failed.value)
