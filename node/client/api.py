"""A small client for a node's HTTP API, used by the ``clawsync`` command line.

Every failure leaves this module as a ``ClientError`` whose message a person can act on:
connection failures, timeouts, 4xx answers (with the node's own explanation of what was
wrong) and unexpected bodies are all translated in exactly one place, ``_translate``.

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
import json
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

# Re-exported: the commands that run requests catch it from here too.
from node.client.errors import ClientError as ClientError
from node.config import software_version
from node.limits import ClientLimits


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event from the live stream: its position and the event object."""

    position: int
    event: dict[str, Any]


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
        raise ClientError("the session key is empty: a session key is 1 to 512 UTF-8 bytes",
                          field="session_key")
    return "/v1/sessions/" + quote(session_key, safe="")


#: Statuses that say "no such route or method here" (not found, method not allowed, not
#: implemented): without a node's JSON error body, the address serves no clawsync API.
NO_ROUTE = frozenset({404, 405, 501})

#: ``on_news(what, position, reason)`` of ``Client.stream``: what is "open", "lost" or
#: "back"; reason says why the stream was lost.
StreamNews = Callable[[str, int, "str | None"], None]


class Client:
    """An open connection pool to one node. Use as ``async with Client(url) as node``."""

    def __init__(self, base_url: str, token: str | None = None, *,
                 limits: ClientLimits = ClientLimits()) -> None:
        self.base_url = base_url.rstrip("/")
        try:
            URL(self.base_url)
        except ValueError as error:
            raise ClientError(f"{base_url!r} is not a node URL: {error}") from None
        self.token = token
        self.limits = limits
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        headers = {"Accept": "application/json", "User-Agent": "clawsync-cli"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._session = aiohttp.ClientSession(headers=headers)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- the API -----------------------------------------------------------------------

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
                       include_cluster: bool = False, detail: bool = False
                       ) -> dict[str, Any]:
        """One page of the session list: ``{"sessions": [{"index", "session_key"}], ...}``;
        with ``include_cluster``, the cluster's own sessions (``clawsync:devices``, ...)
        among them; with ``detail``, each row with its summary (state, counts, and
        ``forgotten``: every event of it forgotten)."""
        params = _page(after, limit)
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
        return await self._request("POST", "/v1/devices", json_body=body,
                                   what="adding the device")

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
        try:
            answer = await self._request("GET", "/v1/cursors/" + quote(name, safe=""),
                                         what="the cursor request")
        except ClientError as error:
            if error.status == 404 and error.code == "not_found":
                return None
            raise
        return dict(answer["cursor"])

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        """``PUT /v1/cursors/{name}``: replace a bridge's cursor."""
        await self._request("PUT", "/v1/cursors/" + quote(name, safe=""),
                            json_body={"cursor": cursor}, what="the cursor")

    async def stream(self, after: int, on_news: StreamNews | None = None,
                     ) -> AsyncIterator[StreamEvent]:
        """Follow the node's live event stream (SSE) from position ``after``, forever.

        A dropped connection is reopened after the last position seen, so no event is
        missed or repeated. ``on_news(what, position, reason)`` hears ``"open"`` when the first
        connection is accepted, and once per outage ``"lost"`` and ``"back"``. Only a
        failure of the first connection, or a refusal (4xx), is raised: a node that is
        restarting comes back, a wrong token or URL does not.
        """
        delay_s = self.limits.reconnect_delay_min_s
        connected, outage = False, False
        tell = on_news or (lambda _what, _position, _reason: None)
        while True:
            try:
                async for item in self._stream_once(after):
                    if item is None:
                        tell("back" if connected else "open", after, None)
                        connected, outage, delay_s = True, False, self.limits.reconnect_delay_min_s
                        continue
                    after = item.position
                    yield item
                reason = "the node closed the stream"
            except ClientError as error:
                if not connected or (error.status is not None and error.status < 500):
                    raise
                reason = str(error)
            if not outage:
                tell("lost", after, reason)
                outage = True
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, self.limits.reconnect_delay_max_s)

    # --- plumbing ----------------------------------------------------------------------

    async def _stream_once(self, after: int) -> AsyncIterator[StreamEvent | None]:
        """One SSE connection: yields None once the node accepted it, then its events
        until the node closes it or it fails."""
        # ``after`` only, no ``Last-Event-ID``: it is what the caller gave (a refusal
        # names it), and each reconnect gives the position reached.
        headers = {"Accept": "text/event-stream"}
        timeout = aiohttp.ClientTimeout(total=None, connect=self.limits.connect_timeout_s,
                                        sock_read=self.limits.stream_idle_s)
        # In one `with`, the request starts inside _translate, which explains its failures.
        async with (self._translate("the live stream"),
                    self._http().get(self._url("/v1/events"), params={"after": str(after)},
                                     headers=headers, timeout=timeout) as response):
            if response.status >= 400:
                await self._refuse(response, "the live stream", None)
            yield None
            async for fields in _sse_messages(response.content):
                item = _stream_event(fields)
                if item is not None:
                    yield item

    async def _request(self, method: str, path: str, *, what: str,
                       params: Mapping[str, str] | None = None, json_body: Any = None,
                       missing: str | None = None) -> dict[str, Any]:
        """Send one request and return its JSON object, or raise ``ClientError``."""
        timeout = aiohttp.ClientTimeout(total=self.limits.request_timeout_s,
                                        connect=self.limits.connect_timeout_s)
        data = None if json_body is None else json.dumps(json_body).encode()
        headers = None if data is None else {"Content-Type": "application/json"}
        async with (self._translate(what),
                    self._http().request(method, self._url(path), params=params, data=data,
                                         headers=headers, timeout=timeout) as response):
            if response.status >= 400:
                await self._refuse(response, what, missing)
            body = await _json_object(response)
        return body

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the client as `async with Client(url) as node:`")
        return self._session

    def _url(self, path: str) -> URL:
        # encoded=True keeps %2F in session keys as it is instead of decoding it to "/".
        return URL(self.base_url + path, encoded=True)

    def _translate(self, what: str) -> _Translate:
        return _Translate(self.base_url, what, self.limits)

    async def _refuse(self, response: aiohttp.ClientResponse, what: str,
                      missing: str | None) -> None:
        """Raise the ``ClientError`` that explains an error answer."""
        status = response.status
        try:
            error = (await response.json(content_type=None))["error"]
            code, message, field = error.get("code"), str(error["message"]), error.get("field")
        except (ValueError, KeyError, TypeError, aiohttp.ClientError):
            code, message, field = None, response.reason or "no explanation given", None
        said = message.removeprefix(f"{field}: ") if field else message  # the words alone
        bearer = response.headers.get("WWW-Authenticate", "").lower().startswith("bearer")
        if status in (401, 403) and code is None and not bearer:
            # Every refusal of a node carries its JSON error, and its 401 asks for a Bearer
            # token: this one is probably from something in between (a reverse proxy's
            # own login, a firewall), not about the token. (A proxy that swaps the node's
            # error page keeps its 401 and that header: told as the node's, below.)
            raise ClientError(f"{self.base_url} refused {what} ({status} {message}) without "
                              "a clawsync answer: a reverse proxy or another service in "
                              "between? Probably not the node's token",
                              status=status, code=None, field=None, said=said)
        if status == 403:  # a valid token, that does not open this: the node says why
            raise ClientError(f"the node refused {what} (this token does not allow it): "
                              f"{message}",
                              status=status, code=code, field=field, said=said)
        if field and not message.startswith(f"{field}:"):
            message = f"{field}: {message}"
        if status == 401:
            text = ("the node refused the token: check --token or CLAWSYNC_TOKEN"
                    if self.token else
                    "the node needs a token: pass it with --token or CLAWSYNC_TOKEN")
        elif (status == 404 and message == "Not Found") or (status in NO_ROUTE
                                                             and code is None):
            # Not a node's "no such session" (which says what is missing): no route here.
            text = await self._no_route(response, what, node_said=code is not None)
            code = None  # no node said what is missing
        elif status == 404 and missing is not None:
            text = missing
        elif status == 405 and code == "method_not_allowed" and (
                gap := await self._version_gap(response)) is not None:
            text = f"{gap} ({message})"  # the path, but not the method: an older node
        elif status >= 500:
            text = f"the node failed to handle {what} (HTTP {status}): {message}"
        else:
            text = f"the node refused {what}: {message}"
        raise ClientError(text, status=status, code=code, field=field, said=said)

    async def _no_route(self, response: aiohttp.ClientResponse, what: str,
                        node_said: bool) -> str:
        """Why ``response`` found no route: a node's own JSON error comes from a node of
        another version (asked), or from a prefix that does not lead to its API; an
        answer without it comes from something else at that address."""
        if node_said and (gap := await self._version_gap(response)) is not None:
            return gap
        return (f"{self.base_url} has no clawsync API ({response.status} for {what}): is it a "
                "node's address (a reverse proxy's prefix, another service"
                + (", or a node too old to say its version" if node_said else "") + ")?")

    async def _version_gap(self, response: aiohttp.ClientResponse) -> str | None:
        """What a node says when it lacks a route this client asked for: the versions of
        both, and which to upgrade; None if nothing answers as a node there."""
        software = await self._software()
        if software is None:
            return None
        route = f"{response.method} {response.url.raw_path} ({response.status})"
        ours = software_version()
        if software == ours:
            return f"the node at {self.base_url} has no {route}"
        text = (f"the node at {self.base_url} runs clawsync {software}, which has no "
                f"{route}; this is clawsync {ours}")
        theirs_release, our_release = _release(software), _release(ours)
        if theirs_release is None or our_release is None:
            return text
        return text + (": upgrade the node" if theirs_release < our_release
                       else ", older than the node: use a clawsync of the node's version")

    async def _software(self) -> str | None:
        """The clawsync version the node at ``base_url`` says it runs (``GET /v1/node``),
        or None if nothing there answers as a node. Only a short wait: the error it
        explains came already."""
        timeout = aiohttp.ClientTimeout(total=self.limits.connect_timeout_s)
        try:
            async with self._http().get(self._url("/v1/node"), timeout=timeout) as response:
                body = await response.json(content_type=None) \
                    if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        software = body.get("software") if isinstance(body, dict) else None
        return software if isinstance(software, str) else None


