"""Addresses a node could dial (crdt.addresses): every way a password hides in one is
found, by the text checks or, for what they miss, by the URL parser's own reading."""

from __future__ import annotations

import pytest

from crdt.addresses import address_refusal, normal_address, unshown_refusal, user_or_password
from tests.support.addresses import HIDDEN_PASSWORDS, HIDDEN_TOKENS


@pytest.mark.parametrize("url", HIDDEN_PASSWORDS)
def test_a_hidden_password_is_found(url: str) -> None:
    assert user_or_password(url) and address_refusal(url) == "holds a user name or password"


@pytest.mark.parametrize("url", HIDDEN_TOKENS)
def test_a_query_or_fragment_is_refused_without_being_shown(url: str) -> None:
    """Whatever name a credential has there: the address reaches no node's API (its
    paths would land in the query or fragment), and every node it is listed to would
    show it."""
    refusal = address_refusal(url)
    assert refusal in ("has a query: the node's paths would land in it", "has a fragment")
    assert unshown_refusal(url) == (refusal, False) and "hunter2" not in refusal


@pytest.mark.parametrize(("url", "said"), [
    ("http://hub:7878/?page=2", "has a query: the node's paths would land in it"),
    ("http://hub/?", "has a query: the node's paths would land in it"),
    ("http://hub/token?a=1", "has a query: the node's paths would land in it"),
    ("http://hub:7878?x=a@b", "has a query: the node's paths would land in it"),
    ("http://hub/#", "has a fragment"), ("http://hub/a#b?c", "has a fragment")])
def test_any_query_or_fragment_is_refused(url: str, said: str) -> None:
    """A query without a credential is refused too: a dial of ``http://hub/?page=2``
    asks ``http://hub/?page=2/peer/v1/ws``, which a node answers 400."""
    assert not user_or_password(url) and address_refusal(url) == said


#: A tab or line ending inside "//", which the parser drops before reading the address:
#: the text checks see a path, the parser a user name and password.
@pytest.mark.parametrize("url", ["http:/\t/user:hunter2@hub:7878", "http:/\n/user:hunter2@hub",
                                 "https:/\r/user@hub", "\thttp://user:hunter2@hub"])
def test_what_the_parser_reads_as_a_password_is_one(url: str) -> None:
    assert user_or_password(url)


@pytest.mark.parametrize("url", ["http://hub:7878", "https://sync.example/cs",
                                 "http://[fe80::1%25eth0]:7878", "http://hub:7878/a@b",
                                 "http://hub/?x=a@b", "http://hub/a\\b@c",
                                 "http://hub:7878?x=a@b", "http://hub#a@b", "http://hub?a@b",
                                 "https://hub:7878#x=a@b", "hub:7878?x=a@b"])
def test_an_address_without_one_is_no_address_with_one(url: str) -> None:
    """An "@" after the host (and port), past a "/", "?" or "#", is in a path, query or
    fragment: no URL parser reads a user name there."""
    assert not user_or_password(url)
    assert address_refusal(url) in (None, "has a query: the node's paths would land in it",
                                    "has a fragment") or "://" not in url


@pytest.mark.parametrize("url", ["HTTP://hub:7878", "HTTPS://hub", "Http://hub:7878/cs"])
def test_a_scheme_in_upper_case_is_one_in_lower_case(url: str) -> None:
    """Schemes are case-insensitive (RFC 3986): the address is kept, shown and dialed
    with its scheme in lower case, so that one node is not listed twice."""
    assert address_refusal(url) is None
    normal = normal_address(url)
    assert normal.startswith(("http://", "https://")) and normal.lower() == url.lower()
    assert normal_address(normal) == normal
