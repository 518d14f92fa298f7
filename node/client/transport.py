"""``Transport``: how ``Client`` (``node.client.api``) talks HTTP to a node: requests, the
live stream's connection, and every failure turned into a ``ClientError``.

Connection failures, timeouts, 4xx answers (with the node's own explanation of what was
wrong) and unexpected bodies are all translated in exactly one place,
``node.client.failures.Translate`` (with ``_refuse`` for the answers a node gave, in the
words of ``node.client.answers``).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp
from yarl import URL

from crdt import codec
from crdt.addresses import address_refusal, normal_address, unshown_refusal
from node.asked_waits import asked_wait_s
from node.checks import host_name_problem
from node.client import answers
from node.client.errors import ClientError, shown_address
from node.client.failures import Translate, UnreadableStream
from node.client.token_unused import token_unused_heard
from node.config import software_version
from node.headers import HINT_FIELD, ROUTES_TOLD
from node.json_numbers import finite_float, refuse_constant
from node.limits import ClientLimits
from node.lookups import LookupResolver
from node.text import printable


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event from the live stream: its position and the event object."""

    position: int
    event: dict[str, Any]


# NaN, Infinity and numbers past a float's range are a ValueError like any answer that
# is not JSON (``node.json_numbers``). One decoder: ``json.loads`` with hooks builds a
# new one per call.
_ANSWERS = json.JSONDecoder(parse_constant=refuse_constant, parse_float=finite_float)


def checked_node_url(url: str) -> str:
    """``url``, the address of a node a Python caller gives (``Client``,
    ``node.client.subscribe``), with its scheme in lower case; ``ClientError`` if no node
    could be reached there (``crdt.addresses``: a user name or password, a query or a
    fragment, where the client's paths would land, not ``http(s)://``, no host, a port
    not between 1 and 65535; ``node.checks.host_name_problem``: a host name label over
    63 characters or empty, an A-label that is not punycode). The error never shows it:
    it may hold a password, or a token in its query (the token goes in a header, not in
    the URL).

    >>> checked_node_url("HTTP://hub:7878")
    'http://hub:7878'
    >>> checked_node_url("http://hub:0")
    Traceback (most recent call last):
    node.client.errors.ClientError: the node URL has a port that is not between 1 and 65535: give http(s)://host:port
    """
    # First: every error later names the address, and a password must not be shown.
    unshown = unshown_refusal(url)
    if unshown is not None:  # not shown: a password, or a token in a query
        raise ClientError(
            f"the node URL {unshown.why}, which errors would show; give the token as "
            "token= instead" if unshown.password else
            f"the node URL {unshown.why} (the client's paths go after it): give "
            "http(s)://host:port, and a token as token=")
    refusal = address_refusal(url)
    if refusal is None:
        try:
            URL(url)
        except ValueError:  # yarl's message may quote the address: it is not passed on
            # A host name yarl cannot encode (a label too long once encoded), said as
            # ``--node`` says it.
            refusal = host_name_problem(url) or "is not a URL"
        else:  # a name no lookup takes: the lookup's encoding raised a UnicodeError
            refusal = host_name_problem(url)
    if refusal is not None:
        raise ClientError(f"the node URL {refusal}: give http(s)://host:port")
    return normal_address(url)


class AnswerTooLong(ClientError):
    """An answer longer than the client reads (``ClientLimits.answer_bytes_max``)."""


