"""``GET /v1/origins`` and ``DELETE /v1/origins/{origin}`` on a real node in this process:
the token, clear refusals that write nothing, and the answers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

import aiohttp

from crdt.clock import Hlc
from crdt.log import retire
from node.peers.transport import NODE_HEADER, PEER_PATH
from node.server.run import RunningNode
from sync.peer.messages import Hello, encode
from tests.support.events import event
from tests.support.waits import until

NodeFactory = Callable[..., Awaitable[RunningNode]]
TOKEN = "t" * 32
OLD = "0123456789abcdef"
SECRET = "s" * 32
#: Seconds to wait for a peer's link to show up on the node: three times
#: ``tests.support.waits.DEADLINE_S``, the margin this test was written with, kept as
#: a longer bound costs nothing when the link comes up.
LINK_UP_DEADLINE_S = 30.0


@contextlib.asynccontextmanager
async def linked_as(node: RunningNode, origin: str) -> AsyncIterator[None]:
    """A peer linked by the cluster secret whose hello names ``origin``, held open (an
    older node, or one that has not heard yet that its origin was retired)."""
    sent = {"Authorization": f"Bearer {SECRET}", NODE_HEADER: origin}
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(node.url + PEER_PATH, headers=sent, max_msg_size=0) as ws:
        await ws.send_bytes(encode(Hello(origin, {})))
        await until(lambda: any(row["state"] == "up" and row["node_id"] == origin
                                for row in node.gossip.status()), within_s=LINK_UP_DEADLINE_S)
        yield


async def test_origins_are_listed_and_retired_with_the_token(make_node: NodeFactory) -> None:
    node = await make_node(token=TOKEN)
    await node.astore.write(lambda store: store.ingest(
        [(event(ms=1_000 + n, content=f"old {n}"), OLD, n) for n in (1, 2)]))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(base_url=node.url) as http:
        for method in ("GET", "DELETE"):
            path = "/v1/origins" if method == "GET" else f"/v1/origins/{OLD}"
            async with http.request(method, path) as answer:
                assert answer.status == 401
        head = node.astore.head
        for origin, status in ((node.astore.node_id, 400), ("fedcba9876543210", 404),
                               ("nobody", 400), ("FEDCBA9876543210", 400), ("zz", 400),
                               ("a\u0000b", 400), ("o" * 65, 413)):
            async with http.delete("/v1/origins/" + quote(origin, safe=""),
                                   headers=auth) as answer:
                body = await answer.json()
                assert answer.status == status and "error" in body, (origin, body)
        async with http.delete("/v1/origins/zz", headers=auth) as answer:
            assert (await answer.json())["error"] == {
                "code": "invalid_input", "field": "origin",
                "message": "'zz' is not an origin id (16 hex digits, as GET "
                           "/v1/origins lists them), nor an origin this node knows"}
        assert node.astore.head == head  # refused: nothing written
        async with http.get("/v1/origins", headers=auth) as answer:
            listed = {row["origin"]: row for row in (await answer.json())["origins"]}
        assert listed[OLD]["state"] == "active" and listed[OLD]["seq"] == 2
        assert listed[OLD]["last_activity"] == "1970-01-01T00:00:01.002Z"
        async with http.delete(f"/v1/origins/{OLD}", headers=auth) as answer:
            assert answer.status == 201
            body = await answer.json()
        assert body["origin"]["state"] == "retired" and body["origin"]["final_seq"] == 2
        assert body["event"]["kind"] == {"type": "origin_retired", "origin": OLD,
                                         "final_seq": 2}
        async with http.delete(f"/v1/origins/{OLD}", headers=auth) as answer:
            assert answer.status == 200 and (await answer.json())["event"] is None
        async with http.get("/v1/origins", headers=auth) as answer:
            view = await answer.json()
        assert view["active"] == 1 and node.astore.node_id in [
            row["origin"] for row in view["origins"] if row["own"]]


async def test_a_held_origin_a_peer_named_otherwise_is_retired(make_node: NodeFactory
                                                               ) -> None:
    """Peers may name origins as they like (up to 64 bytes): only a name not held is
    refused for its shape."""
    node = await make_node(token=TOKEN)
    await node.astore.write(lambda store: store.ingest(
        [(event(ms=1_000, content="old"), "old-peer", 1)]))
    async with aiohttp.ClientSession(base_url=node.url) as http, \
            http.delete("/v1/origins/old-peer",
                        headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
        assert answer.status == 201, await answer.text()


async def test_an_origin_known_only_from_a_retirement_is_404_whatever_its_name(
        make_node: NodeFactory) -> None:
    """A peer's retirement of an origin this node holds no event of lists that origin,
    under the name the peer gave it: retiring it here is "holds no events" (404, it may
    work once its events arrive), not a name no origin can have (400)."""
    node = await make_node(token=TOKEN)
    ghosts = ("ghost-peer", OLD)
    await node.astore.write(lambda store: store.ingest(
        [(retire.retirement(ghost, 5).seal(Hlc(1_000 + n, 0)), "fedcba9876543210", n + 1)
         for n, ghost in enumerate(ghosts)]))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    head = node.astore.head
    async with aiohttp.ClientSession(base_url=node.url) as http:
        async with http.get("/v1/origins", headers=auth) as answer:
            listed = {row["origin"]: row for row in (await answer.json())["origins"]}
        for ghost in ghosts:
            assert listed[ghost]["state"] == "retiring" and listed[ghost]["seq"] == 0
            async with http.delete("/v1/origins/" + ghost, headers=auth) as answer:
                body = await answer.json()
                assert answer.status == 404, (ghost, body)
                assert body["error"]["code"] == "not_found", body
    assert node.astore.head == head


async def test_force_is_a_flag_and_never_retires_the_nodes_own(make_node: NodeFactory
                                                               ) -> None:
    """``force`` takes ``1``/``true``/``0``/``false``; another value or parameter is 400,
    and this node's own origin stays 400 forced or not: nothing is written."""
    node = await make_node(token=TOKEN)
    await node.astore.write(lambda store: store.ingest(
        [(event(ms=1_000 + n, content=f"old {n}"), OLD, n) for n in (1, 2)]))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    head = node.astore.head
    async with aiohttp.ClientSession(base_url=node.url) as http:
        for query, field in (("force=yes", "force"), ("forse=1", "forse")):
            async with http.delete(f"/v1/origins/{OLD}?{query}", headers=auth) as answer:
                body = await answer.json()
                assert answer.status == 400 and body["error"]["field"] == field, body
        async with http.delete(f"/v1/origins/{node.astore.node_id}?force=1",
                               headers=auth) as answer:
            assert answer.status == 400
        assert node.astore.head == head
        async with http.delete(f"/v1/origins/{OLD}?force=1", headers=auth) as answer:
            assert answer.status == 201  # nobody writes under it: as without force


