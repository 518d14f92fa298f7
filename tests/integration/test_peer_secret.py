"""The peer API without the cluster secret, with real node processes: missing, wrong,
or the client token instead, the peer websocket and the member list answer 401 and
nothing else; a node configured with another secret never receives an event, nor
delivers one.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from tests.support.cluster import (
    SECRET,
    Cluster,
    append,
    head,
    message,
    peer_rows,
    wait_converged,
    wait_until,
)
from tests.support.peer_attack import MEMBERS, PEER_WS, ids_of, peer_headers

pytestmark = pytest.mark.integration

TOKEN = "client-token-for-apps"


# -- credentials ---------------------------------------------------------------------------


async def peer_api_status(url: str, secret: str | None) -> tuple[int, int, str]:
    """(websocket handshake status, members status, members body) with ``secret``."""
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(url + PEER_WS, headers=peer_headers(secret)) as ws:
                await ws.close()
                ws_status = 101
        except aiohttp.WSServerHandshakeError as error:
            ws_status = error.status
        async with http.get(url + MEMBERS, headers=peer_headers(secret)) as reply:
            return ws_status, reply.status, await reply.text()


def test_peer_api_needs_the_cluster_secret(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", token=TOKEN)
        append(a, "private", [message("not for strangers")])
        node_id = a.get("/healthz")["node_id"]
        for secret in (None, "wrong-secret", TOKEN, SECRET + "x", SECRET[:-1]):
            ws_status, members_status, body = asyncio.run(peer_api_status(a.url, secret))
            assert (ws_status, members_status) == (401, 401), secret
            assert json.loads(body)["error"]["code"] == "unauthorized"
            assert node_id not in body and "private" not in body
        # The right secret opens both (so the refusals above are about credentials) ...
        ws_status, members_status, body = asyncio.run(peer_api_status(a.url, SECRET))
        assert (ws_status, members_status) == (101, 200)
        assert json.loads(body)["node_id"] == node_id
        # ... and the cluster secret does not open the client API.
        events_url = f"{a.url}/v1/events"
        for credential in (SECRET, None):
            headers = {} if credential is None else {"Authorization": f"Bearer {credential}"}
            status = asyncio.run(get_status(events_url, headers))
            assert status == 401

        lone = cluster.node("lone", secret=None)  # no secret: no peer API at all
        assert asyncio.run(peer_api_status(lone.url, SECRET))[:2] == (401, 401)


async def get_status(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as reply:
        return reply.status


def test_node_with_another_secret_never_exchanges_events(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        from_a = {e["id"] for e in append(a, "cluster", [message(f"a{n}") for n in range(20)])}
        outsider = cluster.node("outsider", peers=[a.url], secret="another-secret")
        from_outsider = {e["id"] for e in append(outsider, "cluster",
                                                 [message(f"o{n}") for n in range(20)])}
        # It dials a and is refused: its secret is wrong and its device no member (403).
        wait_until(lambda: any(row["state"] == "refused" for row in peer_rows(outsider)), 30,
                   "the outsider was refused")
        # Meanwhile an honest node started later has long converged with a.
        b = cluster.node("b", peers=[a.url])
        from_b = {e["id"] for e in append(b, "cluster", [message(f"b{n}") for n in range(20)])}
        ids = wait_converged([a, b], must_hold=from_a | from_b)
        assert ids == from_a | from_b
        assert ids_of(outsider) == from_outsider
        assert head(outsider) == 20 + 1  # and its device key's record
        assert all(row["state"] != "up" for row in peer_rows(outsider))
        outsider_id = outsider.get("/healthz")["node_id"]
        assert outsider_id not in {row["node_id"] for row in peer_rows(a)}
