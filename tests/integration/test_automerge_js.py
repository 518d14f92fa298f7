"""Interop with the real npm ``@automerge/automerge-repo`` 2.5 and its websocket adapter
(versions pinned in tests/js/package-lock.json), against real node processes: find,
live updates, an edit round trip, two replicating nodes, a document that appears after
doc-unavailable, and hostile clients beside an honest one."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crdt.automerge.document import automerge_url
from crdt.automerge.outline import summarize_sync_message
from tests.support.interop import BASE_MS, append, message, projection, wait_converged, ws_url
from tests.support.jsclient import JsClient, require_npm_packages
from tests.support.processes import NodeProcess, child_env
from tests.support.waits import PROCESS_DEADLINE_S, wait_until

pytestmark = pytest.mark.integration

SECRET = "cluster-secret-for-tests"


@pytest.fixture(scope="module", autouse=True)
def npm_packages() -> None:
    require_npm_packages()


#: The type byte of a chunk holding a whole saved document (a change's is 1).
DOCUMENT_CHUNK = 0


def chunks(data: bytes) -> list[bytes]:
    """The chunks a sync message carries."""
    return list(summarize_sync_message(data, changes_max=10_000).entries)


def contents(doc: dict[str, Any]) -> list[str]:
    return [m["content"] for _, m in sorted(doc["messages"].items())]


def test_find_and_live_update(tmp_path: Path, js: JsClient) -> None:
    with NodeProcess(tmp_path) as node:
        append(node, "tg:alice", {"agent_id": "main", "hlc": [BASE_MS, 0], "kind": {
            "type": "session_started", "channel": "telegram", "peer_id": "alice"}},
            message(1), message(2),
            {"agent_id": "main", "hlc": [BASE_MS + 3, 0],
             "kind": {"type": "state_changed", "key": "mood", "value": {"calm": True}}})
        url = projection(node, "tg:alice")["automerge_url"]
        assert url == automerge_url("tg:alice")
        js.call("connect", repo="app", ws=ws_url(node))
        doc = js.call("find", repo="app", url=url)["doc"]
        view = projection(node, "tg:alice")
        assert contents(doc) == ["m1", "m2"]
        for name in ("session_key", "channel", "peer_id", "state", "message_count",
                     "event_count", "last_event_id", "custom_state"):
            assert doc[name] == view[name], name
        js.call("watch", repo="app", url=url)
        append(node, "tg:alice", message(4, "live!"))
        live = js.changes("app", lambda d: len(d["messages"]) == 3)
        assert contents(live)[-1] == "live!"


def test_clients_with_nothing_get_the_whole_document_then_changes(
        tmp_path: Path, js: JsClient) -> None:
    with NodeProcess(tmp_path) as node:
        append(node, "s1", *(message(n) for n in range(1, 41)))
        url = automerge_url("s1")
        with urllib.request.urlopen(f"{node.url}/v1/sessions/s1/automerge") as response:
            saved = response.read()
        # The second client gets the answer made for the first.
        repos = ("app", "other")
        first: dict[str, list[bytes]] = {}
        for repo in repos:
            js.call("connect", repo=repo, ws=ws_url(node))
            doc = js.call("find", repo=repo, url=url)["doc"]
            assert contents(doc) == [f"m{n}" for n in range(1, 41)]
            first[repo] = [bytes.fromhex(s["hex"]) for s in js.call("syncs", repo=repo)["syncs"]]
            # The client said it had nothing: the document came as one v2 message whose
            # one chunk is the saved document, not as the changes it was built from.
            [whole] = [data for data in first[repo] if chunks(data)]
            assert whole[0] == 0x43 and chunks(whole) == [saved]
            js.call("watch", repo=repo, url=url)
        append(node, "s1", message(41, "later"))
        waiting = set(repos)
        while waiting:  # each client's report of the change, in whatever order
            report = js.wait(lambda r: r.get("repo") in waiting and "change" in r
                             and len(r["doc"]["messages"]) == 41)
            assert contents(report["doc"])[-1] == "later"
            waiting.discard(report["repo"])
        for repo in repos:
            later = [bytes.fromhex(s["hex"])
                     for s in js.call("syncs", repo=repo)["syncs"][len(first[repo]):]]
            assert any(chunks(data) for data in later)
            for data in later:  # changes, as before: no document chunk
                assert all(chunk[8] != DOCUMENT_CHUNK for chunk in chunks(data))


def test_client_edit_round_trip(tmp_path: Path, js: JsClient) -> None:
    with NodeProcess(tmp_path) as node:
        append(node, "s1", message(1))
        url = automerge_url("s1")
        for repo in ("editor", "viewer"):
            js.call("connect", repo=repo, ws=ws_url(node))
            js.call("find", repo=repo, url=url)
        js.call("watch", repo="viewer", url=url)
        js.call("change", repo="editor", url=url, set={
            "custom_state.mood": "happy", "custom_state.prefs": {"theme": "dark"},
            "state": "ended", "message_count": 99})
        # The viewer sees the edit at once, then the events it became, with the refused
        # edit of a derived count put back.
        seen = js.changes("viewer", lambda d: d["event_count"] == 4 and d["message_count"] == 1)
        view = projection(node, "s1")
        assert view["custom_state"] == {"mood": "happy", "prefs": {"theme": "dark"}}
        assert view["state"] == "ended" and view["message_count"] == 1
        assert seen["custom_state"] == view["custom_state"] and seen["state"] == "ended"
        kinds = [e["kind"]["type"] for e in node.get("/v1/sessions/s1/events")["events"]]
        assert sorted(kinds[1:]) == ["session_ended", "state_changed", "state_changed"]


def replicating_pair(tmp_path: Path) -> tuple[NodeProcess, NodeProcess]:
    common = ["--cluster-secret", SECRET, "--pull-interval", "0.2"]
    a = NodeProcess(tmp_path, name="a", extra_args=common)
    a.extra_args += ["--advertise-url", a.url]
    b = NodeProcess(tmp_path, name="b", extra_args=[*common, "--peer", a.url])
    return a, b


def has_replication() -> bool:
    help_text = subprocess.run([sys.executable, "-m", "node.main", "serve", "--help"],
                               capture_output=True, text=True, env=child_env()).stdout
    return "--peer" in help_text


def test_two_nodes_one_client(tmp_path: Path, js: JsClient) -> None:
    if has_replication():
        a, b = replicating_pair(tmp_path)
    else:  # converged nodes hold the same event set: give both the same events
        a, b = NodeProcess(tmp_path, name="a"), NodeProcess(tmp_path, name="b")
    with a, b:
        append(a, "s1", message(1), message(2), message(3))
        if not has_replication():
            append(b, "s1", message(1), message(2), message(3))
        wait_converged(a, b, "s1")
        url = automerge_url("s1")
        js.call("connect", repo="app", ws=ws_url(a))
        assert contents(js.call("find", repo="app", url=url)["doc"]) == ["m1", "m2", "m3"]
        js.call("watch", repo="app", url=url)
        js.call("connect", repo="app", ws=ws_url(b))
        js.call("disconnect", repo="app", ws=ws_url(a))
        append(b, "s1", message(4))
        if not has_replication():
            append(a, "s1", message(4))
        doc = js.changes("app", lambda d: len(d["messages"]) >= 4)
        wait_converged(a, b, "s1")
        doc = js.call("doc", repo="app", url=url)["doc"]
        assert contents(doc) == ["m1", "m2", "m3", "m4"]  # each exactly once
        assert len(doc["messages"]) == projection(b, "s1")["message_count"] == 4
        # The relayed copy of A's document turned into no events on B.
        assert projection(b, "s1")["event_count"] == projection(a, "s1")["event_count"] == 4
        if has_replication():  # an edit made through B is an event that reaches A
            js.call("change", repo="app", url=url, set={"custom_state.via": "b"})
            js.changes("app", lambda d: d["event_count"] == 5)
            wait_converged(a, b, "s1")
            assert projection(a, "s1")["custom_state"] == {"via": "b"}


def test_unavailable_then_available(tmp_path: Path, js: JsClient) -> None:
    with NodeProcess(tmp_path) as node:
        url = automerge_url("later")
        js.call("connect", repo="app", ws=ws_url(node))
        found = js.call("find", repo="app", url=url)
        assert "unavailable" in found["unavailable"]
        append(node, "later", message(1, "here now"))
        doc = js.call("ready", repo="app", url=url)["doc"]
        assert contents(doc) == ["here now"]


def test_tokens_limit_what_a_client_sees(tmp_path: Path, js: JsClient) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tg-reader-token": {"sessions": ["tg:*"],
                                                      "read_only": True}}))
    with NodeProcess(tmp_path, token="node-token",
                     extra_args=["--automerge-tokens", str(tokens)]) as node:
        append(node, "tg:a", message(1))
        append(node, "web:b", message(1))
        js.call("connect", repo="reader", ws=ws_url(node, "tg-reader-token"))
        assert contents(js.call("find", repo="reader", url=automerge_url("tg:a"))["doc"])
        assert "unavailable" in js.call("find", repo="reader",
                                        url=automerge_url("web:b"))["unavailable"]


async def hostile_clients(node: NodeProcess) -> dict[str, int | None]:
    """Each attack on its own connection; the close code the node answered with."""
    codes: dict[str, int | None] = {}
    join = {"type": "join", "senderId": "evil", "supportedProtocolVersions": ["1"]}

    async def attack(name: str, frames: list[bytes], join_first: bool = True) -> None:
        import cbor2

        async with aiohttp.ClientSession() as session, session.ws_connect(
                ws_url(node), max_msg_size=0) as ws:
            if join_first:
                await ws.send_bytes(cbor2.dumps(join))
                await ws.receive()
            for frame in frames:
                if ws.closed:
                    break
                try:
                    await ws.send_bytes(frame)
                except (ConnectionError, aiohttp.ClientError):
                    break  # the node closed while we were still sending
            async with asyncio.timeout(10):
                while (await ws.receive()).type == aiohttp.WSMsgType.BINARY:
                    pass
            codes[name] = ws.close_code

    import cbor2

    doc = automerge_url("s1").removeprefix("automerge:")
    peer = f"clawsync-{node.get('/healthz')['node_id']}"
    lie = cbor2.dumps({"type": "request", "senderId": "someone-else", "targetId": peer,
                       "documentId": doc, "data": b"\x42\x00\x00\x00\x00"})
    flood = cbor2.dumps({"type": "ephemeral", "senderId": "evil", "targetId": peer,
                         "documentId": doc, "count": 1, "sessionId": "x", "data": b"\x01"})
    await asyncio.gather(
        attack("garbage", [b"\xff\x00garbage"], join_first=False),
        attack("wrong sender", [lie]),
        attack("huge", [b"\x00" * (17 * 1024 * 1024)]),
        attack("flood", [flood] * 3_000),
        attack("bad sync", [cbor2.dumps({"type": "sync", "senderId": "evil", "targetId": peer,
                                         "documentId": doc, "data": b"\x43\x01\x00"})]))
    return codes


def test_hostile_clients_do_not_harm_an_honest_one(tmp_path: Path, js: JsClient) -> None:
    with NodeProcess(tmp_path) as node:
        append(node, "s1", message(1))
        url = automerge_url("s1")
        js.call("connect", repo="honest", ws=ws_url(node))
        js.call("find", repo="honest", url=url)
        js.call("watch", repo="honest", url=url)
        codes = asyncio.run(hostile_clients(node))
        # The node answers an oversized frame with 1009 and stops reading at its header;
        # a client still pushing the rest usually sees the connection drop (1006).
        assert codes.pop("huge") in (1006, 1009)
        assert codes == {"garbage": 1007, "wrong sender": 1008, "flood": 1008,
                         "bad sync": 1007}
        # A real client writing a Counter (which the node cannot read) is refused too.
        js.call("connect", repo="counter", ws=ws_url(node))
        js.call("find", repo="counter", url=url)
        js.call("counter", repo="counter", url=url, key="clicks")
        wait_for_log(node, "counters are not accepted")
        append(node, "s1", message(2, "still here"))
        doc = js.changes("honest", lambda d: len(d["messages"]) == 2)
        assert contents(doc) == ["m1", "still here"] and "clicks" not in doc["custom_state"]
        assert "clicks" not in projection(node, "s1")["custom_state"]
        assert node.running


def wait_for_log(node: NodeProcess, text: str) -> None:
    wait_until(lambda: text in node.log_path.read_text(), PROCESS_DEADLINE_S,
               f"{node.name} logging {text!r}")


def test_presence_reaches_the_other_clients_and_keeps_them_live(tmp_path: Path,
                                                                js: JsClient) -> None:
    """A stock client passes each ephemeral message it gets on to its other peers, the
    node among them, under the first sender's id: the node drops that echo (it passed
    the original on itself), rather than closing the client for another's id."""
    with NodeProcess(tmp_path) as node:
        append(node, "s1", message(1))
        url = projection(node, "s1")["automerge_url"]
        for repo in ("r1", "r2", "r3"):
            js.call("connect", repo=repo, ws=ws_url(node))
            js.call("find", repo=repo, url=url)
        js.call("watch", repo="r2", url=url)
        for n in range(3):
            js.call("broadcast", repo="r1", url=url, message={"cursor": n})

        wait_until(lambda: all(len(js.call("heard", repo=repo, url=url)["heard"]) >= 3
                               for repo in ("r2", "r3")),
                   PROCESS_DEADLINE_S, "r2 and r3 hearing the 3 broadcasts", poll_s=0.1)
        for repo in ("r2", "r3"):
            got = js.call("heard", repo=repo, url=url)["heard"]
            assert [m["message"] for m in got] == [{"cursor": n} for n in range(3)], repo
        append(node, "s1", message(2, "after the cursors"))
        live = js.changes("r2", lambda d: len(d["messages"]) == 2)
        assert contents(live)[-1] == "after the cursors"
        assert "senderId is not the peer that joined" not in node.log_path.read_text()
