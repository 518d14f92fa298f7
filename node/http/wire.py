"""What goes over the client wire: bodies in, answers out, and errors as answers.

Requests carry JSON (the default, ``application/json``) or CBOR (``application/cbor``,
decoded strictly by ``crdt.codec.decode``). Answers are JSON unless the client sends
``Accept: application/cbor``. Errors are always JSON, so that any client can read them,
including one whose CBOR could not be decoded:

    {"error": {"code": "invalid_input", "message": "is required", "field": "events[0].kind"}}

``error_response`` is the one place where exceptions become HTTP answers (the errors about
HTTP itself are in ``node.http.errors``; path and query parameters in ``node.http.params``).

>>> parse_json(b'{"a": [1, 2]}')
{'a': [1, 2]}
>>> parse_json(b'[NaN]')
Traceback (most recent call last):
...
crdt.errors.InvalidInput: body: JSON: NaN is not a JSON number
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from crdt import codec
from crdt.errors import (
    IdMismatch,
    InvalidInput,
    LimitExceeded,
    NotFound,
    StorageBusy,
    StorageDamaged,
    StorageFull,
    StorageUnavailable,
    TimestampAhead,
)
from node.headers import HINT_FIELD, ROUTES_TOLD
from node.http.errors import HttpError, invalid_encoding, stopping
from node.http.params import refuse_unknown_params
from node.http.request_line import refuse_bad_request_line
from node.json_numbers import finite_float, refuse_constant
from node.store import StoreBusy, StoreClosing
from node.text import bom_length

log = structlog.get_logger(__name__)

JSON_TYPE = "application/json"
CBOR_TYPE = "application/cbor"
#: Bodies nest three levels above an event's payload values (list, event, kind), and
#: ``parse_event`` bounds those values at ``codec.DEPTH_MAX`` itself.
BODY_DEPTH_MAX = codec.DEPTH_MAX + 3
#: Content codings a request body may come in (RFC 9110 8.4.1), as zlib's window bits:
#: gzip with its header and trailer, deflate in the zlib format.
CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
           "deflate": zlib.MAX_WBITS}


# -- request bodies -----------------------------------------------------------------

def body_format(request: web.BaseRequest) -> str:
    """``"json"`` or ``"cbor"`` from Content-Type (JSON when absent); else 415."""
    if hdrs.CONTENT_TYPE not in request.headers:
        return "json"
    content_type = request.content_type
    if content_type == JSON_TYPE:
        # JSON is UTF-8 (RFC 8259); text in another charset would be read wrong, not refused.
        charset = request.charset
        if charset is not None and charset.lower() not in ("utf-8", "utf8"):
            raise HttpError(415, "unsupported_media_type",
                            f"charset {charset!r} is not accepted: JSON bodies are UTF-8",
                            field="Content-Type")
        return "json"
    if content_type == CBOR_TYPE:
        return "cbor"
    raise HttpError(415, "unsupported_media_type",
                    f"Content-Type {content_type!r} is not accepted; send {JSON_TYPE} or "
                    f"{CBOR_TYPE}", field="Content-Type")


def body_coding(request: web.BaseRequest) -> str | None:
    """The body's content coding from Content-Encoding (None: as is); else 415."""
    if hdrs.CONTENT_ENCODING not in request.headers:
        return None
    named = [coding.strip().lower() for value in request.headers.getall(hdrs.CONTENT_ENCODING, [])
             for coding in value.split(",")]
    codings = [coding for coding in named if coding not in ("", "identity")]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in CODINGS:
        raise HttpError(415, "unsupported_content_encoding",
                        f"Content-Encoding {', '.join(codings)!r} is not accepted; send "
                        "gzip, deflate or none", field="Content-Encoding")
    return codings[0]