async def test_only_a_retirement_to_append_is_checked_for_a_writer(
        make_node: NodeFactory) -> None:
    """A peer still linked under a retired origin (its next hello would name a new one)
    does not turn a repeated retirement into a 409: it is 200 "already retired", with
    force or without; an origin of which no event is held is 404 whoever is linked."""
    node = await make_node(token=TOKEN, cluster_secret=SECRET)
    await node.astore.write(lambda store: store.ingest(
        [(event(ms=1_000 + n, content=f"old {n}"), OLD, n) for n in (1, 2)]))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    empty = "fedcba9876543210"
    async with linked_as(node, OLD), linked_as(node, empty), \
            aiohttp.ClientSession(base_url=node.url) as http:
        head = node.astore.head
        async with http.delete(f"/v1/origins/{OLD}", headers=auth) as answer:
            body = await answer.json()
            assert answer.status == 409 and body["error"]["code"] == "origin_live", body
        assert node.astore.head == head
        async with http.delete(f"/v1/origins/{OLD}?force=1", headers=auth) as answer:
            assert answer.status == 201
        head = node.astore.head
        for query in ("", "?force=1"):
            async with http.delete(f"/v1/origins/{OLD}{query}", headers=auth) as answer:
                body = await answer.json()
                assert answer.status == 200 and body["event"] is None, body
                assert body["origin"]["state"] == "retired"
            async with http.delete(f"/v1/origins/{empty}{query}", headers=auth) as answer:
                body = await answer.json()
                assert answer.status == 404 and body["error"]["code"] != "origin_live", body
        assert node.astore.head == head
