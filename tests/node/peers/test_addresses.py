"""node.peers.addresses: the addresses peers give, as a members round reads them
(``node.peers.learning``)."""

from __future__ import annotations

import secrets

import structlog

from node.peers.learning import _member_urls


def _listed(lister: str, url: str) -> dict[str, object]:
    return {"node_id": lister, "advertise_url": "http://a:1",
            "peers": [{"url": url, "node_id": "n1"}, {"url": "http://b:1", "node_id": "n2"}]}


def test_an_address_a_peer_gives_with_an_upper_case_scheme_is_dropped() -> None:
    """A node of this project lists addresses with their scheme in lower case
    (``node.config``): kept, "HTTP://b:1" would be a second address of "http://b:1"."""
    lister = f"n-{secrets.token_hex(8)}"
    with structlog.testing.capture_logs() as said:
        assert [one.url for one in _member_urls(_listed(lister, "HTTP://b:1"))] == [
            "http://a:1", "http://b:1"]
    assert [entry["reason"] for entry in said] == ["has a scheme not in lower case"]
