"""``clawsync status``'s rows of peer links."""

from __future__ import annotations

from typing import Any

from node.cli.status import headline, peer_rows


def link(**fields: Any) -> dict[str, Any]:
    return {"url": "http://hub:7878", "link": "out:1", "direction": "out", "device_id": None,
            "node_id": None, "state": "backoff", "retry_in_s": None,
            "last_contact_s_ago": None, "events_we_lack": None, "events_peer_lacks": None,
            "bytes_in": 0, "bytes_out": 0, "software": None, **fields}


def test_a_retry_still_to_come_never_reads_as_0s() -> None:
    [row] = peer_rows([link(retry_in_s=0.3)])
    assert row[4] == "backoff (retry in 1s)"
    [row] = peer_rows([link(retry_in_s=4.0)])
    assert row[4] == "backoff (retry in 4s)"
    [row] = peer_rows([link(state="up")])
    assert row[4] == "up"


def test_an_address_held_off_says_for_how_long_and_how_often_forgotten() -> None:
    [row] = peer_rows([link(state="held_off", held_off_s=299.2, times_forgotten=2)])
    assert row[4] == "held_off (300s more, forgotten 2x)"
    [row] = peer_rows([link()])  # an older node's row has neither field
    assert row[4] == "backoff"


def test_the_headline_counts_the_peers_kept_not_the_addresses_held_off() -> None:
    view = {"node_id": "n1", "software": "clawsync 1", "head": 7,
            "peers": [link(state="up"), link(state="backoff"),
                      link(state="held_off", held_off_s=10.0, times_forgotten=1)]}
    assert headline(view) == "node n1 (clawsync 1)  head 7  peers 2"
