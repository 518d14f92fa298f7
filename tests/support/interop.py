"""Node helpers the Automerge interop tests share: an event, an append, a projection and
the websocket URL of a real node process, and a wait until two nodes' projections agree."""

from __future__ import annotations

import json
import urllib.request
from typing import Any
from urllib.parse import quote

from tests.support.processes import NodeProcess
from tests.support.waits import PROCESS_DEADLINE_S, wait_until

BASE_MS = 1_790_000_000_000


def ws_url(node: NodeProcess, token: str | None = None) -> str:
    url = node.url.replace("http://", "ws://") + "/automerge"
    return url + (f"?token={quote(token)}" if token else "")


def message(n: int, content: str | None = None) -> dict[str, Any]:
    return {"agent_id": "main", "hlc": [BASE_MS + n, 0],
            "kind": {"type": "message_received", "content": content or f"m{n}"}}


def append(node: NodeProcess, key: str, *events: dict[str, Any],
           token: str | None = None) -> None:
    request = urllib.request.Request(
        f"{node.url}/v1/sessions/{quote(key, safe='')}/events", method="POST",
        data=json.dumps(list(events)).encode(), headers={"Content-Type": "application/json"})
    if token or node.token:
        request.add_header("Authorization", f"Bearer {token or node.token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201)


def projection(node: NodeProcess, key: str) -> dict[str, Any]:
    return node.get(f"/v1/sessions/{quote(key, safe='')}")


def wait_converged(a: NodeProcess, b: NodeProcess, key: str) -> None:
    """Wait until ``a`` and ``b`` show the same projection of ``key`` (a node not
    answering yet counts as not yet); fail after ``PROCESS_DEADLINE_S``."""
    wait_until(lambda: projection(a, key) == projection(b, key), PROCESS_DEADLINE_S,
               f"{a.url} and {b.url} showing the same projection of {key}")
