"""node.client.transport: the node URL a Python caller gives ``Client``."""

from __future__ import annotations

import pytest

from node.client.api import Client, ClientError
from tests.node.client.support import NO_NODE_URLS
from tests.support.addresses import HIDDEN_PASSWORDS, HIDDEN_TOKENS, HOST_NAMES_A_LOOKUP_TAKES


@pytest.mark.parametrize("url", HIDDEN_PASSWORDS)
def test_a_node_url_with_a_password_is_refused_without_showing_it(url: str) -> None:
    """Every error of a client names its node URL: one holding a password ("hunter2")
    is refused at once, and the refusal does not show it."""
    with pytest.raises(ClientError) as refused:
        Client(url)
    assert "holds a user name or password" in str(refused.value)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("url", [*HIDDEN_TOKENS, "http://hub:7878/?page=2"])
def test_a_node_url_with_a_query_or_fragment_is_refused_without_showing_it(url: str) -> None:
    """The client's paths would land in it (``http://hub/?page=2/v1/node``), and it may
    hold a token: refused at once, not shown."""
    with pytest.raises(ClientError) as refused:
        Client(url)
    said = str(refused.value)
    assert said.startswith(("the node URL has a query: the node's paths would land in it",
                            "the node URL has a fragment")), said
    assert "hunter2" not in said and "page" not in said


@pytest.mark.parametrize(("url", "why"), NO_NODE_URLS)
def test_a_node_url_that_is_no_node_url_is_refused_without_showing_it(url: str,
                                                                      why: str) -> None:
    with pytest.raises(ClientError) as refused:
        Client(url)
    assert str(refused.value) == f"the node URL {why}: give http(s)://host:port"


def test_a_node_url_with_an_upper_case_scheme_is_taken() -> None:
    assert Client("HTTP://hub:7878/").base_url == "http://hub:7878"


def test_a_node_url_is_kept_without_its_trailing_slash() -> None:
    assert Client("http://hub:7878/").base_url == "http://hub:7878"


@pytest.mark.parametrize("url", HOST_NAMES_A_LOOKUP_TAKES)
def test_a_node_url_whose_name_idna_2008_encodes_is_taken(url: str) -> None:
    """A right-to-left label ending in a digit: IDNA 2003 refuses it, the lookup (IDNA
    2008, as yarl encodes) takes it."""
    assert Client(url).base_url == url
