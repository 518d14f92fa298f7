"""``clawsync tokens create`` on a node started without ``--token`` warns that the token
limits little there: the API is open to every local client (README, "Automerge
clients"). On a node with ``--token`` it says nothing of the kind."""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import NodeProcess, run_cli

CREATE = ("tokens", "create", "--sessions", "tg:*", "--name", "app")


def test_a_token_issued_on_a_node_without_token_comes_with_a_warning(
        tmp_path: Path) -> None:
    with NodeProcess(tmp_path) as node:
        for token in (None, "any-token-it-ignores"):
            done = run_cli(node, *CREATE, token=token)
            assert done.returncode == 0, done.stderr
            assert len(done.stdout.strip()) > 20  # the secret, printed as ever
            said = " ".join(done.stderr.split())
            assert "warning: the node runs without --token" in said, said
            assert "/v1 (forgets included) is open to every local client" in said
        as_json = run_cli(node, *CREATE, "--json")
        assert as_json.returncode == 0 and as_json.stdout.startswith("{"), as_json.stderr
        assert "warning: the node runs without --token" in as_json.stderr


def test_a_token_issued_on_a_node_with_token_comes_without_it(tmp_path: Path) -> None:
    with NodeProcess(tmp_path, token="node-secret-token") as node:
        done = run_cli(node, *CREATE, token="node-secret-token")
        assert done.returncode == 0, done.stderr
        assert "without --token" not in done.stderr and "token " in done.stderr
