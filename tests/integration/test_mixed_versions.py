"""Nodes upgraded one at a time, as real processes: a newer build (one more event kind)
writes events of its new kind and with extra fields; a stock node in the middle stores
and forwards them unchanged to a third node that knows the kind, without dropping a
link, and its projections stay as if those events were not there."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.support.cluster import (
    Cluster,
    all_events,
    append,
    message,
    peer_rows,
    wait_converged,
    wait_until,
)
from tests.support.newer_node import NEWER_KIND
from tests.support.processes import CLI_TIMEOUT_S, child_env, cli_args

NEWER = "tests.support.newer_node"
#: Links must stay up this long with no fault after the unknown events went through.
QUIET_S = 3.0


def test_a_stock_node_forwards_a_newer_nodes_kinds_and_fields(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        # a - b - c: a and c know reaction_added; b is this version; a and c meet only
        # through b (no advertised URLs, so nobody learns a way around it).
        b = cluster.node("b")
        a = cluster.node("a", peers=[b.url], program=NEWER)
        c = cluster.node("c", peers=[b.url], program=NEWER)
        said = append(a, "s1", [message("hello", hlc=[1_700_000_000_000, 0])])[0]
        reaction = append(a, "s1", [{
            "agent_id": "main", "hlc": [1_700_000_000_005, 0],
            "kind": {"type": NEWER_KIND, "emoji": "+1", "message_id": said["id"]}}])[0]
        richer = append(a, "s1", [{
            "agent_id": "main", "hlc": [1_700_000_000_001, 0],
            "kind": {"type": "agent_response", "content": "hi", "model": "m",
                     "openclaw": {"entry_id": "e7", "usage": {"cost": 0.25}}}}])[0]
        ids = {said["id"], reaction["id"], richer["id"]}
        wait_converged([a, b, c], must_hold=ids)

        on_b = {e["id"]: e for e in all_events(b)}
        on_c = {e["id"]: e for e in all_events(c)}
        assert on_b[reaction["id"]]["known_kind"] is False  # b holds it, as such
        assert "known_kind" not in on_c[reaction["id"]]  # c knows the kind
        assert on_c[reaction["id"]]["kind"] == reaction["kind"]  # the same bytes: same id
        assert on_b[richer["id"]]["kind"]["openclaw"] == {"entry_id": "e7",
                                                          "usage": {"cost": 0.25}}

        view_b, view_c = (node.get("/v1/sessions/s1") for node in (b, c))
        assert view_b["event_count"] == 2  # the reaction is not in b's projection
        assert view_b["last_event_id"] == richer["id"]
        assert view_c["event_count"] == 3 and view_c["last_event_id"] == reaction["id"]
        assert view_b["messages"] == view_c["messages"]

        shown = subprocess.run(cli_args(b, "events", "s1"), capture_output=True, text=True,
                               env=child_env(), timeout=CLI_TIMEOUT_S, check=True).stdout
        assert f"{NEWER_KIND} (unknown kind)" in shown

        time.sleep(QUIET_S)  # links keep working; count what went wrong on each
        for node in (a, b, c):
            rows = peer_rows(node)
            assert rows and all(row["state"] == "up" and row["faults"] == 0 for row in rows)
            # b answered before a and c started: any dial that failed, failed between builds
            log = node.log_path.read_text()
            said = [event for event in ("peer misbehaved", "peer link down",
                                        "peer dial failed") if event in log]
            assert not said, (node.name, said)
        versions = wait_until(lambda: {row["software"] for row in peer_rows(b)} - {None}, 10,
                              "b knows what its peers run")
        assert versions == {b.get("/v1/peers")["software"]}
        print(f"mixed versions: {len(ids)} events of a newer build crossed the stock node "
              f"(1 of a kind it does not know, 1 with extra fields); links dropped: 0")