def _release(version: str) -> tuple[int, ...] | None:
    """A release number to compare; None for what is none (a source tree).

    >>> _release("0.3.0") < _release("0.10.0"), _release("(source tree)")
    (True, None)
    """
    parts = version.split(".")
    return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) \
        else None


class _Translate:
    """The one place where aiohttp's and asyncio's exceptions become ``ClientError``."""

    def __init__(self, base_url: str, what: str, limits: ClientLimits) -> None:
        self.base_url, self.what, self.limits = base_url, what, limits

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        if error is None or isinstance(error, ClientError):
            return
        if not isinstance(error, aiohttp.ClientError | TimeoutError):
            return  # our own bug or a cancellation: let it through unchanged
        raise ClientError(self._explain(error)) from error

    def _explain(self, error: BaseException) -> str:
        where = f"the node at {self.base_url}"
        if isinstance(error, aiohttp.ConnectionTimeoutError):
            return f"cannot reach {where} within {self.limits.connect_timeout_s:g} s — is it up?"
        if isinstance(error, aiohttp.ClientConnectorCertificateError):
            return (f"{where} presented a certificate this machine does not trust ({error}); "
                    "point SSL_CERT_FILE at the cluster's CA, e.g. SSL_CERT_FILE=ca.pem")
        if isinstance(error, aiohttp.ClientSSLError):
            if "WRONG_VERSION_NUMBER" in str(error):  # a plain HTTP server answered
                return (f"{where} does not speak TLS: a node serves https:// only with "
                        "--tls-cert; try http://")
            return f"TLS with {where} failed ({error})"
        if isinstance(error, aiohttp.ClientConnectorDNSError):
            return (f"cannot reach {where}: its host name does not resolve "
                    f"({error.os_error.strerror})")
        if isinstance(error, aiohttp.ClientConnectorError):
            code = error.os_error.errno  # asyncio's text names the address again
            why = os.strerror(code).lower() if code and code > 0 else error.os_error.strerror
            return f"cannot reach {where} ({why}) — is `clawsync serve` running?"
        if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
            return f"{where} closed the connection during {self.what}"
        if isinstance(error, TimeoutError):
            return f"{where} did not answer {self.what} within {self.limits.request_timeout_s:g} s"
        if isinstance(error, aiohttp.InvalidURL):
            return f"{self.base_url!r} is not a node URL (expected http://host:port)"
        return f"talking to {where} failed during {self.what}: {error or type(error).__name__}"


