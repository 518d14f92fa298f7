"""``/v1/cursors/{name}``: named cursors kept for bridges (``crdt.log.cursors``).

    GET /v1/cursors/{name}   {"name", "cursor"}: the cursor, or 404 if none was saved
    PUT /v1/cursors/{name}   body {"cursor": {...}}: replace it; answers like GET

A bridge (``clawsync openclaw watch``) saves where it has read a source up to, after the
events read are stored, so a restart on any machine resumes there. Behind the node's
token like every /v1 route; the name and the size are checked (``crdt.log.cursors``).
"""

from __future__ import annotations

from aiohttp import web

from crdt.errors import InvalidInput, NotFound
from crdt.log.cursors import CURSOR_BYTES_MAX, check_cursor_name, read_cursor, save_cursor
from node.http.wire import body_format, decode_body, read_body, respond
from node.limits import Limits
from node.store import AsyncStore

#: A PUT body at most: the cursor's limit with room for JSON's digits and quotes. A
#: cursor within its limit is always a CBOR body within this (as ``clawsync openclaw``
#: sends it), not always a JSON one: names full of ``"`` or ``\`` take over twice their
#: bytes there.
BODY_BYTES_MAX = 2 * CURSOR_BYTES_MAX


def setup(app: web.Application, astore: AsyncStore, limits: Limits) -> None:
    async def get_cursor(request: web.Request) -> web.Response:
        name = check_cursor_name(request.match_info["name"])
        value = await astore.read(lambda store: read_cursor(store, name))
        if value is None:
            raise NotFound(f"no cursor named {name!r} was saved on this node")
        return respond(request, {"name": name, "cursor": value})

    async def put_cursor(request: web.Request) -> web.Response:
        name = check_cursor_name(request.match_info["name"])
        body_type = body_format(request)
        body = decode_body(await read_body(request, bytes_max=BODY_BYTES_MAX,
                                           timeout_s=limits.read_timeout_s), body_type)
        if not isinstance(body, dict) or set(body) != {"cursor"}:
            raise InvalidInput('must be {"cursor": {...}}', field="body")
        value = body["cursor"]
        await astore.write(lambda store: save_cursor(store, name, value))
        return respond(request, {"name": name, "cursor": value})

    app.router.add_get("/v1/cursors/{name}", get_cursor)
    app.router.add_put("/v1/cursors/{name}", put_cursor)
