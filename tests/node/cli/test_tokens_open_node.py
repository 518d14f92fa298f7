"""``clawsync tokens create`` on a node started without ``--token`` warns that the token
limits little there: the API is open to every local client (README, "Automerge
clients"). On a node with ``--token`` it says nothing of the kind. The new token's
answer says which it is (``node_token_required``): one request, counted in the node's
``/metrics``; a node older than that field is asked with ``GET /v1/node``."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import NodeProcess, run_cli
from tests.support.stand_in import Quiet, serving

CREATE = ("tokens", "create", "--sessions", "tg:*", "--name", "app")
WARNING = "warning: the node runs without --token"


def answered(node: NodeProcess) -> Counter[tuple[str, str, str]]:
    """The requests ``node`` answered so far, by method, route and status (its
    ``/metrics``, read with its token)."""
    request = urllib.request.Request(node.url + "/metrics")
    if node.token is not None:
        request.add_header("Authorization", f"Bearer {node.token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    counts: Counter[tuple[str, str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "clawsync_http_requests_total":
                labels = sample.labels
                counts[labels["method"], labels["route"], labels["status"]] += int(sample.value)
    return counts


def test_a_token_issued_on_a_node_without_token_comes_with_a_warning(
        tmp_path: Path) -> None:
    with NodeProcess(tmp_path) as node:
        for token in (None, "any-token-it-ignores"):
            done = run_cli(node, *CREATE, token=token)
            assert done.returncode == 0, done.stderr
            assert len(done.stdout.strip()) > 20  # the secret, printed as ever
            said = " ".join(done.stderr.split())
            assert WARNING in said, said
            assert "/v1 (forgets included) is open to every local client" in said
        as_json = run_cli(node, *CREATE, "--json")
        assert as_json.returncode == 0 and as_json.stdout.startswith("{"), as_json.stderr
        assert WARNING in as_json.stderr
        assert json.loads(as_json.stdout)["node_token_required"] is False
        counts = answered(node)
    # The token's answer told: the node was not asked again.
    assert counts["POST", "/v1/tokens", "201"] == 3
    assert not [key for key in counts if key[1] == "/v1/node"], counts


def test_a_token_issued_on_a_node_with_token_comes_without_it(tmp_path: Path) -> None:
    with NodeProcess(tmp_path, token="node-secret-token") as node:
        done = run_cli(node, *CREATE, token="node-secret-token")
        assert done.returncode == 0, done.stderr
        assert "without --token" not in done.stderr and "token " in done.stderr
        as_json = run_cli(node, *CREATE, "--json", token="node-secret-token")
        assert as_json.returncode == 0, as_json.stderr
        assert json.loads(as_json.stdout)["node_token_required"] is True
        counts = answered(node)
    # No request without the token, refused (401), to learn that the node needs one.
    assert counts["POST", "/v1/tokens", "201"] == 2
    assert not [key for key in counts if key[1] == "/v1/node" or key[2] == "401"], counts


@pytest.fixture(params=[False, True], ids=["open", "with-token"])
def older_node(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[str], bool]]:
    """A node older than ``node_token_required``, open or with a token: its base URL,
    the requests it answered ("METHOD PATH STATUS") and whether it needs a token."""
    needs_token: bool = request.param
    seen: list[str] = []

    class Older(Quiet):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.reply(201, {"id": "t1", "name": "app", "sessions": ["tg:*"],
                             "read_only": False, "token": "s" * 43})

        def do_GET(self) -> None:
            if needs_token and self.headers.get("Authorization") is None:
                self.send_response(401)
                body = json.dumps({"error": {"code": "unauthorized",
                                             "message": "a token is needed"}}).encode()
                self.send_header("WWW-Authenticate", "Bearer")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                seen.append(f"GET {self.path} 401")
            else:
                self.reply(200, {"node_id": "n", "software": "0.3.0"})

        def reply(self, status: int, body: Any) -> None:
            seen.append(f"{self.command} {self.path} {status}")
            self.answer(status, body)

    with serving(Older) as url:
        yield url, seen, needs_token


def test_an_older_node_is_asked_without_the_token(
        older_node: tuple[str, list[str], bool]) -> None:
    url, seen, needs_token = older_node
    done = run_cli(url, *CREATE, token="node-secret-token")
    assert done.returncode == 0, done.stderr
    assert (WARNING in done.stderr) is not needs_token, done.stderr
    assert seen == ["POST /v1/tokens 201", f"GET /v1/node {401 if needs_token else 200}"]
