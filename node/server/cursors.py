"""``/v1/cursors/{name}``: named cursors kept for bridges (``crdt.log.cursors``).

    GET /v1/cursors/{name}   {"name", "cursor"}: the cursor, or 404 if none was saved
    PUT /v1/cursors/{name}   body {"cursor": {...}}: replace it; answers like GET

Both answer the cursor's tag as an ``ETag``. A PUT with ``If-Match`` (a tag, or several)
saves only if the cursor still has one of them, else answers 412 and saves nothing;
``If-Match: *`` only if a cursor is saved, any (RFC 9110 13.1.1: it is false when there
is none), so that a client updating only an existing cursor does not make one; none saves
whatever is there (as before the header was taken). ``If-None-Match: *`` saves only if no
cursor is saved: a bridge's first save of a cursor it found absent, so that one another
bridge saved meanwhile is not overwritten.

A bridge (``clawsync openclaw watch``) saves where it has read a source up to, after the
events read are stored, so a restart on any machine resumes there; with the tag it read,
so that a cursor changed meanwhile (reset by a person, saved by another bridge) is not
overwritten. Behind the node's token like every /v1 route; the name and the size are
checked (``crdt.log.cursors``).
"""

from __future__ import annotations

import re

from aiohttp import hdrs, web

from crdt.errors import CursorChanged, InvalidInput, NotFound
from crdt.log.cursors import (
    CURSOR_BYTES_MAX,
    check_cursor_name,
    cursor_tag,
    read_cursor,
    save_cursor,
)
from node.http.errors import HttpError, bad_parameter
from node.http.wire import body_format, decode_body, read_body, respond
from node.limits import Limits
from node.store import AsyncStore

#: A PUT body at most: the cursor's limit with room for JSON's digits and quotes. A
#: cursor within its limit is always a CBOR body within this (as ``clawsync openclaw``
#: sends it), not always a JSON one: names full of ``"`` or ``\`` take over twice their
#: bytes there.
BODY_BYTES_MAX = 2 * CURSOR_BYTES_MAX

#: One entity tag of an ``If-Match`` list (RFC 9110 8.8.3): quoted, weak or not.
_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*')


def if_match(request: web.Request) -> frozenset[str] | None:
    """The tags ``If-Match`` names (their text, unquoted); None if it is absent or
    ``*`` (``any_saved`` tells them apart). A weak tag names none: a cursor's is
    strong, and If-Match compares strongly. Not a list of quoted tags: 400,
    ``If-Match``."""
    headers = request.headers.getall(hdrs.IF_MATCH, [])
    if not headers or any_saved(request):
        return None
    said = ",".join(headers)
    tags = set()
    for item in said.split(","):
        found = _ENTITY_TAG.fullmatch(item)
        if found is None:
            raise bad_parameter(hdrs.IF_MATCH, 'must be "*" or tags as the ETag gives them, '
                                f'quoted ("<tag>"), separated by commas: got {said[:200]!r}')
        if not found.group(1):
            tags.add(found.group(2))
    return frozenset(tags)


def any_saved(request: web.Request) -> bool:
    """Whether the request's ``If-Match`` is ``*``: any cursor saved, but one."""
    return ",".join(request.headers.getall(hdrs.IF_MATCH, [])).strip() == "*"


def none_saved(request: web.Request) -> bool:
    """Whether the request has ``If-None-Match: *``: saved only if no cursor is. Any
    other value is 400 (a cursor is saved under a condition on tags by ``If-Match``)."""
    headers = request.headers.getall(hdrs.IF_NONE_MATCH, [])
    if not headers:
        return False
    said = ",".join(headers)
    if said.strip() != "*":
        raise bad_parameter(hdrs.IF_NONE_MATCH, f'must be "*": got {said[:200]!r}')
    return True


def tagged(response: web.Response, value: dict[str, int]) -> web.Response:
    response.headers[hdrs.ETAG] = f'"{cursor_tag(value)}"'
    return response


def setup(app: web.Application, astore: AsyncStore, limits: Limits) -> None:
    async def get_cursor(request: web.Request) -> web.Response:
        name = check_cursor_name(request.match_info["name"])
        value = await astore.read(lambda store: read_cursor(store, name))
        if value is None:
            raise NotFound(f"no cursor named {name!r} was saved on this node")
        return tagged(respond(request, {"name": name, "cursor": value}), value)

    async def put_cursor(request: web.Request) -> web.Response:
        name = check_cursor_name(request.match_info["name"])
        tags = if_match(request)
        if_saved = True if any_saved(request) else None
        if none_saved(request):
            if hdrs.IF_MATCH in request.headers:  # wants one saved and none: never true
                raise HttpError(412, "cursor_changed", "If-Match and If-None-Match: * "
                                "together hold for no cursor: nothing saved",
                                field=hdrs.IF_NONE_MATCH)
            if_saved = False
        body_type = body_format(request)
        body = decode_body(await read_body(request, bytes_max=BODY_BYTES_MAX,
                                           timeout_s=limits.read_timeout_s), body_type)
        if not isinstance(body, dict) or set(body) != {"cursor"}:
            raise InvalidInput('must be {"cursor": {...}}', field="body")
        value = body["cursor"]
        try:
            await astore.write(lambda store: save_cursor(store, name, value, if_tags=tags,
                                                         if_saved=if_saved))
        except CursorChanged as changed:
            raise HttpError(412, "cursor_changed", f"{changed}; read it again (GET) and "
                            "save on from what it holds",
                            field=hdrs.IF_NONE_MATCH if if_saved is False else hdrs.IF_MATCH
                            ) from None
        return tagged(respond(request, {"name": name, "cursor": value}), value)

    app.router.add_get("/v1/cursors/{name}", get_cursor)
    app.router.add_put("/v1/cursors/{name}", put_cursor)
