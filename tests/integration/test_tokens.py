"""Automerge tokens issued by a device, with real node processes, the real CLI and a real
npm automerge-repo client: a token created on node A opens its sessions (read-only) on
node B once the record replicated; revoked on B, it disconnects its client on A and is
refused everywhere; so is a token issued on a device that is then removed; the secret
reaches no log and no data folder; bad input changes nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import cbor2
import pytest
from click.testing import CliRunner

from crdt.automerge.document import automerge_url
from node.cli.group import main
from node.cli.tokens import HEADERS
from node.text import time_text
from tests.support.cluster import Cluster, wait_until
from tests.support.devices import device_id, paired
from tests.support.interop import append, message, projection, ws_url
from tests.support.jsclient import JsClient, require_npm_packages
from tests.support.processes import NodeProcess, run_cli
from tests.support.waits import PROCESS_DEADLINE_S

pytestmark = pytest.mark.integration

CLUSTER_SECRET = "cluster-secret-for-tests"
NODE_TOKEN = "node-token-for-tests"


@pytest.fixture
def js(tmp_path: Path) -> Iterator[JsClient]:
    require_npm_packages()
    with JsClient(tmp_path / "js.log") as client:
        yield client


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def listed(node: NodeProcess) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in node.get("/v1/tokens")["tokens"]}


async def revoked_while_connected(a: NodeProcess, secret: str,
                                  revoke: Callable[[], object]) -> tuple[int, str]:
    """A client joined on A with ``secret``; ``revoke()`` run (elsewhere): the close A
    sent."""
    async with aiohttp.ClientSession() as session, session.ws_connect(
            ws_url(a, secret)) as ws:
        await ws.send_bytes(cbor2.dumps({"type": "join", "senderId": "watcher",
                                         "supportedProtocolVersions": ["1"]}))
        assert (await ws.receive()).type == aiohttp.WSMsgType.BINARY  # peer: joined
        await asyncio.to_thread(revoke)
        async with asyncio.timeout(PROCESS_DEADLINE_S):
            while (frame := await ws.receive()).type == aiohttp.WSMsgType.BINARY:
                pass  # the error message saying why comes first
        assert frame.type == aiohttp.WSMsgType.CLOSE
        return frame.data, frame.extra


def status_of(node: NodeProcess, secret: str) -> int:
    async def attempt() -> int:
        async with aiohttp.ClientSession() as session, session.get(
                ws_url(node, secret)) as response:
            return response.status

    return asyncio.run(attempt())


def test_a_token_issued_on_a_works_on_b_and_revoked_on_b_leaves_a(
        tmp_path: Path, js: JsClient) -> None:
    common = ["--cluster-secret", CLUSTER_SECRET, "--pull-interval", "0.2"]
    a = NodeProcess(tmp_path, name="a", token=NODE_TOKEN, extra_args=common)
    a.extra_args += ["--advertise-url", a.url]
    b = NodeProcess(tmp_path, name="b", token=NODE_TOKEN, extra_args=[*common, "--peer", a.url])
    with a, b:
        append(a, "tg:alice", message(1))
        append(a, "web:bob", message(1))
        made = json.loads(ok(run_cli(a, "tokens", "create", "--sessions", "tg:*",
                                     "--read-only", "--name", "dashboard", "--json")))
        secret, token_id = made["token"], made["id"]
        wait_until(lambda: token_id in listed(b), PROCESS_DEADLINE_S, "the token listed on b")
        wait_until(lambda: projection(b, "tg:alice")["message_count"] == 1,
                   PROCESS_DEADLINE_S, "the message on b")
        row = listed(b)[token_id]
        assert (row["name"], row["sessions"], row["read_only"], row["revoked"]) \
            == ("dashboard", ["tg:*"], True, False)
        assert row["origin"] == made["origin"] and "token" not in row
        table = ok(run_cli(b, "tokens"))
        assert token_id in table and "read-only" in table and "valid" in table

        # A real app on B, with the token A issued.
        js.call("connect", repo="app", ws=ws_url(b, secret))
        found = js.call("find", repo="app", url=automerge_url("tg:alice"))
        assert [m["content"] for m in found["doc"]["messages"].values()] == ["m1"]
        assert "unavailable" in js.call("find", repo="app",
                                        url=automerge_url("web:bob"))["unavailable"]
        js.call("change", repo="app", url=automerge_url("tg:alice"),
                set={"custom_state.mood": "x"})
        wait_until(lambda: "this token is read-only" in b.log_path.read_text(),
                   PROCESS_DEADLINE_S, "b logs the token is read-only")
        assert projection(b, "tg:alice")["custom_state"] == {}

        # Revoked on B: the client on A is disconnected, and both nodes refuse it.
        code, reason = asyncio.run(revoked_while_connected(
            a, secret, lambda: ok(run_cli(b, "tokens", "revoke", token_id))))
        assert (code, reason) == (1008, "this token was revoked")
        assert status_of(a, secret) == status_of(b, secret) == 401
        assert listed(a)[token_id]["revoked"] and listed(b)[token_id]["revoked"]
        assert "revoked" in ok(run_cli(a, "tokens"))
        # Revoked again (on A, once the record reached it): said so, not revoked anew.
        revoked_at = listed(a)[token_id]["revoked_at"]
        assert ok(run_cli(a, "tokens", "revoke", token_id.upper())).endswith(
            f"was already revoked {time_text(revoked_at)}\n")  # (an id as people may copy it)
        assert listed(a)[token_id]["revoked_at"] == revoked_at

    # The secret reached no log and no data folder (the records hold its hash).
    for node in (a, b):
        assert secret not in node.log_path.read_text()
        for path in node.data_dir.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


def test_removing_a_device_revokes_the_tokens_it_issued(tmp_path: Path, js: JsClient) -> None:
    with Cluster(tmp_path) as cluster:
        a, b, p = paired(cluster)
        append(a, "tg:alice", message(1))
        made = json.loads(ok(run_cli(p, "tokens", "create", "--sessions", "tg:*",
                                     "--name", "phone app", "--json")))
        secret, token_id = made["token"], made["id"]
        kept = json.loads(ok(run_cli(a, "tokens", "create", "--sessions", "*", "--json")))
        wait_until(lambda: token_id in listed(a) and kept["id"] in listed(b),
                   PROCESS_DEADLINE_S, "each token listed on the other node")
        wait_until(lambda: projection(a, "tg:alice")["message_count"] == 1,
                   PROCESS_DEADLINE_S, "the message on a")
        assert listed(a)[token_id]["device_id"] == device_id(p)

        # A real app on A, with the token the phone issued.
        js.call("connect", repo="app", ws=ws_url(a, secret))
        found = js.call("find", repo="app", url=automerge_url("tg:alice"))
        assert [m["content"] for m in found["doc"]["messages"].values()] == ["m1"]
        opened = status_of(a, secret)
        assert opened != 401

        # The phone removed on B: A drops the client using its token, and refuses it.
        removal: list[subprocess.CompletedProcess[str]] = []
        code, reason = asyncio.run(revoked_while_connected(
            a, secret, lambda: removal.append(run_cli(b, "devices", "remove", device_id(p)))))
        assert (code, reason) == (1008, "the device that issued this token was removed")
        ok(removal[0])
        assert "the tokens it issued" in removal[0].stderr
        assert status_of(a, secret) == status_of(b, secret) == 401
        for node in (a, b):
            row = listed(node)[token_id]
            assert (row["state"], row["revoked"]) == ("issuer removed", True)
            assert row["revoked_at"] is None  # no revocation record names it
            assert listed(node)[kept["id"]]["state"] == "valid"
            assert status_of(node, kept["token"]) == opened  # A's token still opens
        table = ok(run_cli(a, "tokens"))
        assert "issuer removed" in table and "valid" in table
        # Piped, the whole id of the device that issued each (`devices remove` takes it)
        # and its name, as `devices` gives them; the table has the first group only.
        lines = {line.split()[0]: line for line in table.splitlines()}
        assert f"  {device_id(p)} (phone)  " in lines[token_id]
        assert f"  {device_id(a)} (this device)  " in lines[kept["id"]]
        a.stop()  # read again from the log at start: still refused
        a.start()
        assert status_of(a, secret) == 401 and status_of(a, kept["token"]) == opened
        # Revoking it too is still a record of its own (shown first).
        assert ok(run_cli(a, "tokens", "revoke", token_id)).endswith(
            "was already refused (issuer removed); now revoked too\n")
        assert listed(a)[token_id]["state"] == "revoked"


def test_bad_input_changes_nothing(tmp_path: Path) -> None:
    with NodeProcess(tmp_path, token=NODE_TOKEN) as node:
        missing = run_cli(node, "tokens", "create")
        assert missing.returncode == 2 and "--sessions" in missing.stderr
        for args, says in ((["--sessions", ""], "refused issuing the token: sessions[0]"),
                           (["--sessions", "*", "--name", "n" * 129], "name")):
            refused = run_cli(node, "tokens", "create", *args)
            assert refused.returncode == 2 and says in refused.stderr, refused.stderr
        unknown = run_cli(node, "tokens", "revoke", "0123456789abcdef")
        assert unknown.returncode == 1 and "no token" in unknown.stderr
        malformed = run_cli(node, "tokens", "revoke", "nope")
        assert malformed.returncode == 2 and "token_id" in malformed.stderr
        assert node.get("/v1/tokens") == {"tokens": []}
        assert ok(run_cli(node, "tokens")) == ""


def test_tokens_are_listed_when_the_node_fails_to_name_the_devices(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain lines name the device that issued each token as ``GET /v1/devices``
    does; where that request fails (a 5xx, a timeout), the tokens are listed all the
    same, each device by its id alone, and a note says why. The table names none: on a
    terminal wide enough for it, the devices are not asked for."""
    with NodeProcess(tmp_path, token=NODE_TOKEN,
                     program="tests.support.devices_failing_node") as node:
        issued = json.loads(ok(run_cli(node, "tokens", "create", "--sessions", "*",
                                       "--name", "dashboard", "--json")))
        device = listed(node)[issued["id"]]["device_id"]
        failed = run_cli(node, "devices")
        assert failed.returncode == 1 and "500" in failed.stderr, failed.stderr
        piped = run_cli(node, "tokens")
        assert piped.returncode == 0, piped.stderr
        line, = piped.stdout.splitlines()[1:]
        assert line.split()[:5] == [issued["id"], "dashboard", "*", "read-write", device]
        assert "devices by id alone" in piped.stderr and "HTTP 500" in piped.stderr, \
            piped.stderr

        monkeypatch.setattr("node.cli.output.is_terminal", lambda: True)
        # 60 columns: a table without the time issued and the issuer; 50: the lines.
        for columns, headers in (("200", HEADERS), ("60", ["id", "name", "sessions",
                                                           "access", "state"]), ("50", None)):
            table = headers is not None
            shown = CliRunner().invoke(main, ["--node", node.url, "--token", NODE_TOKEN,
                                              "tokens"], env={"COLUMNS": columns})
            assert shown.exit_code == 0, shown.output
            assert (shown.stdout.splitlines()[0].split() == headers) is table, shown.stdout
            assert ("devices by id alone" in shown.stderr) is not table, shown.stderr
