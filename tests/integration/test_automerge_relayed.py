"""A real ``@automerge/automerge-repo`` 2.5 client that relays one node's document to
another node: what the second node logs about it. Changes the client passes on (the
first node's, another client's edit the first node took in) are no edits of its own:
they are put back where they touch derived fields, but the client is not told it
edited them. What it does edit itself is still refused, logged and put back. And what
it relays is no edit to make an event of here: one edit is one event on every node."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from automerge.core import Document

from crdt.automerge.document import automerge_url
from tests.support.interop import BASE_MS, append, message, projection, wait_converged, ws_url
from tests.support.jsclient import JsClient, require_npm_packages
from tests.support.processes import NodeProcess
from tests.support.waits import PROCESS_DEADLINE_S, wait_until

pytestmark = pytest.mark.integration

SECRET = "cluster-secret-for-tests"
IGNORED = "automerge client edits ignored"


@pytest.fixture(scope="module", autouse=True)
def npm_packages() -> None:
    require_npm_packages()


def json_pair(tmp_path: Path) -> tuple[NodeProcess, NodeProcess]:
    """Two replicating nodes that log JSON lines, so a test can read what they said."""
    common = ["--cluster-secret", SECRET, "--pull-interval", "0.2", "--log-format", "json"]
    a = NodeProcess(tmp_path, name="a", extra_args=common)
    a.extra_args += ["--advertise-url", a.url]
    b = NodeProcess(tmp_path, name="b", extra_args=[*common, "--peer", a.url])
    return a, b


def logged(node: NodeProcess, event: str) -> list[dict[str, Any]]:
    """The node's JSON log lines for ``event`` (the harness's own lines are not JSON)."""
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


def saved(node: NodeProcess, key: str) -> Document:
    with urllib.request.urlopen(f"{node.url}/v1/sessions/{key}/automerge",
                                timeout=10) as response:
        return Document.load(response.read())


def wait_holds(node: NodeProcess, key: str, heads: list[bytes]) -> None:
    """Wait until ``node``'s document of ``key`` holds the changes ``heads`` name."""
    wait_until(lambda: set(heads) <= {c.hash for c in saved(node, key).get_changes([])},
               PROCESS_DEADLINE_S, f"{node.name}'s {key} holding {heads}", poll_s=0.1)


def wait_logged(node: NodeProcess, event: str) -> list[dict[str, Any]]:
    return wait_until(lambda: logged(node, event), PROCESS_DEADLINE_S,
                      f"{node.name} logging {event!r}")


@pytest.mark.parametrize("editor", ["another client", "the relaying client"])
def test_a_client_relaying_a_nodes_document_is_not_told_it_edited(
        tmp_path: Path, js: JsClient, editor: str) -> None:
    a, b = json_pair(tmp_path)
    with a, b:
        append(a, "s1", message(1), message(2))
        url = automerge_url("s1")
        # An edit A takes in: A's document then holds a client's change beside A's own.
        writer = "relay" if editor == "the relaying client" else "editor"
        for repo in {writer, "relay"}:
            js.call("connect", repo=repo, ws=ws_url(a))
            js.call("find", repo=repo, url=url)
        js.call("watch", repo="relay", url=url)
        js.call("change", repo=writer, url=url, set={"custom_state.mood": "happy"})
        js.changes("relay", lambda d: d["event_count"] == 3)
        append(a, "s1", message(3))  # more of A's own changes to relay
        js.changes("relay", lambda d: len(d["messages"]) == 3)
        wait_converged(a, b, "s1")  # B holds every event: nothing new to tell it
        heads = saved(a, "s1").get_heads()
        js.call("connect", repo="relay", ws=ws_url(b))
        js.call("disconnect", repo="relay", ws=ws_url(a))
        wait_holds(b, "s1", heads)
        # Then the relaying client does edit a derived count itself, through B.
        js.call("change", repo="relay", url=url, set={"message_count": 99})
        [warning] = wait_logged(b, IGNORED)
        assert warning["reasons"] == {"message_count": "derived from the log; put back"}
        js.changes("relay", lambda d: d["message_count"] == 3)  # put back
        assert projection(b, "s1")["message_count"] == 3
        assert projection(b, "s1")["event_count"] == projection(a, "s1")["event_count"] == 4
        assert logged(a, IGNORED) == []


