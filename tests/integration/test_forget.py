"""Forgetting with real nodes: a forget on one node reaches every node, the node that was
stopped does not bring the content back, and the content is gone from every data folder.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shlex
import shutil
import subprocess
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crdt.automerge.document import automerge_url, document_id, genesis_actor
from tests.support.cluster import (
    SECRET,
    Cluster,
    all_events,
    append,
    appended_ids,
    automerge_history,
    head,
    message,
    projection,
    request,
    session_path,
    wait_converged,
    wait_until,
)
from tests.support.interop import ws_url
from tests.support.jsclient import JsClient, require_npm_packages
from tests.support.metrics import scrape, value
from tests.support.processes import ROOT, NodeProcess, free_port, run_cli
from tests.support.rawfiles import files_holding

pytestmark = pytest.mark.integration
TOKEN = "forget-test-token"


@pytest.fixture
def js(tmp_path: Path) -> Iterator[JsClient]:
    """A real ``@automerge/automerge-repo`` client (Node.js)."""
    require_npm_packages()
    with JsClient(tmp_path / "js.log") as client:
        yield client


def _secret_events(marker: str) -> list[dict[str, Any]]:
    return [message(f"my password is {marker}"),
            {"agent_id": "main", "kind": {"type": "tool_called", "tool_name": "t",
                                          "params": {"q": marker}}},
            {"agent_id": "main", "kind": {"type": "state_changed", "key": "pin",
                                          "value": marker}}]


def _status(node: NodeProcess, method: str, path: str, body: Any = None,
            token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    saved, node.token = node.token, token
    try:
        return 200, json.loads(request(node, method, path, body))
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    finally:
        node.token = saved


def _automerge_url(node: NodeProcess, key: str) -> str:
    return str(node.get(session_path(key))["automerge_url"])


def _unavailable(js: JsClient, repo: str) -> list[str]:
    """The document ids of the doc-unavailable messages ``repo`` received so far."""
    return list(js.call("unavailable", repo=repo)["unavailable"])


def _clean(nodes: list[NodeProcess], marker: str | bytes) -> bool:
    return all(files_holding(node.data_dir, marker) == [] for node in nodes)


def test_a_forget_reaches_every_node_and_leaves_no_bytes_behind(tmp_path: Any,
                                                                js: JsClient) -> None:
    marker = f"zebra-{secrets.token_hex(6)}"
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", token=TOKEN)
        b = cluster.node("b", token=TOKEN, peers=[a.url])
        c = cluster.node("c", token=TOKEN, peers=[a.url, b.url])
        ids = {e["id"] for e in append(a, "secret", _secret_events(marker))}
        mixed = append(b, "mixed", [message("fine"), message(f"oops {marker}")])
        ids |= {e["id"] for e in mixed}
        wait_converged([a, b, c], must_hold=ids)
        assert files_holding(c.data_dir, marker)  # the search sees it while it is there
        # An app holds the session's document from a; c has served it too, so its data
        # folder holds it (its text is compressed there, its genesis actor is not).
        old_url = _automerge_url(a, "secret")
        js.call("connect", repo="app", ws=ws_url(a, TOKEN))
        assert marker in json.dumps(js.call("find", repo="app", url=old_url)["doc"])
        assert any(marker.encode() in change for change in automerge_history(c, "secret"))
        old_actor = genesis_actor(document_id("secret"))
        assert files_holding(c.data_dir, old_actor)
        c.stop()  # away during the forget, holding the originals

        assert _status(a, "DELETE", session_path("secret"))[0] == 200
        answer = _status(a, "POST", session_path("mixed") + "/forget",
                         {"events": [mixed[1]["id"]]})
        assert answer[0] == 200 and answer[1]["forget"]["kind"]["type"] == "forget"
        wait_until(lambda: _clean([a, b], marker), 60, "the marker gone from a and b")
        # The app is told its document is gone; what it writes into it goes nowhere.
        old_id = old_url.removeprefix("automerge:")
        wait_until(lambda: old_id in _unavailable(js, "app"), 60, "doc-unavailable")
        seen = len(_unavailable(js, "app"))
        js.call("change", repo="app", url=old_url, set={"custom_state.pasted": marker})
        wait_until(lambda: len(_unavailable(js, "app")) > seen, 60, "a's answer to it")

        c.start()
        everything = wait_converged([a, b, c], must_hold=ids)
        wait_until(lambda: _clean([a, b, c], marker), 60, "the marker gone from c too")
        wait_until(lambda: _clean([a, b, c], old_actor), 60, "the old document gone")
        # c, which served the old document before it stopped, refuses it too: to the
        # app (which offers it its copy, with the pasted text) and to a fresh client.
        seen = len(_unavailable(js, "app"))
        js.call("connect", repo="app", ws=ws_url(c, TOKEN))
        wait_until(lambda: len(_unavailable(js, "app")) > seen, 60, "c's doc-unavailable")
        new_url = _automerge_url(a, "secret")
        assert new_url != old_url
        for node in (a, b, c):
            assert _automerge_url(node, "secret") == new_url
            assert _automerge_url(node, "mixed") != automerge_url("mixed")
            js.call("connect", repo=node.name, ws=ws_url(node, TOKEN))
            assert "unavailable" in js.call("find", repo=node.name, url=old_url)
            doc = js.call("find", repo=node.name, url=new_url)["doc"]
            assert doc["session_key"] == "secret" and marker not in json.dumps(doc)
            for key in ("secret", "mixed"):
                history = automerge_history(node, key)
                assert history and not any(marker.encode() in change for change in history)
        for key in ("secret", "mixed"):
            views = [projection(node, key) for node in (a, b, c)]
            assert views[0] == views[1] == views[2]
            assert marker not in json.dumps(views[0])
        assert [m["content"] for m in projection(c, "mixed")["messages"]] == ["fine"]
        assert projection(c, "secret")["custom_state"] == {}
        for node in (a, b, c):
            events = all_events(node)
            assert appended_ids(events) == everything
            assert [e["position"] for e in events] == list(range(1, len(events) + 1))
            assert marker not in json.dumps(events)
            forgotten = [e for e in events if "forgotten_by" in e]
            assert len(forgotten) == 4 and all(e["kind"] == {"type": e["kind"]["type"]}
                                               for e in forgotten)
        assert _clean([a, b, c], marker)
        # Every node logs the forget it took in, with who asked; no log holds content.
        for name in "abc":
            log = (tmp_path / f"{name}.log").read_text()
            assert f"by=client@{a.get('/healthz')['node_id']}" in log
            assert marker not in log


def test_forget_refuses_bad_requests_and_strangers(tmp_path: Any) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"viewer-token": {"read_only": True},
                                  "other-editor": {"sessions": ["s2"]},
                                  "editor-token": {"sessions": ["s1"]}}))
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", token=TOKEN, extra_args=["--automerge-tokens", str(tokens)])
        [said] = append(a, "s1", [message("hello")])
        [other] = append(a, "s2", [message("elsewhere")])
        before = head(a)
        path = session_path("s1")
        assert _status(a, "DELETE", path, token=None)[0] == 401
        assert _status(a, "DELETE", path, token="wrong")[0] == 401
        # A read-only Automerge token, one for other sessions and the cluster secret may
        # not forget (an editor of s1 may: below). The app tokens are valid, only not
        # for this: 403, and a node's secret is no client token: 401.
        for stranger, refused in (("viewer-token", 403), ("other-editor", 403), (SECRET, 401)):
            assert _status(a, "DELETE", path, token=stranger)[0] == refused
            assert _status(a, "POST", path + "/forget", {"events": [said["id"]]},
                           token=stranger)[0] == refused
        assert _status(a, "DELETE", session_path("nosuch"))[0] == 404
        cases = {"events": [other["id"]]}, {"events": ["xyz"]}, {"events": []}, \
            {"events": [said["id"]], "extra": 1}, ["not an object"], \
            {"events": [said["id"]], "reason": 7}
        for body in cases:
            code, error = _status(a, "POST", path + "/forget", body)
            assert code == 400, (body, error)
            assert error["error"]["message"]
        code, error = _status(a, "DELETE", path + "?reason=gdpr")
        assert (code, error["error"]["field"]) == (400, "reason")  # not forgotten for "user"
        code, error = _status(a, "POST", path + "/forget", {"events": "x"})
        assert (code, error["error"]["message"]) == (400, "must be an array of event ids, "
                                                          "not string")
        code, error = _status(a, "POST", path + "/forget", {"reason": "x"})
        assert (code, error["error"]["field"]) == (400, "events")
        assert error["error"]["message"].startswith("is required: the ids of the events")
        assert _status(a, "POST", session_path("nosuch") + "/forget",
                       {"events": [said["id"]]})[0] == 404
        assert _status(a, "POST", path + "/forget", {"events": [said["id"]] * 1025})[0] == 413
        assert head(a) == before  # nothing was written

        done = run_cli(a, "forget", "s1", "--event", said["id"])
        assert done.returncode == 0, done.stderr
        assert "forgot 1 event(s) of s1" in done.stdout
        written = head(a)
        again = run_cli(a, "forget", "s1", "--event", said["id"])
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("already forgotten: ") and head(a) == written
        code, error = _status(a, "POST", path + "/forget",
                              {"events": [said["id"]], "reason": 7})
        assert (code, error["error"]["field"]) == (400, "reason") and head(a) == written
        assert projection(a, "s1")["messages"] == []
        listed = run_cli(a, "events", "s1")
        assert listed.returncode == 0 and "(forgotten by" in listed.stdout
        assert "1 event(s), user, by client@" in listed.stdout  # the record, as such
        assert "unknown kind" not in listed.stdout
        assert "hello" not in listed.stdout
        missing = run_cli(a, "forget", "nosuch")
        assert missing.returncode == 1 and "no session 'nosuch'" in missing.stderr
        bad = run_cli(a, "forget", "s1", "--event", "xyz")
        assert bad.returncode == 2 and "must be 64 hex digits" in bad.stderr
        nobody = run_cli(f"http://127.0.0.1:{free_port()}", "forget", "s1")
        assert nobody.returncode == 1 and "is `clawsync serve` running?" in nobody.stderr
        assert "Traceback" not in missing.stderr + bad.stderr + nobody.stderr
        # An app that may write s1 may forget it, and opens nothing else of /v1.
        code, error = _status(a, "GET", "/v1/sessions", token="editor-token")
        assert code == 403 and "this is an app token" in error["error"]["message"], error
        assert _status(a, "DELETE", session_path("s2"), token="editor-token")[0] == 403
        # The CLI with an app token says what the node said, not "check --token".
        listed = run_cli(a, "sessions", token="editor-token")
        assert listed.returncode == 1 and listed.stderr.startswith(
            "Error: the node refused the request (this token does not allow it): this is an "
            "app token: "), listed
        assert "check --token" not in listed.stderr
        assert _status(a, "DELETE", path, token="editor-token")[0] == 200
        # All of it forgotten: what the projection no longer knows reads "-", not blank.
        shown = run_cli(a, "projection", "s1")
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert "agent          -" in lines and "last activity  -" in lines, lines
        # An event dated before the forget is stored forgotten: append says so.
        late = run_cli(a, "append", "s1", "message_received", "content=late words",
                       "--timestamp", "2020-01-01T00:00:00Z")
        assert late.returncode == 0, late.stderr
        assert late.stdout.startswith("stored: ") and ", forgotten by " in late.stdout \
            and "its content was not kept" in late.stdout, late.stdout
        assert "late words" not in run_cli(a, "events", "s1").stdout
        # The harness writes each command line first: the node's own lines come after.
        log = [line for line in (tmp_path / "a.log").read_text().splitlines()
               if not line.startswith("--- start")]
        assert any("forgotten" in line and "by=client@" in line for line in log)
        assert any("forgotten" in line and "by=app:" in line for line in log)
        assert not any(TOKEN in line or "editor-token" in line for line in log)


def _readme_curls() -> list[list[str]]:
    """The curl commands of the README's "Forgetting" example, as argument lists."""
    section = (ROOT / "README.md").read_text().split("\n## Forgetting\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [shlex.split(line) for line in block.splitlines() if line.startswith("curl")]


def test_the_readmes_curl_commands_forget(tmp_path: Any) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    with NodeProcess(tmp_path, token=TOKEN) as node:
        said = append(node, "tg:alice", [message("one"), message("two")])
        forget_events, forget_session = sorted(_readme_curls(), key=lambda c: "-d" not in c)
        for command, after in ((forget_events, ["two"]), (forget_session, [])):
            args = [arg.replace("$TOKEN", TOKEN).replace("http://127.0.0.1:7878", node.url)
                    .replace("3f9c…e1", said[0]["id"]) for arg in command]
            done = subprocess.run([*args, "--fail-with-body", "-sS"], capture_output=True,
                                  text=True, check=False)
            assert done.returncode == 0, (args, done.stdout, done.stderr)
            view = projection(node, "tg:alice")
            assert [m["content"] for m in view["messages"]] == after


def test_forgetting_a_session_again_or_one_not_there_says_so(tmp_path: Any) -> None:
    """``clawsync forget`` of a session forgotten whole already writes a record all the
    same (it covers what other devices may still send), and says that it was; of a
    session the node does not hold, it says so (exit 1) and writes nothing. Whether it
    was is read from the session's row of the list, never from its projection (built
    and sent whole), and with ``--json``, which does not say it, not at all."""
    with NodeProcess(tmp_path) as node:
        append(node, "tg:alice:archived-2023", [message("kept")])  # listed first by that prefix
        append(node, "tg:alice", [message("one")])
        first = run_cli(node, "forget", "tg:alice")
        assert first.returncode == 0 and "forgotten whole already" not in first.stderr, first
        written = head(node)
        reads = session_reads(node)
        again = run_cli(node, "forget", "tg:alice")
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("forgot the session tg:alice (record ")
        assert ("it was forgotten whole already: this record also covers what other "
                "devices may still send of it") in again.stderr
        assert head(node) == written + 1
        assert session_reads(node) == (reads[0] + 1, reads[1])  # its row, no projection
        quiet = run_cli(node, "forget", "tg:alice", "--json")
        assert quiet.returncode == 0, quiet.stderr
        assert session_reads(node) == (reads[0] + 1, reads[1])
        written += 1
        missing = run_cli(node, "forget", "tg:alcie")
        assert missing.returncode == 1, missing
        # tg:alice, forgotten whole, is not named, as `clawsync sessions` hides it.
        assert "there is no session 'tg:alcie' on the node; `clawsync sessions` lists " \
            "them" in missing.stderr, missing.stderr
        assert head(node) == written + 1


def session_reads(node: NodeProcess) -> tuple[float, float]:
    """The reads of the session list and of a projection the node answered."""
    families = asyncio.run(scrape(node.url))
    return tuple(value(families, "clawsync_http_requests", "_total", method="GET",
                       route=route, status="200") or 0.0
                 for route in ("/v1/sessions", "/v1/sessions/{key}"))  # type: ignore[return-value]


def _forgotten(node: NodeProcess, key: str) -> bool:
    page = node.get(f"/v1/sessions?detail=1&prefix={key}")
    rows = {row["session_key"]: row for row in page["sessions"]}
    return bool(rows[key]["forgotten"])


def test_a_wholly_forgotten_session_is_marked_everywhere_until_it_writes_again(
        tmp_path: Any) -> None:
    """Forgetting a whole session on one node: once converged, every node's list says it
    is forgotten (``detail``) and ``clawsync sessions`` hides it with a note, while the
    plain list still names it; an event after the forget makes it a session again."""
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", token=TOKEN)
        b = cluster.node("b", token=TOKEN, peers=[a.url])
        ids = {e["id"] for e in append(a, "gone", [message("bye")])}
        ids |= {e["id"] for e in append(b, "kept", [message("stay")])}
        wait_converged([a, b], must_hold=ids)
        assert _status(a, "DELETE", session_path("gone"))[0] == 200
        wait_until(lambda: all(_forgotten(n, "gone") for n in (a, b)), 60,
                   "gone forgotten on a and b")
        for node in (a, b):
            assert not _forgotten(node, "kept")
            assert "gone" in {row["session_key"] for row in
                              node.get("/v1/sessions")["sessions"]}
            listed = run_cli(node, "sessions")
            assert listed.returncode == 0, listed.stderr
            assert "kept" in listed.stdout and "gone" not in listed.stdout
            assert "1 session whose every event was forgotten not shown" in listed.stderr
            rows = [json.loads(line) for line in run_cli(
                node, "sessions", "--json").stdout.splitlines()]
            assert {row["session_key"]: row["forgotten"] for row in rows} == {
                "gone": True, "kept": False}
        again = {e["id"] for e in append(b, "gone", [message("back")])}
        wait_converged([a, b], must_hold=ids | again)
        for node in (a, b):
            assert not _forgotten(node, "gone")
            assert "gone" in run_cli(node, "sessions").stdout
