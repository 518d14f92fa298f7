"""``clawsync serve`` as a person starts it: its options, its configuration file and its
errors, and ``status`` saying why a peer address is not linked."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.support.automerge import App, text_id
from tests.support.cluster import wait_until
from tests.support.processes import (
    START_TIMEOUT_S,
    NodeProcess,
    free_port,
    run_cli,
)

pytestmark = pytest.mark.integration


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """stdout of a command that must have succeeded (else show everything it said)."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def test_serve_refuses_an_open_address_without_a_token(tmp_path: Path) -> None:
    result = run_cli("http://127.0.0.1:1", "serve", "--host", "0.0.0.0",
                     "--port", str(free_port()), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert "--token" in result.stderr and "0.0.0.0" in result.stderr


def test_config_file_sets_options_and_limits(tmp_path: Path) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text('log-format = "json"\n'
                      "[limits]\nbody_bytes_max = 2000\npage-max = 150\n"
                      "[automerge_limits]\nframes_per_s = 0.5\nframes_burst = 2\n")
    with NodeProcess(tmp_path, extra_args=["--config", str(config)]) as node:
        # log-format = json; the line is written by the log's own thread, perhaps after
        # the node first answers
        wait_until(lambda: b'"event": "serving"' in node.log_path.read_bytes(),
                   timeout_s=START_TIMEOUT_S, what="the serving line in JSON")
        big = ok(run_cli(node, "append", "s1", "message_received", "content=" + "x" * 100))
        assert big.startswith("stored")
        result = run_cli(node, "append", "s1", "message_received", "content=" + "x" * 3000)
        assert result.returncode == 2 and "2000" in result.stderr  # 413: too large
        refused = run_cli(node, "events", "s1", "--limit", "151")
        assert refused.returncode == 2 and "150" in refused.stderr  # 400: over the limit
        assert asyncio.run(automerge_flood(node.url, frames=3)) == "more than 0.5 frames per second"


async def automerge_flood(url: str, frames: int) -> str:
    """Join /automerge and send ``frames`` - 1 more frames at once; the node's error."""
    app = App()
    async with aiohttp.ClientSession() as session, session.ws_connect(url + "/automerge") as ws:
        await ws.send_bytes(app.join())
        app.receive(await ws.receive_bytes())  # the node's peer message
        for _ in range(frames - 1):
            await ws.send_bytes(app.frame(type="ephemeral", targetId=app.server,
                                          documentId=text_id("x"), count=1, sessionId="s",
                                          data=b"\xa0"))
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                app.receive(bytes(message.data))
    return app.errors[-1]


@pytest.mark.parametrize(("text", "problem"), [
    ("[limits]\nbody_bytes = 1\n", "[limits] has no setting 'body_bytes'"),
    ("[limits]\nbody_bytes_max = 1.5\n", "body_bytes_max must be a whole number"),
    ("[automerge_limits]\nframes_per_s = -1\n", "frames_per_s must be positive"),
    ("limits = 3\n", "limits must be a table"),
    ("[limits]\npage_default = 50\npage_max = 10\n",
     "[limits] page_default (50, from the file) is above [limits] page_max (10, from the "
     "file)"),
    ("[automerge_limits]\nframes_per_s = nan\n", "frames_per_s must be positive and at most"),
    ("[automerge_limits]\nframes_burst = 1" + "0" * 40 + "\n", "frames_burst must be positive"),
    ("[limits]\nqueue_events_max = 10\n", "batch_events_max (1000, the default) is above"),
    ("[automerge_limits]\nserved_bytes_max = 1000000000\n",
     "served_bytes_max (1000000000, from the file) is above [automerge_limits] "
     "outbox_bytes_max"),
])
def test_config_file_errors_name_the_setting(tmp_path: Path, text: str, problem: str) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text(text)
    result = run_cli("http://127.0.0.1:1", "serve", "--config", str(config),
                     "--port", str(free_port()), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2, result.stderr
    assert problem in result.stderr and "Traceback" not in result.stderr


def test_status_says_why_a_peer_address_is_not_linked(tmp_path: Path) -> None:
    """`--peer` with this node's own port (a typo) showed as "peers 0" and nothing else,
    and a dial that fails as "backoff": the reasons were in the log alone."""
    node = NodeProcess(tmp_path, name="lonely")
    dead = f"http://127.0.0.1:{free_port()}"
    node.extra_args = ["--peer", node.url + "/", "--peer", dead]
    node.start()
    try:
        said = [f"--peer {node.url}/ is this node's own address: it is not dialed",
                f"{dead}: cannot reach {dead}"]
        wait_until(lambda: all(line in run_cli(node, "status").stdout for line in said), 30,
                   "status says why")
    finally:
        node.stop()
