"""Forgetting over HTTP (``crdt.log.forget``): the whole session, or some of its events.

    DELETE /v1/sessions/{key}          forget the session
    POST   /v1/sessions/{key}/forget   {"events": [id, ...], "reason": "..."}: those events

Both need the client token (as every /v1 route: ``node.server.app``); Automerge tokens,
read-only or not, do not open /v1. The answer is 200 with the forget record, which
replicates to every node; every node that takes it in logs it with who asked. 404 for a
session this node does not hold; 400 for a malformed id, an id that is not an event of
the session here, or a body of the wrong shape; nothing is written then.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crdt.errors import InvalidInput
from crdt.keys import check_session_key
from node.http.wire import body_format, decode_body, read_body, respond
from node.store import AsyncStore

#: Who asked, as the record says: a holder of the client token of this node.
BY_CLIENT = "client"
_FIELDS = {"events", "reason"}


def setup(app: web.Application, store: web.AppKey[AsyncStore], body_bytes_max: int,
          read_timeout_s: float) -> None:
    """Add the two routes to the node's application."""

    async def forget_session(request: web.Request) -> web.StreamResponse:
        key = check_session_key(request.match_info["key"], "session_key")
        return await _forget(request, request.app[store], key, None, "user")

    async def forget_events(request: web.Request) -> web.StreamResponse:
        key = check_session_key(request.match_info["key"], "session_key")
        body_type = body_format(request)
        body = await read_body(request, bytes_max=body_bytes_max, timeout_s=read_timeout_s)
        events, reason = _events_body(decode_body(body, body_type))
        return await _forget(request, request.app[store], key, events, reason)

    app.router.add_delete("/v1/sessions/{key}", forget_session)
    app.router.add_post("/v1/sessions/{key}/forget", forget_events)


def _events_body(value: Any) -> tuple[list[str], str]:
    if not isinstance(value, dict):
        raise InvalidInput('must be an object: {"events": [event id, ...]}')
    unknown = sorted(set(value) - _FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
    events = value.get("events")
    if not isinstance(events, list) or not events:
        raise InvalidInput("must list at least one event id (DELETE /v1/sessions/{key} "
                           "forgets the whole session)", field="events")
    reason = value.get("reason", "user")
    return events, reason


async def _forget(request: web.Request, astore: AsyncStore, key: str,
                  events: list[str] | None, reason: Any) -> web.StreamResponse:
    appended = await astore.forget(key, events, reason=reason,
                                   by=f"{BY_CLIENT}@{astore.node_id}")
    return respond(request, {"session_key": key, "forget": appended.stored.to_json()})