def _page(after: int | None, limit: int | None) -> dict[str, str]:
    params = {}
    if after is not None:
        params["after"] = str(after)
    if limit is not None:
        params["limit"] = str(limit)
    return params


async def _json_object(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """The response body as a JSON object, or a ``ClientError`` saying what came instead."""
    raw = await response.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ClientError(f"the node answered HTTP {response.status} with a body that is not "
                          f"a JSON object: {raw[:80]!r}", status=response.status)
    return body


async def _sse_messages(content: aiohttp.StreamReader) -> AsyncIterator[dict[str, str]]:
    """Parse a ``text/event-stream`` body into messages (``{"id", "event", "data"}``).

    Follows the WHATWG rules that matter here: ``:`` lines are comments (keep-alives),
    several ``data:`` lines join with newlines, a blank line ends a message.
    """
    fields: dict[str, str] = {}
    async for raw in content:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if "data" in fields:
                yield fields
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data" and "data" in fields:
            fields["data"] += "\n" + value
        else:
            fields[name] = value


def _stream_event(fields: dict[str, str]) -> StreamEvent | None:
    """Turn one SSE message into a ``StreamEvent``; other message types are skipped."""
    if fields.get("event", "message") not in ("event", "message"):
        return None
    try:
        event = json.loads(fields["data"])
    except ValueError as error:
        raise ClientError(f"the live stream sent data that is not JSON: {error}") from None
    if not isinstance(event, dict):
        return None
    raw_position = fields.get("id", event.get("position"))
    try:
        position = int(str(raw_position))
    except ValueError:
        raise ClientError(f"the live stream sent an event without a position: "
                          f"{fields.get('id')!r}") from None
    return StreamEvent(position, event)
