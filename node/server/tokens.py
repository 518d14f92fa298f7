"""Automerge app tokens issued by this device, over HTTP (``crdt.tokens``).

    GET    /v1/tokens        every token the cluster issued: id, name, patterns,
                             read-only, which origin (device) issued it and when, its
                             state (valid, revoked, or issuer removed: the device that
                             issued it was removed, which revokes its tokens)
    POST   /v1/tokens        {"sessions": [pattern, ...], "read_only": false, "name": "app"}
                             issues one: 201 with the secret, shown this once, and
                             whether /v1 needs the node's own token
    DELETE /v1/tokens/{id}   revokes it, for good, on every node

They take the client token, as every /v1 route (``node.server.app``); a valid issued
token that may write a session may also forget it (``forget_allowed``), as a token of
``--automerge-tokens`` may. The record keeps the secret's SHA-256, never the secret.
Bad input (no pattern, a bad pattern or name, unknown fields, a malformed id) is 400,
an unknown id 404, more than ``TOKENS_MAX`` valid tokens 413; nothing is written then.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from crdt import tokens
from crdt.errors import InvalidInput, LimitExceeded, NotFound
from crdt.keys import type_name
from node.automerge.tokens import IssuedTokens
from node.device import DeviceKey
from node.http import auth
from node.http.wire import respond
from node.server import bodies, forget
from node.server.devices import DEVICES, refuse_if_removed
from node.store import AsyncStore
from sync.repo.config import Access

_FIELDS = {"sessions", "read_only", "name"}
#: The name a token gets when none is given.
NAME_DEFAULT = "app"


def setup(app: web.Application, astore: AsyncStore, issued: IssuedTokens, own: DeviceKey,
          body_bytes_max: int, read_timeout_s: float, *, node_token_required: bool) -> None:
    """Add the three routes; ``own`` is this node's device. With the cluster's devices
    (``node.server.devices``, set up first), their removals revoke the tokens they
    issued, here as on every node that learns of them. ``node_token_required``: the
    node has a client token (``--token``); a new token's answer says so, and the issuer
    learns whether that token limits much (no secret: any client learns it from a 401)."""
    creating = asyncio.Lock()  # so that concurrent requests cannot pass TOKENS_MAX
    if DEVICES in app:
        devices = app[DEVICES]
        devices.add_listener(lambda: issued.remove_devices(devices.removed()))

    def rows(listed: list[tokens.Issued]) -> list[dict[str, Any]]:
        """For people: each token with the device that issued it and its revocation
        (on the event loop: the book looked each token's origin up with
        ``origin_device`` when it took the token in, so this finds it in memory)."""
        out = []
        for token in listed:
            revoked = issued.book.revoked.get(token.token_id)
            state = issued.book.state(token.token_id)
            out.append({**token.to_json(), "device_id": astore.origin_device(token.origin),
                        "state": state,
                        # Refused either way: an API client reading only this field
                        # must not take a removed device's token for valid.
                        "revoked": state != "valid",
                        "revoked_at": None if revoked is None else revoked.at.rfc3339()})
        return out

    async def list_tokens(request: web.Request) -> web.Response:
        await issued.catch_up()
        listed = sorted(issued.book.issued.values(), key=lambda t: (t.at, t.token_id))
        return respond(request, {"tokens": rows(listed)})

    async def create(request: web.Request) -> web.Response:
        sessions, read_only, name = _create_body(await bodies.read_fields(
            request, bytes_max=body_bytes_max, timeout_s=read_timeout_s, allowed=_FIELDS,
            shape='{"sessions": [pattern, ...]}'))
        refuse_if_removed(request)
        secret, draft = tokens.issue(sessions, read_only=read_only, name=name)
        async with creating:
            await issued.catch_up()
            valid = sum(1 for _ in issued.book.valid())
            if valid >= tokens.TOKENS_MAX:
                raise LimitExceeded(f"{valid} valid tokens; the limit is "
                                    f"{tokens.TOKENS_MAX} (revoke some)", field="tokens")
            await astore.append([draft])
            await issued.catch_up()
        [row] = rows([issued.book.issued[draft.payload["token_id"]]])
        return respond(request, {**row, "token": secret,
                                 "node_token_required": node_token_required}, status=201)

    async def revoke(request: web.Request) -> web.Response:
        token_id = tokens.check_token_id(request.match_info["token_id"], "token_id")
        await issued.catch_up()
        token = issued.book.issued.get(token_id)
        if token is None:
            raise NotFound(f"no token {token_id} was issued (GET /v1/tokens lists them)")
        refuse_if_removed(request)
        if token_id not in issued.book.revoked:  # also one its issuer's removal revoked
            await astore.append([tokens.revoke(token_id)])
            await issued.catch_up()  # in effect here (its clients gone) before we answer
        [row] = rows([token])
        return respond(request, row)

    app.router.add_get("/v1/tokens", list_tokens)
    app.router.add_post("/v1/tokens", create)
    app.router.add_delete("/v1/tokens/{token_id}", revoke)


def forget_allowed(request: web.Request, issued: IssuedTokens) -> bool:
    """True when ``request`` is a forget and its bearer is a valid issued token that may
    write the session (as ``forget.app_allowed`` for the tokens of the JSON file); notes
    the token's id as who asked."""
    if request.match_info.route.name not in forget.ROUTES:
        return False
    token = valid(request, issued)
    if token is None or token.read_only \
            or not Access(token.sessions).allows(request.match_info.get("key", "")):
        return False
    request[forget.ASKED_BY] = f"app:{token.token_id}"
    return True


def valid(request: web.Request, issued: IssuedTokens) -> tokens.Issued | None:
    """The issued token the bearer of ``request`` is, if no node refuses it."""
    given = auth.bearer(request)
    token = issued.find(given) if given else None
    return None if token is None or issued.book.is_revoked(token.token_id) else token


def _create_body(value: dict[str, Any]) -> tuple[list[str], bool, str]:
    if "sessions" not in value:
        raise InvalidInput("is required: the session patterns the token opens ('*' for "
                           "every session)", field="sessions")
    sessions = value["sessions"]
    if not isinstance(sessions, list):
        raise InvalidInput(f"must be an array of patterns, not {type_name(sessions)}",
                           field="sessions")
    return sessions, value.get("read_only", False), value.get("name", NAME_DEFAULT)
