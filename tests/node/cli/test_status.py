"""``clawsync status``'s rows of peer links."""

from __future__ import annotations

from typing import Any

from node.cli.status import headline, held_off_lines, peer_rows


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
    view = {"held_off": [{"url": "http://laptop:8765", "node_id": None,
                          "held_off_s": 299.2, "times_forgotten": 2}], "held_off_total": 3}
    assert held_off_lines(view) == [
        "http://laptop:8765: held off 300s more (a peer lists it; forgotten 2x after failing)",
        "... and 2 more addresses held off (--json lists the first 1)"]
    assert held_off_lines({"peers": []}) == []  # an older node says nothing of them


def test_the_last_contact_reads_as_the_console_says_it() -> None:
    said = [peer_rows([link(last_contact_s_ago=seconds)])[0][5]
            for seconds in (None, 0.2, 1.927, 2.5, 582.248, 9000.0, 300000.0)]
    assert said == ["-", "just now", "2 s ago", "3 s ago", "10 min ago", "3 h ago",
                    "3 days ago"]


def test_the_headline_counts_the_peer_links() -> None:
    view = {"node_id": "n1", "software": "clawsync 1", "head": 7,
            "peers": [link(state="up"), link(state="backoff")]}
    assert headline(view) == "node n1 (clawsync 1)  head 7  peers 2"
