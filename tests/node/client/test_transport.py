"""node.client.transport: the node URL a Python caller gives ``Client``."""

from __future__ import annotations

import pytest

from node.client.api import Client, ClientError
from tests.support.addresses import HIDDEN_PASSWORDS


@pytest.mark.parametrize("url", HIDDEN_PASSWORDS)
def test_a_node_url_with_a_password_is_refused_without_showing_it(url: str) -> None:
    """Every error of a client names its node URL: one holding a password ("hunter2")
    is refused at once, and the refusal does not show it."""
    with pytest.raises(ClientError) as refused:
        Client(url)
    assert "holds a user name or password" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_a_node_url_that_is_no_url_is_refused() -> None:
    with pytest.raises(ClientError) as refused:
        Client("http://[hub:7878")
    assert str(refused.value) == "'http://[hub:7878' is not a node URL"


def test_a_node_url_is_kept_without_its_trailing_slash() -> None:
    assert Client("http://hub:7878/").base_url == "http://hub:7878"
