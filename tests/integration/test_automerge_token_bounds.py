"""Automerge tokens are held to what the node's own token is (``node.checks``): at most
``TOKEN_CHARS_MAX`` characters, no control character. A file holding another is refused
at start; a client presenting another is told why (401), and neither is ever shown."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import aiohttp
from yarl import URL

from node.checks import TOKEN_CHARS_MAX
from tests.support.processes import CLI_TIMEOUT_S, NodeProcess, child_env, free_port

#: A token as long as a token may be: taken, from the file and on the websocket.
LONGEST = "L" * TOKEN_CHARS_MAX
TOO_LONG = "T" * (TOKEN_CHARS_MAX + 1)


def serve_with(tmp_path: Path, table: dict[str, object]) -> subprocess.CompletedProcess[str]:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(table))
    command = NodeProcess(Path("/nonexistent")).command()[:4]  # python -m node.main serve
    return subprocess.run([*command, "--host", "127.0.0.1", "--port", str(free_port()),
                           "--data-dir", str(tmp_path / "data"),
                           "--automerge-tokens", str(tokens)],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                          env=child_env({"CLAWSYNC_TOKEN": "node-token"}))


def test_a_file_token_no_node_takes_is_refused_at_start_unshown(tmp_path: Path) -> None:
    for token, said in ((TOO_LONG, f"is longer than {TOKEN_CHARS_MAX} characters"),
                        ("app-to\r\nken", "holds a control character"),
                        ("app-\x7ftoken", "holds a control character")):
        refused = serve_with(tmp_path, {"good-app-token": {}, token: {"read_only": True}})
        assert refused.returncode == 2, refused.stderr
        words = " ".join(refused.stderr.split())
        assert "token 2 of the table" in words and said in words, refused.stderr
        # A JSON string holds no line end by accident: no guess about CRLF files.
        assert "CRLF" not in words, refused.stderr
        # Neither the token, nor its start or a middle piece as Python would show them.
        for piece in (token.strip()[:8], repr(token)[1:9], token[3:7], repr(token)[4:10]):
            assert piece not in refused.stderr, (piece, refused.stderr)
        assert "Traceback" not in refused.stderr
        assert not (tmp_path / "data").exists()  # refused before anything opened


def test_a_malformed_table_entry_is_named_by_the_file(tmp_path: Path) -> None:
    """As a token no node takes is: the file, then the entry's place, never the token."""
    for token, said in (("padded-app-token ", "its token begins or ends with white space"),
                        ("short", "a token must be a string of at least 8 characters")):
        refused = serve_with(tmp_path, {"good-app-token": {}, token: {}})
        assert refused.returncode == 2, refused.stderr
        words = " ".join(refused.stderr.split())
        assert f"{tmp_path / 'tokens.json'}: token 2 of the table: {said}" in words, words
        assert token.strip() not in refused.stderr and "Traceback" not in refused.stderr
        assert not (tmp_path / "data").exists()


async def _status_and_body(url: URL, headers: dict[str, str] | None = None
                           ) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, \
            session.get(url, headers=headers or {}) as response:
        return response.status, await response.text()


async def _opens(node: NodeProcess, token: str) -> bool:
    url = node.url.replace("http://", "ws://") + "/automerge"
    async with aiohttp.ClientSession() as session, session.ws_connect(
            url, headers={"Authorization": f"Bearer {token}"}) as ws:
        return not ws.closed


def test_a_presented_token_no_node_takes_is_told_why_unshown(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({LONGEST: {"read_only": True}}))
    with NodeProcess(tmp_path, token="node-token",
                     extra_args=["--automerge-tokens", str(tokens)]) as node:
        base = URL(node.url)
        refused = [
            (base.with_path("/automerge").with_query(token=TOO_LONG), None, "longer than"),
            (base.with_path("/automerge"), {"Authorization": f"Bearer {TOO_LONG}"},
             "longer than"),
            (URL(f"{node.url}/automerge?token=app%0Atoken", encoded=True), None,
             "control character"),
            # A tab is valid in a header's value: no token holds one.
            (base.with_path("/automerge"), {"Authorization": "Bearer app\ttoken"},
             "control character"),
        ]
        for url, headers, said in refused:
            status, body = asyncio.run(_status_and_body(url, headers))
            assert status == 401, body
            assert said in json.loads(body)["error"]["message"], body
            assert "TTTTTTTT" not in body and "app" not in body
        # The longest token a node takes still opens the websocket.
        assert asyncio.run(_opens(node, LONGEST))
        assert node.get("/healthz")["status"] == "ok"
        assert "TTTTTTTT" not in node.log_path.read_text(errors="replace")