def inflate(body: bytes, coding: str, *, bytes_max: int) -> bytes:
    """``body`` decompressed; 400 unless it is one whole stream in ``coding``, 413 if it
    inflates past ``bytes_max``.

    >>> inflate(zlib.compress(b"[1]"), "deflate", bytes_max=10)
    b'[1]'
    >>> inflate(b"[1]", "gzip", bytes_max=10)
    Traceback (most recent call last):
    ...
    node.http.errors.HttpError: the body is not valid gzip (Error -3 ...)
    """
    inflater = zlib.decompressobj(CODINGS[coding])
    try:
        # At most one byte over the limit: a small bomb must not inflate in memory.
        plain = inflater.decompress(body, bytes_max + 1)
    except zlib.error as exc:
        raise invalid_encoding(f"the body is not valid {coding} ({exc})") from None
    if len(plain) > bytes_max:
        raise LimitExceeded(f"body inflates over the limit of {bytes_max} bytes", field="body")
    if not inflater.eof:
        raise invalid_encoding(f"the body ends inside its {coding} stream (truncated?)")
    if inflater.unused_data:
        raise invalid_encoding(f"{len(inflater.unused_data)} bytes follow the end of the "
                               f"{coding} stream")
    return plain


async def read_body(request: web.BaseRequest, *, bytes_max: int, timeout_s: float) -> bytes:
    """The whole body, decompressed, refusing more than ``bytes_max`` bytes as they stream
    in and after decompression.

    aiohttp's ``client_max_size`` only guards ``request.read()``; chunked bodies carry
    no Content-Length, so the cap is counted here. A client that sends too slowly is cut
    off after ``timeout_s`` (aiohttp has no body read timeout of its own). Bodies are
    decompressed here, not by aiohttp (the server runs with ``auto_decompress=False``):
    aiohttp's errors for a body that is not what its Content-Encoding says escape the
    handler as 500s, and it takes a gzip stream without its end as complete.
    """
    coding = body_coding(request)  # before reading: a 415 needs no body
    declared = request.content_length
    if declared is not None and declared > bytes_max:
        raise LimitExceeded(f"body is {declared} bytes; the limit is {bytes_max}",
                            field="body")
    try:
        if request.content.is_eof():
            # The whole body came with the headers (most appends): take it as it is,
            # with no read to wait for and no timer to set and cancel.
            chunks = [request.content.read_nowait()]
            if len(chunks[0]) > bytes_max:
                raise LimitExceeded(f"body is over the limit of {bytes_max} bytes",
                                    field="body")
        else:
            async with asyncio.timeout(timeout_s):
                chunks = await _chunks(request, bytes_max)
    except TimeoutError:
        raise HttpError(408, "request_timeout",
                        f"the body did not arrive within {timeout_s:g} s") from None
    except (HttpProcessingError, RequestPayloadError) as exc:
        raise HttpError(400, "invalid_body", f"the body is not well framed: {exc}") from None
    except ConnectionResetError:
        # The client left mid-body: its fault, not ours, and no one reads the answer.
        raise HttpError(400, "incomplete_body", "the connection closed inside the body",
                        field="body") from None
    body = b"".join(chunks)
    return body if coding is None else inflate(body, coding, bytes_max=bytes_max)


async def _chunks(request: web.BaseRequest, bytes_max: int) -> list[bytes]:
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > bytes_max:
            raise LimitExceeded(f"body is over the limit of {bytes_max} bytes", field="body")
        chunks.append(chunk)
    return chunks


def decode_body(body: bytes, body_type: str) -> Any:
    """Decode a JSON or CBOR body into plain values; ``InvalidInput`` if it is not clean."""
    if not body:
        raise InvalidInput("is empty", field="body")
    if body_type == "cbor":
        try:
            return codec.decode(body, depth_max=BODY_DEPTH_MAX)
        except LimitExceeded:  # the decoder's only limit is its nesting
            raise _too_deep("CBOR") from None
        except InvalidInput as exc:
            raise type(exc)(exc.reason, field=exc.field or "body") from None
    return parse_json(body)


def _too_deep(syntax: str) -> LimitExceeded:
    """A body nested past ``BODY_DEPTH_MAX``, said with the limit a user reads about:
    the one on an event's values."""
    return LimitExceeded(f"{syntax} nesting deeper than {BODY_DEPTH_MAX} levels in the body "
                         f"(an event's values may nest {codec.DEPTH_MAX})", field="body")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise InvalidInput(f"JSON: duplicate key {name!r}", field="body")
        out[name] = value
    return out


# One decoder for every body: ``json.loads`` with hooks builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=refuse_constant, parse_float=finite_float,
                            object_pairs_hook=_object)