def linked(b: NodeProcess, peer: NodeProcess | None) -> None:
    """Restart ``b`` with ``peer`` as its only peer, or with none: then no gossip reaches
    it (its peer knows no address of ``b``'s to push to)."""
    if "--peer" in b.extra_args:
        at = b.extra_args.index("--peer")
        del b.extra_args[at:at + 2]
    if peer is not None:
        b.extra_args += ["--peer", peer.url]
    b.restart()


@contextlib.contextmanager
def apart(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """``json_pair``'s nodes, both holding session s1, then ``b`` unlinked: what ``a``
    takes in from now on reaches ``b`` only once ``linked(b, a)``."""
    a, b = json_pair(tmp_path)
    with a, b:
        append(a, "s1", message(1))
        wait_converged(a, b, "s1")
        linked(b, None)
        yield a, b


def events(node: NodeProcess, key: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = node.get(f"/v1/sessions/{key}/events")["events"]
    return events


def edits(node: NodeProcess, key: str) -> list[tuple[str, Any]]:
    """The ``state_changed`` events of ``key`` on ``node`` as (key, value), sorted."""
    return sorted((e["kind"]["key"], e["kind"]["value"]) for e in events(node, key)
                  if e["kind"]["type"] == "state_changed")


def test_a_nodes_change_relayed_beside_a_clients_edit_is_no_edit(
        tmp_path: Path, js: JsClient) -> None:
    """A relaying client's own edit and, in the same sync message, a change of another
    node's that shows an event this node does not hold yet: only the client's edit
    becomes an event here; the other arrives by gossip, once."""
    with apart(tmp_path) as (a, b):
        url = automerge_url("s1")
        js.call("connect", repo="relay", ws=ws_url(a))
        js.call("find", repo="relay", url=url)
        js.call("watch", repo="relay", url=url)
        append(a, "s1", {"agent_id": "main", "hlc": [BASE_MS + 2, 0],
                         "kind": {"type": "state_changed", "key": "mood", "value": "calm"}})
        js.changes("relay", lambda d: d["custom_state"].get("mood") == "calm")
        js.call("disconnect", repo="relay", ws=ws_url(a))
        js.call("change", repo="relay", url=url, set={"custom_state.color": "red"})
        js.call("connect", repo="relay", ws=ws_url(b))
        wait_until(lambda: any(e["kind"].get("key") == "color" for e in events(b, "s1")),
                   PROCESS_DEADLINE_S, "b's event of the relayed color edit", poll_s=0.1)
        linked(b, a)
        wait_converged(a, b, "s1")
        assert edits(a, "s1") == edits(b, "s1") == [("color", "red"), ("mood", "calm")]


def test_another_clients_edit_relayed_before_its_event_is_one_event(
        tmp_path: Path, js: JsClient) -> None:
    """A client's edit that one node took in (and made an event of), relayed by another
    client to a node that does not hold that event yet: one edit, one event."""
    with apart(tmp_path) as (a, b):
        url = automerge_url("s1")
        for repo in ("editor", "relay"):
            js.call("connect", repo=repo, ws=ws_url(a))
            js.call("find", repo=repo, url=url)
        js.call("watch", repo="relay", url=url)
        js.call("change", repo="editor", url=url, set={"custom_state.mood": "happy"})
        js.changes("relay", lambda d: d["event_count"] == 2)  # A's event of it, shown
        heads = saved(a, "s1").get_heads()
        js.call("disconnect", repo="relay", ws=ws_url(a))
        js.call("connect", repo="relay", ws=ws_url(b))
        wait_holds(b, "s1", heads)
        linked(b, a)
        wait_converged(a, b, "s1")
        assert edits(a, "s1") == edits(b, "s1") == [("mood", "happy")]
