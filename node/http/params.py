"""The path and query parameters of a request: the session key a path names, and the
query parameters each route declares it takes (``takes_params``) and reads, each checked,
with a 400 ``invalid_parameter`` that names it otherwise.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from crdt.errors import InvalidInput
from crdt.keys import check_session_key
from node.http.errors import bad_parameter

Handler = TypeVar("Handler", bound=Callable[..., Any])

_INTEGER = re.compile(r"-?[0-9]{1,20}")
_SECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")


def path_session_key(request: web.Request) -> str:
    """The session key the ``{key}`` part of the request's path names, checked
    (``crdt.keys.check_session_key``); ``InvalidInput`` too if the part's percent-encoding
    is not UTF-8's. aiohttp leaves an escape that is not (``%ff``) in the part as text,
    so ``/%ff`` and ``/%25ff`` would name the same session, which the client never meant.

    >>> import asyncio
    >>> from aiohttp.test_utils import make_mocked_request
    >>> from aiohttp.web_urldispatcher import UrlDispatcher
    >>> async def handler(request): ...
    >>> def key(path):
    ...     router = UrlDispatcher()
    ...     router.add_get("/s/{key}/e", handler)
    ...     request = make_mocked_request("GET", path)
    ...     request._match_info = asyncio.run(router.resolve(request))
    ...     return path_session_key(request)
    >>> key("/s/plain:key/e")
    'plain:key'
    >>> key("/s/a%2Fb%25ff%C3%A9/e")
    'a/b%ffé'
    >>> key("/s/%ff/e")
    Traceback (most recent call last):
    crdt.errors.InvalidInput: session_key: must be percent-encoded UTF-8 ('%FF' is not)
    """
    resource = request.match_info.route.resource
    assert resource is not None, "only for a request a route matched"
    raw = request.rel_url.raw_path.split("/")[_key_part(resource.canonical)]
    # The path is ASCII (``node.http.request_line`` refused any other first): only a
    # percent-encoded byte can be one that is not UTF-8.
    if "%" in raw:
        try:
            urllib.parse.unquote_to_bytes(raw).decode("utf-8")
        except UnicodeError:
            raise InvalidInput(f"must be percent-encoded UTF-8 ({raw[:64]!r} is not)",
                               field="session_key") from None
    return check_session_key(request.match_info["key"], "session_key")


@functools.lru_cache(maxsize=64)
def _key_part(canonical: str) -> int:
    """Which part of a route's path (split at its slashes) is ``{key}``: a route's path
    is fixed, and every request to a session's route asks."""
    return canonical.split("/").index("{key}")


#: The attribute ``takes_params`` sets on a route's handler.
_TAKES = "clawsync_query_params"


def takes_params(*names: str, others: bool = False) -> Callable[[Handler], Handler]:
    """Declares the query parameters a route's handler reads; the answer middleware
    refuses a request that names another with 400 ``invalid_parameter`` (``?limt=10``,
    or ``?reason=`` where it is not taken, would otherwise be the default, silently). A
    handler that declares nothing takes none. ``others=True`` lets the rest through
    unread: the peers' routes, which newer nodes may call with parameters of their own.
    """

    def declare(handler: Handler) -> Handler:
        setattr(handler, _TAKES, None if others else frozenset(names))
        return handler

    return declare


def refuse_unknown_params(request: web.Request) -> None:
    """400 for a query parameter the matched route does not take (``takes_params``)."""
    if not request.rel_url.raw_query_string:
        return  # most requests: nothing to look up
    match = request.match_info
    if match.http_exception is not None:
        return  # a 404 or 405 says more than a parameter would
    taken: frozenset[str] | None = getattr(match.handler, _TAKES, frozenset())
    if taken is None:
        return
    for name in request.query:
        if name not in taken:
            resource = match.route.resource
            route = resource.canonical if resource is not None else request.path
            listed = ", ".join(sorted(taken)) if taken else "none"
            raise bad_parameter(name, f"is not a parameter of {request.method} {route} "
                                      f"(it takes {listed})")


def one_param(request: web.BaseRequest, name: str) -> str | None:
    """Query parameter ``name``, None when absent; 400 when given twice, or when its
    percent-encoding is not UTF-8's: aiohttp reads ``%ff`` as U+FFFD, and ``?prefix=%ff``
    would match the keys that start with that character. (Not for a token: a credential
    that cannot be read is a wrong one, 401.)"""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise bad_parameter(name, "is given more than once")
    if values and "\ufffd" in values[0]:
        for pair in request.rel_url.raw_query_string.split("&"):
            raw_name, _, raw_value = pair.partition("=")
            if urllib.parse.unquote_plus(raw_name) != name:
                continue
            try:
                urllib.parse.unquote_to_bytes(raw_value.replace("+", " ")).decode("utf-8")
            except UnicodeDecodeError:
                raise bad_parameter(name, "must be percent-encoded UTF-8") from None
    return values[0] if values else None


def int_param(request: web.BaseRequest, name: str, *, default: int, low: int,
              high: int) -> int:
    """Integer query parameter ``name`` within ``[low, high]``; 400 naming it otherwise."""
    raw = one_param(request, name)
    return default if raw is None else parse_int(raw, name, low=low, high=high)


def parse_int(raw: str, name: str, *, low: int, high: int) -> int:
    """``raw`` as an integer within ``[low, high]``; 400 naming ``name`` otherwise."""
    if not _INTEGER.fullmatch(raw) or not low <= int(raw) <= high:
        raise bad_parameter(name, f"must be an integer from {low} to {high}")
    return int(raw)


def seconds_param(request: web.BaseRequest, name: str, *, high_s: float) -> float:
    """Non-negative decimal seconds, at most ``high_s`` (0 when absent)."""
    raw = one_param(request, name)
    if raw is None:
        return 0.0
    if not _SECONDS.fullmatch(raw) or float(raw) > high_s:
        raise bad_parameter(name, f"must be a number of seconds from 0 to {high_s:g}")
    return float(raw)


def flag_param(request: web.BaseRequest, name: str) -> bool:
    """A yes-or-no query parameter: ``1``/``true`` or ``0``/``false`` (false when absent)."""
    raw = one_param(request, name)
    if raw is None or raw in ("0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise bad_parameter(name, "must be 1, 0, true or false")
