"""node.peers.addresses: the addresses peers give, as a members round reads them
(``node.peers.member_lists``): one no node could dial is dropped and logged once, by why
only, not every round; the log's memory of what it said is bounded and holds no
address."""

from __future__ import annotations

import secrets

import structlog

from node.peers import addresses
from node.peers.addresses import REFUSALS_LOGGED_MAX, dialable
from node.peers.member_lists import SKIPPED, member_urls


def _listed(lister: str, url: str) -> dict[str, object]:
    return {"node_id": lister, "advertise_url": "http://a:1",
            "peers": [{"url": url, "node_id": "n1"}, {"url": "http://b:1", "node_id": "n2"}]}


def test_a_refused_address_is_logged_once_not_every_members_round() -> None:
    lister = f"n-{secrets.token_hex(8)}"
    listed = _listed(lister, "http://u:hunter2@hub:7878")
    with structlog.testing.capture_logs() as first:
        assert [one.url for one in member_urls(listed)] == ["http://a:1", "http://b:1"]
    with structlog.testing.capture_logs() as second:
        assert [one.url for one in member_urls(listed)] == ["http://a:1", "http://b:1"]
    assert [(entry["event"], entry["said_by"], entry["reason"]) for entry in first] == [
        (SKIPPED, lister, "holds a user name or password")]
    assert second == []
    assert "hunter2" not in repr(first) + repr(addresses._logged)


def test_another_reason_or_lister_is_logged_and_the_memory_is_bounded() -> None:
    lister = f"n-{secrets.token_hex(8)}"
    with structlog.testing.capture_logs() as said:
        assert not dialable("http://hub:0", lister, SKIPPED)
        assert not dialable("http:///hub", lister, SKIPPED)  # another reason
        assert not dialable("http://hub:0", f"{lister}-2", SKIPPED)  # another lister
        assert not dialable("http://hub:0", lister, SKIPPED)  # said already
    assert len(said) == 3
    for n in range(REFUSALS_LOGGED_MAX):  # as many others: the first is forgotten
        dialable("http://hub:0", f"{lister}-other-{n}", SKIPPED)
    assert len(addresses._logged) == REFUSALS_LOGGED_MAX
    with structlog.testing.capture_logs() as again:
        assert not dialable("http://hub:0", lister, SKIPPED)
    assert [entry["said_by"] for entry in again] == [lister]


def test_an_address_a_peer_gives_with_an_upper_case_scheme_is_dropped() -> None:
    """A node of this project lists addresses with their scheme in lower case
    (``node.config``): kept, "HTTP://b:1" would be a second address of "http://b:1"."""
    lister = f"n-{secrets.token_hex(8)}"
    with structlog.testing.capture_logs() as said:
        assert [one.url for one in member_urls(_listed(lister, "HTTP://b:1"))] == [
            "http://a:1", "http://b:1"]
    assert [entry["reason"] for entry in said] == ["has a scheme not in lower case"]
