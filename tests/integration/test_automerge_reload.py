"""Apps keep the right to edit ``custom_state`` after the node reloads session documents
from disk: after a restart, and after documents leave memory (the in-memory limit, the
idle sweep). Real node processes, real npm automerge-repo clients.

A loaded document numbers its actors in sorted order, a new one in order of writing, so
the sessions are chosen half with a genesis actor that sorts before the node's actor and
half after it: the second half is where object ids of a reloaded document differ from
those of the document first built."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from crdt.automerge.document import automerge_url, document_id, genesis_actor, node_actor
from tests.support.interop import append, message, projection, ws_url
from tests.support.jsclient import JsClient, require_npm_packages
from tests.support.processes import NodeProcess

pytestmark = pytest.mark.integration

#: Sessions of each order (genesis actor before / after the node's).
SESSIONS_PER_ORDER = 7
#: Seconds every edit may take to become an event in the projection.
EDITS_TIMEOUT_S = 60.0


@pytest.fixture(scope="module", autouse=True)
def npm_packages() -> None:
    require_npm_packages()


def sessions_for(node: NodeProcess) -> list[str]:
    """Session keys, ``SESSIONS_PER_ORDER`` whose genesis actor sorts before the node's
    actor, as many after it."""
    actor = node_actor(node.get("/healthz")["node_id"])
    before: list[str] = []
    after: list[str] = []
    for n in range(10_000):
        key = f"app:{n}"
        side = after if genesis_actor(document_id(key)) > actor else before
        if len(side) < SESSIONS_PER_ORDER:
            side.append(key)
        if len(before) == len(after) == SESSIONS_PER_ORDER:
            return before + after
    raise AssertionError("no session keys of both orders")


def create(node: NodeProcess, keys: list[str]) -> None:
    for n, key in enumerate(keys):
        append(node, key, message(n))


def open_all(js: JsClient, repo: str, node: NodeProcess, keys: list[str]) -> None:
    """An app syncs every session's document (the node builds and saves each)."""
    js.call("connect", repo=repo, ws=ws_url(node))
    for key in keys:
        assert js.call("find", repo=repo, url=automerge_url(key))["doc"]["session_key"] == key


def edit_all(js: JsClient, repo: str, keys: list[str]) -> None:
    for key in keys:
        js.call("change", repo=repo, url=automerge_url(key),
                set={"custom_state.edited": f"by the app in {key}"})


def wait_for_edits(node: NodeProcess, keys: list[str]) -> dict[str, Any]:
    """Every session's projection once it shows its edit; fails at the deadline naming
    the sessions whose edit never arrived."""
    views: dict[str, Any] = {}

    async def poll() -> None:
        while True:
            for key in keys:
                views[key] = projection(node, key)
            if all(views[k]["custom_state"].get("edited") == f"by the app in {k}"
                   for k in keys):
                return
            await asyncio.sleep(0.2)

    async def bounded() -> None:
        async with asyncio.timeout(EDITS_TIMEOUT_S):
            await poll()

    try:
        asyncio.run(bounded())
    except TimeoutError:
        missing = [k for k in keys if views[k]["custom_state"].get("edited") is None]
        raise AssertionError(f"edits never arrived in {len(missing)} of {len(keys)} "
                             f"sessions: {missing}") from None
    return views


def assert_nothing_refused(node: NodeProcess) -> None:
    text = node.log_path.read_text()
    assert "replaced or deleted" not in text and "changes refused" not in text


def test_apps_edit_custom_state_after_a_restart(tmp_path: Path, js: JsClient) -> None:
    with NodeProcess(tmp_path) as node:
        keys = sessions_for(node)
        create(node, keys)
        open_all(js, "before", node, keys)
        js.call("disconnect", repo="before", ws=ws_url(node))
        node.restart()
        open_all(js, "after", node, keys)
        edit_all(js, "after", keys)
        views = wait_for_edits(node, keys)
        assert all(view["message_count"] == 1 for view in views.values())
        assert_nothing_refused(node)


@pytest.mark.parametrize("limits", [
    "[limits]\ndocuments_in_memory_max = 2\n",
    "[automerge_limits]\ndocuments_idle_s = 0.5\nsweep_interval_s = 0.1\n",
], ids=["memory-limit", "idle"])
def test_apps_edit_custom_state_after_documents_leave_memory(
        tmp_path: Path, js: JsClient, limits: str) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text(limits)
    with NodeProcess(tmp_path, extra_args=["--config", str(config)]) as node:
        keys = sessions_for(node)
        create(node, keys)
        open_all(js, "app", node, keys)
        # The in-memory limit has dropped all but the last documents by now; the idle
        # sweep drops every one within a second.
        time.sleep(1.5)
        edit_all(js, "app", keys)
        wait_for_edits(node, keys)
        assert_nothing_refused(node)
