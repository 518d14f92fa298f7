"""Automerge tokens issued by a device (``POST /v1/tokens``), on an in-process node with
real sockets: what they open, read-only, revocation disconnecting their clients, bad
input refused with nothing written, the secret kept out of the log and the records."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import structlog.testing

from crdt import tokens
from crdt.membership import DEVICE_KEY, DEVICES_SESSION, TOKEN_ISSUED, TOKEN_REVOKED
from node.server.run import RunningNode
from sync.repo.host import CLOSE_POLICY
from tests.support.automerge import set_custom, text_id
from tests.support.nodes import connect, events, has_messages, post
from tests.support.waits import until

NodeFactory = Callable[..., Awaitable[RunningNode]]
EventFactory = Callable[..., dict[str, Any]]
NODE_TOKEN = "node-token"
AUTH = {"Authorization": f"Bearer {NODE_TOKEN}"}


async def call(node: RunningNode, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
            method, node.url + path, json=body,
            headers=AUTH if headers is None else headers) as response:
        return response.status, await response.json()


async def records(node: RunningNode) -> list[dict[str, Any]]:
    try:
        return await events(node, DEVICES_SESSION, token=NODE_TOKEN)
    except KeyError:  # no such session yet: its 404 has no "events"
        return []


async def token_records(node: RunningNode) -> list[dict[str, Any]]:
    """The token records, without the device key record written before the first one."""
    found = await records(node)
    assert [r["kind"]["type"] for r in found[:1]] in ([], [DEVICE_KEY])
    return [r for r in found if r["kind"]["type"] in (TOKEN_ISSUED, TOKEN_REVOKED)]


async def test_issue_use_revoke(make_node: NodeFactory, event_body: EventFactory,
                                clients: list[Any]) -> None:
    node = await make_node(token=NODE_TOKEN)
    await post(node, "tg:a", event_body(1), token=NODE_TOKEN)
    await post(node, "web:b", event_body(1), token=NODE_TOKEN)
    status, made = await call(node, "POST", "/v1/tokens",
                              {"sessions": ["tg:*"], "read_only": True, "name": "reader"})
    assert status == 201, made
    secret, token_id = made["token"], made["id"]
    assert made["sessions"] == ["tg:*"] and made["read_only"] and not made["revoked"]
    assert made["device_id"] == (await call(node, "GET", "/v1/node"))[1]["device_id"]
    # The record holds the hash, never the secret.
    [record] = await token_records(node)
    assert record["kind"]["token_sha256"] == tokens.digest(secret).hex()
    assert secret not in str(record)
    status, listed = await call(node, "GET", "/v1/tokens")
    assert [row["id"] for row in listed["tokens"]] == [token_id]
    assert "token" not in listed["tokens"][0]

    session, reader = await connect(node, token=secret)
    clients.append(session)
    await reader.open(text_id("web:b"))  # not its session: looks absent
    assert reader.app.unavailable == [text_id("web:b")]
    await reader.send(reader.app.request(text_id("tg:a")))
    await reader.pump(lambda: has_messages(reader.app, text_id("tg:a")))
    reader.app.change(text_id("tg:a"), set_custom("mood", "x"))  # read-only: refused
    await reader.send(reader.app.sync(text_id("tg:a")))
    assert await reader.closed() == CLOSE_POLICY
    assert [e["kind"]["type"] for e in await events(node, "tg:a", token=NODE_TOKEN)] \
        == ["message_received"]

    session, watcher = await connect(node, token=secret)
    clients.append(session)
    await watcher.open(text_id("tg:a"))
    status, row = await call(node, "DELETE", f"/v1/tokens/{token_id}")
    assert status == 200 and row["revoked"]
    assert await watcher.closed() == CLOSE_POLICY  # disconnected when revoked
    assert watcher.app.errors == ["this token was revoked"]
    async with aiohttp.ClientSession() as http, http.get(
            f"{node.url}/automerge?token={secret}") as response:
        assert response.status == 401
        assert "revoked" in (await response.json())["error"]["message"]
    # Revoking again changes nothing; the list says revoked.
    assert (await call(node, "DELETE", f"/v1/tokens/{token_id}"))[0] == 200
    assert [r["kind"]["type"] for r in await token_records(node)] \
        == [TOKEN_ISSUED, TOKEN_REVOKED]
    assert (await call(node, "GET", "/v1/tokens"))[1]["tokens"][0]["revoked"]


async def test_a_write_token_edits_its_sessions(make_node: NodeFactory,
                                                event_body: EventFactory,
                                                clients: list[Any]) -> None:
    node = await make_node(token=NODE_TOKEN)
    await post(node, "tg:a", event_body(1), token=NODE_TOKEN)
    _, made = await call(node, "POST", "/v1/tokens", {"sessions": ["tg:a"]})
    session, writer = await connect(node, token=made["token"])
    clients.append(session)
    await writer.open(text_id("tg:a"))
    doc = text_id("tg:a")
    writer.app.change(doc, set_custom("mood", "happy"))
    await writer.send(writer.app.sync(doc))
    await writer.pump(lambda: writer.app.view(doc)["event_count"] == 2)
    kinds = [e["kind"]["type"] for e in await events(node, "tg:a", token=NODE_TOKEN)]
    assert kinds == ["message_received", "state_changed"]


@pytest.mark.parametrize(("body", "field"), [
    ({"sessions": []}, "sessions"),
    ({}, "sessions"),
    ({"sessions": "tg:*"}, "sessions"),
    ({"sessions": [""]}, "sessions[0]"),
    ({"sessions": ["tg:\n"]}, "sessions[0]"),
    ({"sessions": ["x" * (tokens.PATTERN_BYTES_MAX + 1)]}, "sessions[0]"),
    ({"sessions": ["a"] * (tokens.PATTERNS_MAX + 1)}, "sessions"),
    ({"sessions": ["*"], "read_only": "yes"}, "read_only"),
    ({"sessions": ["*"], "name": ""}, "name"),
    ({"sessions": ["*"], "name": "n" * (tokens.NAME_BYTES_MAX + 1)}, "name"),
    ({"sessions": ["*"], "secret": "mine"}, "secret"),
])
async def test_bad_input_changes_nothing(make_node: NodeFactory, body: dict[str, Any],
                                         field: str) -> None:
    node = await make_node(token=NODE_TOKEN)
    status, answer = await call(node, "POST", "/v1/tokens", body)
    assert status in (400, 413), answer
    assert answer["error"]["field"] == field
    assert await records(node) == []


async def test_bad_ids_and_no_token(make_node: NodeFactory) -> None:
    node = await make_node(token=NODE_TOKEN)
    status, answer = await call(node, "DELETE", "/v1/tokens/0123456789abcdef")
    assert status == 404, answer
    status, answer = await call(node, "DELETE", "/v1/tokens/not-an-id")
    assert status == 400 and answer["error"]["field"] == "token_id"
    status, _ = await call(node, "POST", "/v1/tokens", {"sessions": ["*"]}, headers={})
    assert status == 401
    assert await records(node) == []


async def test_most_tokens(make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "TOKENS_MAX", 2)
    node = await make_node(token=NODE_TOKEN)
    made = [(await call(node, "POST", "/v1/tokens", {"sessions": ["*"]}))[1]
            for _ in range(2)]
    status, answer = await call(node, "POST", "/v1/tokens", {"sessions": ["*"]})
    assert status == 413 and answer["error"]["field"] == "tokens"
    assert [r["kind"]["type"] for r in await records(node)] \
        == [DEVICE_KEY, TOKEN_ISSUED, TOKEN_ISSUED]
    await call(node, "DELETE", f"/v1/tokens/{made[0]['id']}")  # room again
    assert (await call(node, "POST", "/v1/tokens", {"sessions": ["*"]}))[0] == 201


async def test_a_write_token_may_forget_its_sessions(make_node: NodeFactory,
                                                     event_body: EventFactory) -> None:
    node = await make_node(token=NODE_TOKEN)
    for key in ("tg:a", "tg:b", "web:c"):
        await post(node, key, event_body(1), token=NODE_TOKEN)
    made = {}
    for name, read_only in (("writer", False), ("reader", True), ("gone", False)):
        _, made[name] = await call(node, "POST", "/v1/tokens",
                                   {"sessions": ["tg:*"], "read_only": read_only})
    await call(node, "DELETE", f"/v1/tokens/{made['gone']['id']}")

    def bearer(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {made[name]['token']}"}

    # A revoked token is no token (401); a valid one that may not do this is told so (403).
    for name, key, refused in (("reader", "tg:a", 403), ("gone", "tg:a", 401),
                               ("writer", "web:c", 403)):
        status, _ = await call(node, "DELETE", f"/v1/sessions/{key}", headers=bearer(name))
        assert status == refused, (name, key)
    status, _ = await call(node, "GET", "/v1/sessions", headers=bearer("writer"))
    assert status == 403  # a forget only, not the rest of /v1
    status, answer = await call(node, "DELETE", "/v1/sessions/tg:a", headers=bearer("writer"))
    assert status == 200, answer
    assert answer["forget"]["kind"]["by"] == f"app:{made['writer']['id']}@" \
        + answer["forget"]["origin"]


async def test_a_revocation_is_news_once_not_at_every_start(make_node: NodeFactory,
                                                            tmp_path: Any) -> None:
    folder = tmp_path / "kept"
    node = await make_node(token=NODE_TOKEN, data_dir=folder)
    _, made = await call(node, "POST", "/v1/tokens", {"sessions": ["*"]})
    with structlog.testing.capture_logs() as said:
        await call(node, "DELETE", f"/v1/tokens/{made['id']}")
        await until(lambda: any(line["event"] == "automerge token revoked" for line in said))
    assert [line["log_level"] for line in said
            if line["event"] == "automerge token revoked"] == ["info"]
    await node.stop()
    with structlog.testing.capture_logs() as said:
        await make_node(token=NODE_TOKEN, data_dir=folder)  # reads the revocation again
    assert [line["log_level"] for line in said
            if line["event"] == "automerge token revoked"] == ["debug"]
