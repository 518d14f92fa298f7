"""Forgetting, with real node processes and a real ``@automerge/automerge-repo`` client:
retention on a node whose clock runs 40 days ahead (libfaketime) forgets a session; the
forget replicates; the node the client syncs with replaces the session's document, tells
the client its old one is gone, and takes nothing back from it. No sleeps: every wait is
on a condition."""

from __future__ import annotations

from pathlib import Path

import pytest

from crdt.automerge.document import automerge_url, document_id, genesis_actor
from tests.campaigns.common import CampaignNode, faketime_lib
from tests.support.cluster import automerge_history, session_path, wait_until
from tests.support.interop import append, projection, ws_url
from tests.support.jsclient import JsClient, require_npm_packages
from tests.support.processes import NodeProcess
from tests.support.rawfiles import files_holding

pytestmark = pytest.mark.integration

SECRET = "cluster-secret-for-tests"
#: Seconds replication, a forget and its effects may take to reach a node here: longer
#: than ``tests.support.waits.PROCESS_DEADLINE_S`` for the waits after b's restart 40 days
#: ahead (libfaketime), which span several steps: b's retention pass, its link with a
#: made again, then replication. The waits before the restart need less, and share it.
CONVERGE_TIMEOUT_S = 60.0
MARKER = "my-password-is-hunter2"
DAY_S = 86_400


@pytest.fixture(scope="module", autouse=True)
def npm_packages() -> None:
    require_npm_packages()
    if faketime_lib() is None:
        pytest.skip("libfaketime is not installed (apt-get install faketime)")


def said(content: str) -> dict[str, object]:
    """A message stamped by the node (now, on its clock)."""
    return {"agent_id": "main", "kind": {"type": "message_received", "content": content}}


def event_kinds(node: NodeProcess, key: str) -> list[str]:
    events = node.get(session_path(key) + "/events")["events"]
    return [event["kind"]["type"] for event in events]


def test_a_forgotten_session_document_is_replaced_and_its_client_refused(
        tmp_path: Path, js: JsClient) -> None:
    common = ["--cluster-secret", SECRET, "--pull-interval", "0.2"]
    a = NodeProcess(tmp_path, name="a", extra_args=common)
    a.extra_args += ["--advertise-url", a.url]
    b = CampaignNode(tmp_path, name="b", extra_args=[*common, "--peer", a.url])
    with a, b:
        append(a, "tg:alice", said(f"hello, {MARKER}"), said("and more"))
        append(a, "web:bob", said("keep me"))
        for key in ("tg:alice", "web:bob"):
            wait_until(lambda key=key: projection(b, key) == projection(a, key),
                       CONVERGE_TIMEOUT_S, f"{key} on both nodes")
        old_url = projection(a, "tg:alice")["automerge_url"]
        assert old_url == automerge_url("tg:alice")  # never forgotten: today's id
        js.call("connect", repo="app", ws=ws_url(a))
        held = js.call("find", repo="app", url=old_url)["doc"]
        assert any(MARKER in m["content"] for m in held["messages"].values())
        assert any(MARKER.encode() in change for change in automerge_history(a, "tg:alice"))
        # Its text is compressed on disk, but its actor table is not: the old document's
        # genesis actor, which no other document holds, tells where its bytes are.
        old_actor = genesis_actor(document_id("tg:alice"))
        assert files_holding(a.data_dir, old_actor)

        # Node b comes back 40 days later with retention on: the session is forgotten
        # there, and the record reaches a.
        b.stop()
        b.skew_s = 40 * DAY_S
        b.extra_args += ["--retain-days", "tg:*=30"]
        b.start()
        wait_until(lambda: projection(a, "tg:alice")["automerge_url"] != old_url,
                   CONVERGE_TIMEOUT_S, "a new automerge_url on a")
        new_url = projection(a, "tg:alice")["automerge_url"]
        wait_until(lambda: projection(b, "tg:alice")["automerge_url"] == new_url,
                   CONVERGE_TIMEOUT_S, "the same new automerge_url on b")
        assert event_kinds(a, "tg:alice").count("forget") == 1
        wait_until(lambda: not files_holding(a.data_dir, old_actor),
                   CONVERGE_TIMEOUT_S, "the old document's bytes gone from a's data folder")
        assert projection(a, "web:bob")["automerge_url"] == automerge_url("web:bob")

        # The client that held the old document hears it is unavailable ...
        old_id = old_url.removeprefix("automerge:")
        wait_until(lambda: old_id in js.call("unavailable", repo="app")["unavailable"],
                   CONVERGE_TIMEOUT_S, "doc-unavailable for the old document")
        # Nothing of the new document was sent under the old id, and the connection
        # stayed up (the node did not have to refuse anything the client sent).
        assert js.call("doc", repo="app", url=old_url)["doc"] == held
        assert "automerge client disconnected" not in a.log_path.read_text()
        seen = len(js.call("unavailable", repo="app")["unavailable"])
        # ... and what it writes into its copy goes nowhere: the node answers its sync
        # with doc-unavailable again and appends nothing.
        js.call("change", repo="app", url=old_url,
                set={"custom_state.pasted": MARKER, "state": "ended"})
        wait_until(lambda: len(js.call("unavailable", repo="app")["unavailable"]) > seen,
                   CONVERGE_TIMEOUT_S, "doc-unavailable in answer to the client's sync")
        assert "state_changed" not in event_kinds(a, "tg:alice")
        assert "session_ended" not in event_kinds(a, "tg:alice")
        assert "automerge client disconnected" not in a.log_path.read_text()
        # Offered to the other node (which never served it), it is refused there too.
        seen = len(js.call("unavailable", repo="app")["unavailable"])
        js.call("connect", repo="app", ws=ws_url(b))
        wait_until(lambda: len(js.call("unavailable", repo="app")["unavailable"]) > seen,
                   CONVERGE_TIMEOUT_S, "doc-unavailable from b")
        assert "state_changed" not in event_kinds(b, "tg:alice")

        # A client asking for the old id afresh gets nothing; the new document holds no
        # forgotten text, in its content or anywhere in its history, on either node.
        js.call("connect", repo="fresh", ws=ws_url(a))
        assert "unavailable" in js.call("find", repo="fresh", url=old_url)
        doc = js.call("find", repo="fresh", url=new_url)["doc"]
        assert doc["session_key"] == "tg:alice" and MARKER not in str(doc)
        for node in (a, b):
            history = automerge_history(node, "tg:alice")
            assert history and not any(MARKER.encode() in change for change in history)
            assert "pasted" not in projection(node, "tg:alice")["custom_state"]