def parse_json(body: bytes) -> Any:
    """Parse untrusted JSON; every failure becomes ``InvalidInput`` (deep nesting:
    ``LimitExceeded``). Refuses NaN/Infinity, overflowing numbers and duplicate keys,
    which would otherwise hash differently in other languages."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"JSON: not valid UTF-8 at byte {exc.start}", field="body") from None
    if bom_length(body):  # else "Expecting value: line 1 column 1"
        raise InvalidInput("JSON: starts with a byte order mark (U+FEFF), which JSON sent "
                           "over a network must not carry", field="body")
    try:
        value = _DECODER.decode(text)
    except InvalidInput:
        raise
    except RecursionError:
        raise _too_deep("JSON") from None
    except ValueError as exc:  # JSONDecodeError, and integers over Python's digit limit
        raise InvalidInput(f"JSON: {exc}", field="body") from None
    # JSON gives only plain values with text keys, so the check is about depth alone,
    # and a body with fewer brackets than the limit cannot nest past it.
    if body.count(b"[") + body.count(b"{") <= BODY_DEPTH_MAX:
        return value
    try:
        codec.check_plain(value, depth_max=BODY_DEPTH_MAX)
    except LimitExceeded:
        raise _too_deep("JSON") from None
    except InvalidInput as exc:
        raise type(exc)(exc.reason, field="body") from None
    return value


# -- answers ------------------------------------------------------------------------

def wants_cbor(request: web.BaseRequest) -> bool:
    """True when the Accept header ranks CBOR above JSON (JSON wins ties and ``*/*``)."""
    accepts = request.headers.getall(hdrs.ACCEPT, [])
    if not any("cbor" in part.lower() for part in accepts):
        return False  # most clients: no Accept, or ``*/*``
    ranks = {JSON_TYPE: -1.0, CBOR_TYPE: -1.0}
    for part in accepts:
        for item in part.split(","):
            media, _, params = item.strip().partition(";")
            media = media.strip().lower()
            if media not in ranks:
                continue
            quality = 1.0
            for param in params.split(";"):
                name, _, value = param.strip().partition("=")
                if name.lower() == "q":
                    try:
                        quality = float(value)
                    except ValueError:
                        quality = 0.0
            ranks[media] = max(ranks[media], quality)
    return ranks[CBOR_TYPE] > 0 and ranks[CBOR_TYPE] > ranks[JSON_TYPE]


# One encoder for every answer: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def to_json_bytes(data: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return _ENCODER.encode(data).encode()


def respond(request: web.BaseRequest, data: Any, status: int = 200) -> web.Response:
    """Answer ``data`` as CBOR or JSON, as the client's Accept header prefers."""
    if wants_cbor(request):
        body, headers = codec.encode(data), _CBOR_HEADERS
    else:
        body, headers = to_json_bytes(data), _JSON_HEADERS
    # Headers given whole: ``content_type=`` would parse the type again on each answer.
    return web.Response(body=body, status=status, headers=headers)


_JSON_HEADERS = {hdrs.CONTENT_TYPE: JSON_TYPE, hdrs.VARY: hdrs.ACCEPT}
_CBOR_HEADERS = {hdrs.CONTENT_TYPE: CBOR_TYPE, hdrs.VARY: hdrs.ACCEPT}


def error_body(code: str, message: str, field: str | None = None,
               details: Mapping[str, Any] | None = None) -> bytes:
    """The JSON error object; ``details`` are fields of it beyond the three every error
    has, for a client to act on without reading the message."""
    return to_json_bytes({"error": {"code": code, "message": message, "field": field,
                                    **(details or {})}})


def _error(status: int, code: str, message: str, field: str | None = None,
           headers: Mapping[str, str] | None = None,
           details: Mapping[str, Any] | None = None) -> web.Response:
    response = web.Response(body=error_body(code, message, field, details), status=status,
                            content_type=JSON_TYPE, headers=headers)
    if status in (408, 413):
        # The rest of the body may still be arriving: do not wait for it on this
        # connection, close it.
        response.force_close()
    return response


_STORAGE_CODES = {StorageFull: "storage_full", StorageBusy: "storage_busy",
                  StorageDamaged: "storage_damaged"}


def error_response(exc: BaseException, request: web.BaseRequest | None = None) -> web.Response:
    """THE translation of an exception into an answer. Bad input is never a 500."""
    if isinstance(exc, IdMismatch):
        return _error(400, "id_mismatch", exc.reason, exc.field)
    if isinstance(exc, LimitExceeded):
        return _error(413, "limit_exceeded", exc.reason, exc.field)
    if isinstance(exc, TimestampAhead):
        # When the node will take it, for a sender to wait that long (its clock and
        # bound, in numbers: the message's words may change).
        return _error(400, exc.code, exc.reason, exc.field,
                      details={"bound_ms": exc.bound_ms, "clock_ms": exc.clock_ms})
    if isinstance(exc, InvalidInput):
        return _error(400, exc.code, exc.reason, exc.field)
    if isinstance(exc, NotFound):
        return _error(404, "not_found", str(exc))
    if isinstance(exc, HttpError):
        return _error(exc.status, exc.code, exc.message, exc.field, exc.headers,
                      exc.details)
    if isinstance(exc, web.HTTPException):
        # aiohttp's own: no route (404), wrong method (405, with its Allow header); or
        # one a handler raised with its words (``text=``), which are kept: without them
        # its default text, "404: Not Found", says no more than the status.
        code = re.sub(r"\W+", "_", exc.reason.lower()).strip("_")
        headers = {str(name): exc.headers[name] for name in (hdrs.ALLOW,) if name in exc.headers}
        said = exc.text
        message = said if said and said != f"{exc.status}: {exc.reason}" else exc.reason
        details = None
        if isinstance(exc, web.HTTPMethodNotAllowed) and request is not None:
            message = (f"{request.method} is not a method of {request.path} (it takes "
                       f"{', '.join(sorted(exc.allowed_methods))}); {ROUTES_TOLD}")
        elif isinstance(exc, web.HTTPNotFound) and message == exc.reason and request:
            # The message stays "Not Found": older clients know a missing route by it
            # alone, and take any other words of a 404 for a missing session.
            details = {HINT_FIELD: f"this node has no route {request.method} "
                                   f"{request.path}; {ROUTES_TOLD}"}
        return _error(exc.status, code, message, headers=headers, details=details)
    if isinstance(exc, StorageUnavailable):
        # Our storage, not the request, failed: nothing was acknowledged; ask again later.
        log.warning("storage unavailable", error=str(exc),
                    path=request.path if request else None)
        return _error(503, _STORAGE_CODES.get(type(exc), "storage_unavailable"), str(exc),
                      headers={"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, StoreClosing):
        return error_response(stopping(str(exc)), request)
    if isinstance(exc, StoreBusy):
        response = _error(503, "busy", str(exc))
        response.headers["Retry-After"] = "1"
        return response
    log.error("unexpected error", exc_info=exc,
              method=request.method if request else None,
              path=request.path if request else None)
    return _error(500, "internal", "internal error")


def answer_middleware(answered: Callable[[web.Request, int], None],
                      refusal: Callable[[web.Request], HttpError | None] | None = None
                      ) -> Any:
    """An aiohttp middleware that turns every exception from the handlers below into a
    JSON error answer, then calls ``answered(request, status)`` with the status the client
    gets (500 if something escaped, such as a cancellation). A request line it refuses
    (``refuse_bad_request_line``) is answered first and not passed to ``answered``, as
    the refusals of aiohttp's parsers never reach it. With ``refusal``, a request it
    refuses (a 401 or 403) gets that answer instead of reaching its handler. One layer
    for all of it, as it runs for every request: each middleware costs a coroutine and a
    call per request."""

    @web.middleware
    async def answer(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            # Before the credential, as aiohttp's compiled parser refuses such a request
            # line before any handler; its pure-Python parser lets it by. Not counted,
            # as the compiled parser's refusals are not: each made-up method would be a
            # new series of the count's method label.
            refuse_bad_request_line(request)
        except HttpError as exc:
            return error_response(exc, request)
        try:
            try:
                refused = None if refusal is None else refusal(request)
                if refused is not None:
                    raise refused
                refuse_unknown_params(request)
                response: web.StreamResponse = await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise  # redirects and the like are answers, not errors
                response = error_response(exc, request)
            except Exception as exc:
                response = error_response(exc, request)
        except BaseException as exc:  # a redirect, or a cancellation (the client left)
            answered(request, exc.status if isinstance(exc, web.HTTPException) else 500)
            raise
        answered(request, response.status)
        return response

    return answer
