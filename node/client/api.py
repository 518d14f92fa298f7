"""A small client for a node's HTTP API, used by the ``clawsync`` command line.

Every failure leaves this module as a ``ClientError`` whose message a person can act on:
connection failures, timeouts, 4xx answers (with the node's own explanation of what was
wrong) and unexpected bodies are all translated in exactly one place, in
``node.client.transport``: the HTTP side that ``Client`` is built on.

>>> import asyncio
>>> async def count_sessions() -> int:
...     async with Client("http://127.0.0.1:1") as node:
...         return len((await node.sessions())["sessions"])
>>> asyncio.run(count_sessions())
Traceback (most recent call last):
...
node.client.errors.ClientError: cannot reach the node at http://127.0.0.1:1 (connection refused)...
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

from crdt.keys import SESSION_KEYS_SAID

# Re-exported: the commands that run requests catch it from here too.
from node.client.errors import ClientError as ClientError
from node.client.failures import UnreadableStream
from node.client.transport import StreamEvent as StreamEvent  # what ``stream`` yields, too
from node.client.transport import Transport


def session_path(session_key: str) -> str:
    """The URL path of a session; every character of the key that is not a letter, a
    digit or ``-._~`` is percent-encoded, so keys may hold ``/``, ``?`` or ``:``.

    An empty key is refused here: its path would name another route, whose 404 says
    nothing about the key.

    >>> session_path("agent:main:telegram:b/1")
    '/v1/sessions/agent%3Amain%3Atelegram%3Ab%2F1'
    >>> session_path("")
    Traceback (most recent call last):
    node.client.errors.ClientError: the session key is empty: a session key is 1 to 512 UTF-8 bytes
    """
    if not session_key:
        raise ClientError(f"the session key is empty: a session key is {SESSION_KEYS_SAID}",
                          field="session_key")
    return "/v1/sessions/" + quote(session_key, safe="")


#: How many times ``Client.add_device`` sends the add again after a 503
#: ``devices_changing`` (nothing was written), each after the answer's ``Retry-After``.
DEVICES_CHANGING_RETRIES = 3
#: The longest ``Retry-After`` waited for there: a node that asks for more is asked
#: again sooner.
RETRY_AFTER_MAX_S = 5.0

#: The longest ``Retry-After`` a live stream refused with 503 (``streams_full``, a node
#: that is stopping) or 429 (``too_many_streams``) waits before it asks again: a node
#: that asks for more is asked again sooner.
STREAM_RETRY_AFTER_MAX_S = 60.0

#: ``on_news(what, position, reason)`` of ``Client.stream``: what is "open", "lost",
#: "back" or "full"; reason says why the stream was lost, or for "full" the refusal's
#: code (``streams_full``, or ``too_many_streams``: this address's streams).
StreamNews = Callable[[str, int, "str | None"], None]


class Client(Transport):
    """An open connection pool to one node. Use as ``async with Client(url) as node``."""

    async def health(self) -> dict[str, Any]:
        """``GET /healthz``: ``{"status", "node_id", "head"}``."""
        return await self._request("GET", "/healthz", what="the health check")

    async def node(self) -> dict[str, Any]:
        """``GET /v1/node``: the node's ids (``device_id``, ``node_id``), name and counts."""
        return await self._request("GET", "/v1/node", what="the request")

    async def append(self, session_key: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Append events to one session; returns ``{"events": [...], "created": n}``."""
        body: Any = events[0] if len(events) == 1 else events
        what = "the event" if len(events) == 1 else "the events"
        return await self._request("POST", session_path(session_key) + "/events",
                                   json_body=body, what=what)

    async def events(self, session_key: str, *, after: int | None = None,
                     limit: int | None = None) -> dict[str, Any]:
        """One page of a session's events: ``{"events", "next", "more"}``."""
        return await self._request("GET", session_path(session_key) + "/events",
                                   params=_page(after, limit), what="the request",
                                   missing=f"there is no session {session_key!r} on the node")

    async def sessions(self, *, after: int | None = None, limit: int | None = None,
                       include_cluster: bool = False, detail: bool = False,
                       prefix: str | None = None) -> dict[str, Any]:
        """One page of the session list: ``{"sessions": [{"index", "session_key"}], ...}``;
        with ``include_cluster``, the cluster's own sessions (``clawsync:devices``, ...)
        among them; with ``detail``, each row with its summary (state, counts, and
        ``forgotten``: every event of it forgotten); with ``prefix``, only the sessions
        whose key starts with it."""
        params = _page(after, limit)
        if prefix is not None:
            params["prefix"] = prefix
        if include_cluster:
            params["include_cluster"] = "1"
        if detail:
            params["detail"] = "1"
        return await self._request("GET", "/v1/sessions", params=params, what="the request")

    async def projection(self, session_key: str) -> dict[str, Any]:
        """A session's current state (its projection)."""
        return await self._request("GET", session_path(session_key), what="the request",
                                   missing=f"there is no session {session_key!r} on the node")

    async def forget(self, session_key: str, events: list[str] | None = None, *,
                     reason: str | None = None) -> dict[str, Any]:
        """Forget a session (``DELETE /v1/sessions/{key}``) or only ``events`` of it
        (``POST /v1/sessions/{key}/forget``): ``{"session_key", "forget": record}``."""
        missing = f"there is no session {session_key!r} on the node"
        if not events:
            return await self._request("DELETE", session_path(session_key),
                                       what="the forget", missing=missing)
        body: dict[str, Any] = {"events": events}
        if reason is not None:
            body["reason"] = reason
        return await self._request("POST", session_path(session_key) + "/forget",
                                   json_body=body, what="the forget", missing=missing)

    async def peers(self) -> dict[str, Any]:
        """``GET /v1/peers``: this node's replication links and their state."""
        return await self._request("GET", "/v1/peers", what="the request")

    async def origins(self) -> dict[str, Any]:
        """``GET /v1/origins``: every origin the node knows, active or retired."""
        return await self._request("GET", "/v1/origins", what="the request")

    async def retire_origin(self, origin: str, *, force: bool = False) -> dict[str, Any]:
        """``DELETE /v1/origins/{origin}``: retire an origin that will never write again;
        ``force``: even one that still writes (else 409 ``origin_live``). Without it the
        request is the same as before, which nodes of every version take."""
        return await self._request("DELETE", "/v1/origins/" + quote(origin, safe=""),
                                   params={"force": "1"} if force else None,
                                   what="the retirement",
                                   missing=f"the node holds no events of origin {origin!r}")

    async def devices(self) -> dict[str, Any]:
        """``GET /v1/devices``: this device's id, the members and the removed devices."""
        return await self._request("GET", "/v1/devices", what="the request")

    async def add_device(self, device_id: str, name: str, address: str | None = None, *,
                         clear_address: bool = False) -> dict[str, Any]:
        """``POST /v1/devices``: add a device (or rename it): ``{"device", "created"}``.
        Without ``address`` a member keeps its own; ``clear_address`` clears it."""
        body: dict[str, Any] = {"device_id": device_id, "name": name}
        if address is not None or clear_address:
            body["address"] = address
        for retries_left in range(DEVICES_CHANGING_RETRIES, -1, -1):
            try:
                return await self._request("POST", "/v1/devices", json_body=body,
                                           what="adding the device")
            except ClientError as error:
                # 503 ``devices_changing``: a peer's records kept coming in while the node
                # checked the add, and nothing was written; the same add is safe again.
                if (error.status, error.code) != (503, "devices_changing"):
                    raise
                if not retries_left:
                    raise ClientError(
                        "the node's device records kept changing while it checked the add "
                        f"({DEVICES_CHANGING_RETRIES + 1} times), so nothing was written; "
                        "try again", status=error.status,
                        code=error.code, said=error.said, details=error.details,
                        retry_after_s=error.retry_after_s) from None
                wait = error.retry_after_s if error.retry_after_s is not None else 1.0
                await asyncio.sleep(min(wait, RETRY_AFTER_MAX_S))
        raise AssertionError("unreachable: the last try returns or raises")

    async def remove_device(self, device_id: str, reason: str = "") -> dict[str, Any]:
        """``DELETE /v1/devices/{id}``: remove a device for good."""
        return await self._request(
            "DELETE", "/v1/devices/" + quote(device_id, safe=""), what="the removal",
            params={"reason": reason} if reason else None)  # a 404 says why

    async def tokens(self) -> dict[str, Any]:
        """``GET /v1/tokens``: the Automerge tokens the cluster's devices issued."""
        return await self._request("GET", "/v1/tokens", what="the request")

    async def create_token(self, sessions: list[str], *, read_only: bool = False,
                           name: str | None = None) -> dict[str, Any]:
        """``POST /v1/tokens``: issue an Automerge token; the answer's ``token`` is the
        secret, shown this once."""
        body: dict[str, Any] = {"sessions": sessions, "read_only": read_only}
        if name is not None:
            body["name"] = name
        return await self._request("POST", "/v1/tokens", json_body=body, what="issuing the token")

    async def revoke_token(self, token_id: str) -> dict[str, Any]:
        """``DELETE /v1/tokens/{id}``: revoke an Automerge token on every node."""
        return await self._request("DELETE", "/v1/tokens/" + quote(token_id, safe=""),
                                   what="the revocation",
                                   missing=f"no token {token_id} was issued")

    async def cursor(self, name: str) -> dict[str, int] | None:
        """``GET /v1/cursors/{name}``: a bridge's saved cursor, or None if none was saved."""
        tagged = await self.tagged_cursor(name)
        return None if tagged is None else tagged[0]

    async def tagged_cursor(self, name: str) -> tuple[dict[str, int], str | None] | None:
        """``GET /v1/cursors/{name}``: a bridge's saved cursor and its tag (``ETag``, for
        ``save_cursor``'s ``if_match``; None from a node older than tags), or None if
        none was saved."""
        try:
            answer, headers = await self._exchange("GET", "/v1/cursors/" + quote(name, safe=""),
                                                   what="the cursor request")
        except ClientError as error:
            if error.status == 404 and error.code == "not_found":
                return None
            raise
        return dict(answer["cursor"]), _tag(headers)

    async def save_cursor(self, name: str, cursor: dict[str, int], *,
                          if_match: str | None = None, if_absent: bool = False) -> str | None:
        """``PUT /v1/cursors/{name}``: replace a bridge's cursor; with ``if_match`` (a tag
        ``tagged_cursor`` or this gave), only if it still has that tag, with ``if_absent``
        only if none is saved (``If-None-Match: *``), else a ``ClientError`` of status
        412 (``cursor_changed``: read it again). Returns the
        tag of the cursor saved (None from a node older than tags, which saves whatever
        the tag). Sent as CBOR, the form the node measures it in: a cursor within its
        size limit is a body within the node's (in JSON, names full of ``"`` or ``\\``
        take twice their bytes, and more)."""
        conditions = {}
        if if_match is not None:
            conditions["If-Match"] = if_match
        if if_absent:
            conditions["If-None-Match"] = "*"
        _answer, headers = await self._exchange(
            "PUT", "/v1/cursors/" + quote(name, safe=""), cbor_body={"cursor": cursor},
            what="the cursor", headers=conditions or None)
        return _tag(headers)

    async def stream(self, after: int, on_news: StreamNews | None = None,
                     ) -> AsyncIterator[StreamEvent]:
        """Follow the node's live event stream (SSE) from position ``after``, forever.

        A dropped connection is reopened after the last position seen, so no event is
        missed or repeated. ``on_news(what, position, reason)`` hears ``"open"`` when the
        first connection is accepted, ``"back"`` when one is again, and ``"lost"`` or
        ``"full"`` once each time the stream's failure changes to that. A node whose live
        streams are all taken (503 ``streams_full``), or whose streams from this address
        are (429 ``too_many_streams``), or the node's own 503 with a ``Retry-After`` (a
        node that is stopping), is asked again after the wait it asks for (at most
        ``STREAM_RETRY_AFTER_MAX_S``), the first stream asked for too. Each of these
        refusals comes after the node's token check, so once one came, as once a stream
        opened, the URL and token are right and a failure that asks for no wait backs off
        (``reconnect_delay_min_s`` doubling up to ``reconnect_delay_max_s``). Only another
        failure before that (a connection refused, a proxy's 502), another refusal (4xx),
        or what the client cannot read (``UnreadableStream``) is raised: a node that is
        restarting comes back, a wrong token or URL, or a node that sends what no node
        does, does not.
        """
        delay_s = self.limits.reconnect_delay_min_s
        # A node that opened a stream, or refused one with a wait (full, or stopping:
        # both after its token check), has the right URL and takes the token: what fails
        # after that is passing, not a mistake to report, and is waited out.
        connected = False  # a stream opened: the next one opened is "back"
        reached = False
        said: str | None = None  # the failure going on, as told: "lost" or "full"
        tell = on_news or (lambda _what, _position, _reason: None)
        while True:
            wait_s: float | None = None
            try:
                async for item in self._stream_once(after):
                    if item is None:
                        tell("back" if connected else "open", after, None)
                        connected, reached, said = True, True, None
                        delay_s = self.limits.reconnect_delay_min_s
                        continue
                    after = item.position
                    yield item
                failure, reason = "lost", "the node closed the stream"
            except ClientError as error:
                if (error.status, error.code) in _STREAMS_TAKEN:
                    # The node is up and takes the token (these come after its check): it
                    # will take the stream once one of all its streams, or of this
                    # address's, closes; its cap per address met by a reconnection while
                    # it still counts the stream it replaces, or by another tail.
                    failure, reason, wait_s = "full", str(error.code), error.retry_after_s
                    reached = True
                # Unreadable: what the node sends, which a reconnection sends again.
                elif isinstance(error, UnreadableStream) or (
                        error.status is not None and error.status < 500):
                    raise
                elif reached or _stopping(error):
                    # Once reached: a connection error or a 5xx is passing (a node that
                    # restarts, a proxy whose node is away); a node that is stopping
                    # asks for the wait of its restart (503 with Retry-After), the first
                    # stream asked for too.
                    reached = True  # the node's own 503 comes after its token check
                    failure, reason = "lost", str(error)
                    wait_s = error.retry_after_s if error.status == 503 else None
                else:
                    raise
            if failure != said:  # full, then lost, then full again: each is news
                tell(failure, after, reason)
                said = failure
            if wait_s:
                await asyncio.sleep(min(wait_s, STREAM_RETRY_AFTER_MAX_S))
            else:  # none asked for (0, or a proxy dropped the Retry-After): back off
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, self.limits.reconnect_delay_max_s)


#: Refusals of a live stream for the streams a node has open, in all (``streams_full``)
#: or from this address (``too_many_streams``): asked again after the wait they ask for.
_STREAMS_TAKEN = frozenset({(503, "streams_full"), (429, "too_many_streams")})


def _stopping(error: ClientError) -> bool:
    """The node's own 503 that asks for a wait (a node that is stopping, its disk full):
    a proxy's has no ``code``, and may stand for a wrong URL."""
    return error.status == 503 and error.code is not None and bool(error.retry_after_s)


def _page(after: int | None, limit: int | None) -> dict[str, str]:
    params = {}
    if after is not None:
        params["after"] = str(after)
    if limit is not None:
        params["limit"] = str(limit)
    return params


#: A strong entity tag as a node gives a cursor's (``ETag``), sent back as it is.
_TAG = re.compile(r'"[\x21\x23-\x7e]{1,64}"')


def _tag(headers: Mapping[str, str]) -> str | None:
    """The answer's ``ETag``, if it is a strong tag (a node that gives none, or one no
    node gives, is saved to without a condition)."""
    tag = headers.get("ETag")
    return tag if tag is not None and _TAG.fullmatch(tag) else None
