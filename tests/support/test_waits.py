"""The tests' wait without an event loop (``tests.support.waits.wait_until``): it takes an
``OSError`` or ``ValueError`` as not yet, but when it gives up its message still names the
last such error, though a falsy value came after it, beside that value."""

from __future__ import annotations

import urllib.error
from email.message import Message

import pytest

from tests.support.waits import wait_until


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
