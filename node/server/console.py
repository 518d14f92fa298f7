"""Serving the web console (``node.console``): ``GET /`` is its page, ``GET
/console/<file>`` its scripts and styles.

The files hold no data, so they are served without a token; every view then reads the
API with the token the person gives. They are read into memory once, when the app is
made (a few tens of KiB), and answered with an ETag and ``Cache-Control: no-cache``: a
browser revalidates each load (a 304, no body) and so never runs a console older than
the node it talks to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from aiohttp import hdrs, web

from node.console import static_files

#: Content types by file suffix; a file of another suffix is not served.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
#: Scripts, styles and API calls come from this node only: no inline script can run and
#: no other site can frame the console.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
INDEX = "index.html"


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str  # without its quotes


def load() -> dict[str, StaticFile]:
    """Every console file by name, read from the installed package."""
    files = {}
    for entry in static_files().iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in CONTENT_TYPES:
            body = entry.read_bytes()
            etag = hashlib.blake2b(body, digest_size=12).hexdigest()
            files[entry.name] = StaticFile(body, CONTENT_TYPES[suffix], etag)
    return files


def setup(app: web.Application) -> None:
    """Add ``/`` and ``/console/{name}`` to the node's application."""
    files = load()

    async def index(request: web.Request) -> web.Response:
        return _answer(request, files[INDEX])

    async def asset(request: web.Request) -> web.Response:
        found = files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound(text="no such console file")
        return _answer(request, found)

    app.router.add_get("/", index)
    app.router.add_get("/console/{name}", asset)


def _answer(request: web.Request, found: StaticFile) -> web.Response:
    known = request.if_none_match or ()
    if any(tag.value in (found.etag, "*") for tag in known):
        response = web.Response(status=304, headers=SECURITY_HEADERS)
    else:
        response = web.Response(body=found.body, headers={
            hdrs.CONTENT_TYPE: found.content_type, **SECURITY_HEADERS})
    response.etag = found.etag
    response.headers[hdrs.CACHE_CONTROL] = "no-cache"
    return response
