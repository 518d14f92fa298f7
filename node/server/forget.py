"""Forgetting over HTTP (``crdt.log.forget``): the whole session, or some of its events.

    DELETE /v1/sessions/{key}          forget the session
    POST   /v1/sessions/{key}/forget   {"events": [id, ...], "reason": "..."}: those events

Both take the client token (as every /v1 route: ``node.server.app``) or an Automerge token
that may write the session (``--automerge-tokens``: not read-only, its patterns match the
key): an app that may edit a session may also forget it. A read-only token may not. The
record's ``by`` says who asked: ``client@<node>`` or ``app:<token fingerprint>@<node>``
(the fingerprint names the token without revealing it). The answer is 200 with the
forget record, which replicates to every node; every node that takes it in logs it with
who asked. 404 for a session this node does not hold; 400 for a malformed id, an id that
is not an event of the session here, a body of the wrong shape, or one of the sessions of
the cluster's own records (``clawsync:origins``, ``clawsync:devices``); nothing is
written then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from crdt.errors import InvalidInput
from crdt.keys import type_name
from crdt.log.forget import UNFORGETTABLE
from node.http import auth
from node.http.params import path_session_key
from node.http.wire import respond
from node.server import bodies
from node.store import AsyncStore
from sync.repo.config import Access

#: Who asked, as the record says: a holder of the client token of this node.
BY_CLIENT = "client"
_FIELDS = {"events", "reason"}
#: The two routes' names, so that authentication can tell a forget from other /v1 calls.
ROUTES = frozenset({"forget-session", "forget-events"})
#: Where ``app_allowed`` leaves who asked, for the record's ``by`` (a typed key: aiohttp
#: warns, ``NotAppKeyWarning``, on a plain string).
ASKED_BY = web.RequestKey("forget_asked_by", str)


def _app_token(given: str, tokens: Mapping[str, Access]) -> tuple[str, Access] | None:
    """The Automerge token ``given`` is, with what it opens; None if it is none of them.
    Every token is compared (in constant time), so timing tells nothing."""
    found = None
    for token, access in tokens.items():
        if auth.matches(given, token):
            found = (token, access)
    return found


def app_allowed(request: web.Request, tokens: Mapping[str, Access]) -> bool:
    """True when ``request`` is a forget and its bearer is an Automerge token that may
    write the session; notes the token's fingerprint as who asked."""
    route = request.match_info.route
    if route.name not in ROUTES or not tokens:
        return False
    found = _app_token(auth.bearer(request), tokens)
    if found is None:
        return False
    token, access = found
    if access.read_only or not access.allows(request.match_info.get("key", "")):
        return False
    fingerprint = hashlib.blake2b(token.encode("utf-8", "surrogatepass"),
                                  digest_size=4).hexdigest()
    request[ASKED_BY] = f"app:{fingerprint}"
    return True


def app_token(request: web.Request, tokens: Mapping[str, Access]) -> bool:
    """True when the bearer of ``request`` is one of the Automerge tokens, whatever it
    may open."""
    return _app_token(auth.bearer(request), tokens) is not None


def setup(app: web.Application, store: web.AppKey[AsyncStore], body_bytes_max: int,
          read_timeout_s: float) -> None:
    """Add the two routes to the node's application."""

    async def forget_session(request: web.Request) -> web.StreamResponse:
        key = path_session_key(request)
        return await _forget(request, request.app[store], key, None, "user")

    async def forget_events(request: web.Request) -> web.StreamResponse:
        key = path_session_key(request)
        events, reason = _events_body(await bodies.read_fields(
            request, bytes_max=body_bytes_max, timeout_s=read_timeout_s, allowed=_FIELDS,
            shape='{"events": [event id, ...]}'))
        return await _forget(request, request.app[store], key, events, reason)

    app.router.add_delete("/v1/sessions/{key}", forget_session, name="forget-session")
    app.router.add_post("/v1/sessions/{key}/forget", forget_events, name="forget-events")


def _events_body(value: dict[str, Any]) -> tuple[list[str], str]:
    if "events" not in value:
        raise InvalidInput("is required: the ids of the events to forget (DELETE "
                           "/v1/sessions/{key} forgets the whole session)", field="events")
    events = value["events"]
    if not isinstance(events, list):
        raise InvalidInput(f"must be an array of event ids, not {type_name(events)}",
                           field="events")
    if not events:
        raise InvalidInput("must list at least one event id (DELETE /v1/sessions/{key} "
                           "forgets the whole session)", field="events")
    reason = value.get("reason", "user")
    return events, reason


async def _forget(request: web.Request, astore: AsyncStore, key: str,
                  events: list[str] | None, reason: Any) -> web.StreamResponse:
    if key in UNFORGETTABLE:  # before looking it up: held here or not, the answer is no
        raise InvalidInput("holds the cluster's own records (retired origins, devices and "
                           "tokens), which cannot be forgotten", field="session_key")
    appended = await astore.forget(key, events, reason=reason,
                                   by=f"{request.get(ASKED_BY, BY_CLIENT)}@{astore.node_id}")
    # created false: the events were each forgotten already; the latest record answers.
    return respond(request, {"session_key": key, "forget": appended.stored.to_json(),
                             "created": appended.created})
