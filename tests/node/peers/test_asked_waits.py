"""The wait a peer's ``Retry-After`` asks for (``node.asked_waits``)."""

from __future__ import annotations

import pytest

from node.asked_waits import asked_wait_s

#: 1994-11-06 08:49:37 GMT, the date RFC 9110 writes in each of its three forms.
WHEN_UNIX_S = 784111777.0


@pytest.mark.parametrize("value", ["Sun, 06 Nov 1994 08:49:37 GMT",
                                   "Sunday, 06-Nov-94 08:49:37 GMT",
                                   "Sun Nov  6 08:49:37 1994"])
def test_each_form_of_an_http_date_asks_until_then(value: str) -> None:
    assert asked_wait_s(value, WHEN_UNIX_S - 30.0) == 30.0


@pytest.mark.parametrize("value", ["Sun, 06 Nov 1994 08:49:37 -0000",
                                   "Sun, 06 Nov 1994 08:49:37", "-5", "1.5", "nan",
                                   "5, 10", "\u0661\u0662", "9" * 65])
def test_what_is_no_wait_asks_for_none(value: str) -> None:
    """None: a dial backs off as after any failure."""
    assert asked_wait_s(value, WHEN_UNIX_S) is None