class Transport:
    """The HTTP side of ``Client``: its connection pool, its requests and their failures."""

    def __init__(self, base_url: str, token: str | None = None, *,
                 limits: ClientLimits = ClientLimits(),
                 on_token_unused: Callable[[str], None] | None = None) -> None:
        self.base_url = checked_node_url(base_url).rstrip("/")
        #: ``base_url`` as errors show it: cut as a refused ``--node`` is.
        self.shown_url = shown_address(self.base_url, quoted=False)
        self.token = token
        self.limits = limits
        #: Called once, with ``shown_url``, if the node says it takes no token.
        self.on_token_unused = on_token_unused
        self._session: aiohttp.ClientSession | None = None
        self._resolver: LookupResolver | None = None

    async def __aenter__(self) -> Self:
        headers = {"Accept": "application/json", "User-Agent": "clawsync-cli"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        # The node's host name looked up on a daemon thread of its own: a lookup that
        # hangs past the connect timeout would otherwise hold the loop's default executor,
        # and the command's exit with it (``asyncio.run`` joins that executor's threads).
        self._resolver = LookupResolver()
        self._session = aiohttp.ClientSession(
            headers=headers, connector=aiohttp.TCPConnector(resolver=self._resolver),
            trace_configs=token_unused_heard(self.token, self.shown_url, self.on_token_unused))
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:  # the connector does not close a resolver it was given
            await self._resolver.close()
            self._resolver = None

    async def _stream_once(self, after: int) -> AsyncIterator[StreamEvent | None]:
        """One SSE connection: yields None once the node accepted it, then its events
        until the node closes it or it fails."""
        # ``after`` only, no ``Last-Event-ID``: it is what the caller gave (a refusal
        # names it), and each reconnect gives the position reached.
        headers = {"Accept": "text/event-stream"}
        timeout = aiohttp.ClientTimeout(total=None, connect=self.limits.connect_timeout_s,
                                        sock_read=self.limits.stream_idle_s)
        # In one `with`, the request starts inside _translate, which explains its failures.
        # aiohttp reads a line of at most twice its read buffer (LineTooLong past it: 512
        # KiB by default), and a node sends each event on one ``data:`` line, of up to
        # ``body_bytes_max``: lines as long as a message this client reads are taken.
        async with (self._translate("the live stream"),
                    self._http().get(self._url("/v1/events"), params={"after": str(after)},
                                     headers=headers, timeout=timeout,
                                     read_bufsize=self.limits.stream_message_bytes_max // 2
                                     ) as response):
            if response.status >= 400:
                await self._refuse(response, "the live stream", None)
            yield None
            async for fields in _sse_messages(response.content,
                                              self.limits.stream_message_bytes_max):
                item = _stream_event(fields)
                if item is not None:
                    yield item

    async def _request(self, method: str, path: str, *, what: str,
                       params: Mapping[str, str] | None = None, json_body: Any = None,
                       cbor_body: Any = None, missing: str | None = None) -> dict[str, Any]:
        """Send one request (its body ``json_body`` as JSON, or ``cbor_body`` as CBOR)
        and return its JSON object, or raise ``ClientError``."""
        body, _headers = await self._exchange(method, path, what=what, params=params,
                                              json_body=json_body, cbor_body=cbor_body,
                                              missing=missing)
        return body

    async def _exchange(self, method: str, path: str, *, what: str,
                        params: Mapping[str, str] | None = None, json_body: Any = None,
                        cbor_body: Any = None, missing: str | None = None,
                        headers: Mapping[str, str] | None = None,
                        ) -> tuple[dict[str, Any], Mapping[str, str]]:
        """``_request``, sending ``headers`` too, and returning the answer's headers with
        its JSON object."""
        timeout = aiohttp.ClientTimeout(total=self.limits.request_timeout_s,
                                        connect=self.limits.connect_timeout_s)
        data, sent = None, dict(headers or {})
        if json_body is not None:
            data, sent["Content-Type"] = json_bytes(json_body), "application/json"
        elif cbor_body is not None:
            data, sent["Content-Type"] = codec.encode(cbor_body), "application/cbor"
        async with (self._translate(what),
                    self._http().request(method, self._url(path), params=params, data=data,
                                         headers=sent, timeout=timeout) as response):
            if response.status >= 400:
                await self._refuse(response, what, missing)
            body = await json_object(response, self.limits.answer_bytes_max)
        return body, response.headers

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the client as `async with Client(url) as node:`")
        return self._session

    def _url(self, path: str) -> URL:
        # encoded=True keeps %2F in session keys as it is instead of decoding it to "/".
        return URL(self.base_url + path, encoded=True)

    def _translate(self, what: str) -> Translate:
        return Translate(self.base_url, self.shown_url, what, self.limits, self._resolver)

    async def _refuse(self, response: aiohttp.ClientResponse, what: str,
                      missing: str | None) -> None:
        """Raise the ``ClientError`` that explains an error answer."""
        status = response.status
        try:
            error = _parse(await _body(response, self.limits.answer_bytes_max))["error"]
            # Only text is a code or a field: ``failure`` looks them up in sets.
            code, field = (value if isinstance(value, str) else None
                           for value in (error.get("code"), error.get("field")))
            message = str(error["message"])
            details = {name: value for name, value in error.items()
                       if name not in ("code", "message", "field")}
        # RecursionError: JSON nested deeper than Python's parser goes (``[`` x 200,000);
        # AttributeError: an "error" that is no object (``{"error": "Bad Request"}``, as
        # some web servers and proxies answer).
        except (ValueError, RecursionError, KeyError, TypeError, AttributeError,
                aiohttp.ClientError):
            code, message, field = None, response.reason or "no explanation given", None
            details = {}
        # The node's words go into every command's error, printed on a terminal: a hostile
        # or broken node's control characters are escaped here, once for all of them.
        message = printable(message)
        if isinstance(field, str):
            field = printable(field)
        said = message.removeprefix(f"{field}: ") if field else message  # the words alone
        wait = asked_wait_s(response.headers.get("Retry-After"), time.time())
        bearer = response.headers.get("WWW-Authenticate", "").lower().startswith("bearer")
        if status in (401, 403) and code is None and not bearer:
            # Every refusal of a node carries its JSON error, and its 401 asks for a Bearer
            # token: this one is probably from something in between (a reverse proxy's
            # own login, a firewall), not about the token. (A proxy that swaps the node's
            # error page keeps its 401 and that header: told as the node's, below.)
            raise ClientError(answers.refused_in_between(self.shown_url, what, status, message),
                              status=status, code=None, field=None, said=said,
                              in_between=True)
        if status in answers.GATEWAY and code is None:
            # Every node's 503 carries its JSON error, and a node answers no 502 or 504:
            # this one is from something in between that could not reach the node, or
            # will not pass the request on now (a reverse proxy, a load balancer).
            raise ClientError(answers.not_passed_on(self.shown_url, what, status, message, wait),
                              status=status, code=None, field=None, said=said,
                              retry_after_s=wait, in_between=True)
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
        elif (status == 404 and message == "Not Found") or (status in answers.NO_ROUTE
                                                             and code is None):
            # Not a node's "no such session" (which says what is missing): no route here.
            # The hint names the path asked for: cut as the address it holds is.
            hint = details.get(HINT_FIELD)
            text = await self._no_route(
                response, what, node_said=code is not None,
                hint=shown_address(printable(hint), quoted=False)
                if isinstance(hint, str) else None)
            code = None  # no node said what is missing
        elif status == 404 and missing is not None:
            text = missing
        elif status == 405 and code == "method_not_allowed" and (
                gap := await self._version_gap(response)) is not None:
            # The path, but not the method: an older node; where the routes are listed
            # is no news next to which to upgrade.
            text = f"{gap} ({message.removesuffix(f'; {ROUTES_TOLD}')})"
        elif status == 503:
            text = answers.unavailable(what, message, wait)
        elif status >= 500:
            text = f"the node failed to handle {what} (HTTP {status}): {message}"
        else:
            text = f"the node refused {what}: {message}"
        raise ClientError(text, status=status, code=code, field=field, said=said,
                          details=details, retry_after_s=wait)

    async def _no_route(self, response: aiohttp.ClientResponse, what: str,
                        node_said: bool, hint: str | None) -> str:
        """Why ``response`` found no route: a node's own JSON error comes from a node of
        another version (asked), or from a prefix that does not lead to its API (the
        ``hint`` of a node that gives one says which route it lacks); an answer without
        it comes from something else at that address."""
        if node_said and (gap := await self._version_gap(response)) is not None:
            return gap
        return answers.no_api(self.shown_url, response.status, what, node_said, hint)

    async def _version_gap(self, response: aiohttp.ClientResponse) -> str | None:
        """What a node says when it lacks a route this client asked for: the versions of
        both, and which to upgrade; None if nothing answers as a node there."""
        software = await self._software()
        if software is None:
            return None
        route = f"{response.method} {response.url.raw_path} ({response.status})"
        return answers.version_gap(self.shown_url, route, software, software_version())

    async def _software(self) -> str | None:
        """The clawsync version the node at ``base_url`` says it runs (``GET /v1/node``),
        or None if nothing there answers as a node. Only a short wait: the error it
        explains came already."""
        timeout = aiohttp.ClientTimeout(total=self.limits.connect_timeout_s)
        try:
            async with self._http().get(self._url("/v1/node"), timeout=timeout) as response:
                body = _parse(await _body(response, self.limits.answer_bytes_max)) \
                    if response.status == 200 else None
        except (aiohttp.ClientError, ClientError, TimeoutError, ValueError, RecursionError):
            return None
        software = body.get("software") if isinstance(body, dict) else None
        return printable(software) if isinstance(software, str) else None


async def _body(response: aiohttp.ClientResponse, limit_bytes: int) -> bytes:
    """The response body, read up to ``limit_bytes`` (``ClientLimits.answer_bytes_max``):
    an ``AnswerTooLong`` past it, before it fills memory."""
    if (response.content_length or 0) > limit_bytes:
        raise AnswerTooLong(f"the node's answer is {response.content_length} bytes, more than "
                          f"the {limit_bytes} this client reads (answer_bytes_max)",
                          status=response.status)
    parts, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit_bytes:
            raise AnswerTooLong(f"the node's answer is longer than the {limit_bytes} bytes this "
                              "client reads (answer_bytes_max)", status=response.status)
        parts.append(chunk)
    return b"".join(parts)


def _parse(raw: bytes | str) -> Any:
    """A node's answer parsed as JSON: a ValueError for what is not JSON, or holds NaN,
    Infinity or a number past a float's range.

    >>> _parse(b'{"retry_in_s": 1.5}')
    {'retry_in_s': 1.5}
    >>> _parse(b'{"retry_in_s": Infinity}')
    Traceback (most recent call last):
    ValueError: Infinity is not a JSON number
    >>> _parse(b'[1e400]')
    Traceback (most recent call last):
    ValueError: number 1e400 is out of range
    """
    # As ``json.loads`` reads bytes (UTF-8, -16 or -32).
    text = raw.decode(json.detect_encoding(raw), "surrogatepass") \
        if isinstance(raw, bytes) else raw
    return _ANSWERS.decode(text)


async def json_object(response: aiohttp.ClientResponse, limit_bytes: int) -> dict[str, Any]:
    """The response body as a JSON object, or a ``ClientError`` saying what came instead
    (``AnswerTooLong`` past ``limit_bytes``); ``Client`` and ``node.client.subscribe``
    read their answers with it."""
    raw = await _body(response, limit_bytes)
    try:
        body = _parse(raw)
    # RecursionError: JSON nested deeper than Python's parser goes (``[`` x 200,000).
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise ClientError(f"the node answered HTTP {response.status} with a body that is not "
                          f"a JSON object: {raw[:80]!r}", status=response.status)
    return body


async def _sse_messages(content: aiohttp.StreamReader,
                        limit_bytes: int) -> AsyncIterator[dict[str, str]]:
    """Parse a ``text/event-stream`` body into messages (``{"id", "event", "data"}``).

    Follows the WHATWG rules that matter here: ``:`` lines are comments (keep-alives),
    several ``data:`` lines join with newlines, a blank line ends a message. A message
    whose data passes ``limit_bytes`` (``ClientLimits.stream_message_bytes_max``) is a
    ``ClientError``: gathered, an endless one would fill memory.
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
            if len(fields["data"]) > limit_bytes:  # characters: at most as many as bytes
                raise UnreadableStream(f"the live stream sent a message longer than the "
                                  f"{limit_bytes} bytes this client reads "
                                  "(stream_message_bytes_max)")
        else:
            fields[name] = value


def _stream_event(fields: dict[str, str]) -> StreamEvent | None:
    """Turn one SSE message into a ``StreamEvent``; other message types are skipped."""
    if fields.get("event", "message") not in ("event", "message"):
        return None
    try:
        event = _parse(fields["data"])
    except RecursionError:  # nested deeper than Python's parser goes (``[`` x 100,000)
        raise UnreadableStream("the live stream sent data that is not JSON this client reads: "
                          "nested too deep") from None
    except ValueError as error:
        raise UnreadableStream(f"the live stream sent data that is not JSON: {error}") from None
    if not isinstance(event, dict):
        return None
    raw_position = fields.get("id", event.get("position"))
    try:
        position = int(str(raw_position))
    except ValueError:
        raise UnreadableStream(f"the live stream sent an event without a position: "
                          f"{fields.get('id')!r}") from None
    return StreamEvent(position, event)


def json_bytes(value: Any) -> bytes:
    """``value`` as the JSON of a request body: UTF-8 as it is (the node reads JSON as
    UTF-8), not ``\\u`` escapes, in which a character past ASCII takes 6 or 12 bytes, not
    its 2 to 4: a body whose limit follows from its values' encoded size (a cursor's,
    ``node.server.cursors.BODY_BYTES_MAX``) would pass it.

    >>> json_bytes({"k": "é😀"})
    b'{"k":"\\xc3\\xa9\\xf0\\x9f\\x98\\x80"}'
    >>> json_bytes({"k": "\\ud800"})  # no UTF-8: escaped, and the node says what is wrong
    b'{"k":"\\\\ud800"}'
    """
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate (from JSON read elsewhere)
        return json.dumps(value, separators=(",", ":")).encode()
