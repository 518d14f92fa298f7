"""Follow a session from Python: its projection, each time it changes.

``projections`` connects to a node's ``/automerge`` websocket as an automerge-repo
client, syncs the session's document and yields the projection (the same shape as
``GET /v1/sessions/{key}``: messages as a list in event order; without ``forgotten``,
which the node counts outside the document) every time the document changes. It
reconnects after a lost connection and resumes from the document it holds.
Made for apps and notebooks:

    import asyncio
    from node.client.subscribe import projections

    async def main():
        async for view in projections("http://127.0.0.1:7878", "tg:alice"):
            print(view["state"], len(view["messages"]), view["custom_state"])

    asyncio.run(main())

A session that does not exist yet yields nothing until it appears; so does a session
the token may not see (the protocol does not tell the two apart). A forget gives a
session a new document (its ``automerge_url`` changes): the subscription asks the node
for the new one (``GET /v1/sessions/{key}``, with the token: the id from its
``X-Clawsync-Automerge-Url`` header, the projection left unread) and follows it from
scratch. A node that refuses the token raises ``SubscribeError``, as does one that sends
an error (the message says why: a closed connection, a session too large to serve). A
node without that header (an older one) names the document only at the end of the
projection, which is then read: without ``reconnect``, one that is not a JSON object is a
``SubscribeError`` too (with it, the subscription follows the document the key names and
tries again later, as it does a node out of reach), and one longer than
``ClientLimits.answer_bytes_max`` is followed under the document its key names, which is
its document until a forget. A node URL no node could be reached at (a user name or
password in it, a query or a fragment, no host, a bad port, not ``http(s)://``) raises
``ClientError`` at once, as ``Client`` does, without showing the URL.
A node whose answer is for another session (the body's ``session_key``, or the
``session_key`` the followed document was born with, which its genesis change holds)
raises ``SubscribeError`` naming the session it got, ``reconnect`` or not: the document
is never followed in the asked one's name.
Each change costs a read of the whole document: fine for a notebook, not for following
thousands of sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeGuard
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

from crdt.automerge.document import Replica, automerge_url, new_sync_state, parse_automerge_url
from crdt.errors import CrdtError, InvalidInput
from crdt.keys import SESSION_KEY_BYTES_MAX
from node.client.errors import ClientError
from node.client.transport import AnswerTooLong, checked_node_url, json_object
from node.headers import AUTOMERGE_URL_HEADER
from node.limits import ClientLimits
from sync.errors import PeerFault
from sync.repo.messages import (
    SOCKET_PATH,
    Error,
    Peer,
    Sync,
    Unavailable,
    encode_join,
    encode_sync,
    parse_node_frame,
)


class SubscribeError(Exception):
    """The node refused the subscription (token, session) or closed it with an error."""


def _other_session(got: object, asked: str, where: str) -> SubscribeError:
    """The error for an answer for another session than ``asked``: it says which one
    came, cut to the length of the longest key (what is longer names no session).

    >>> _other_session("s2", "s1", "the node's document")
    SubscribeError("the node's document is for session 's2', not 's1'")
    >>> str(_other_session("é" * 400, "s1", "it")).count("é")
    256
    """
    if isinstance(got, str):  # cut by its UTF-8 bytes, as keys are bounded
        got = got.encode()[:SESSION_KEY_BYTES_MAX].decode(errors="ignore")
    else:
        got = repr(got)[:SESSION_KEY_BYTES_MAX]
    return SubscribeError(f"{where} is for session {got!r}, not {asked!r}")


class _Replaced(Exception):
    """The node no longer serves the document it was sending: a forget replaced it."""


def projection_of(view: dict[str, Any], url: str | None = None) -> dict[str, Any]:
    """A synced document as the JSON projection: messages as a list, in event order.

    >>> projection_of({"session_key": "s", "messages": {"2": {"content": "b"},
    ...     "1": {"content": "a"}}})["messages"]
    [{'key': '1', 'content': 'a'}, {'key': '2', 'content': 'b'}]
    """
    messages = view.get("messages") or {}
    out = {name: value for name, value in view.items() if name != "messages"}
    out["messages"] = [{"key": key, **messages[key]} for key in sorted(messages)]
    if url is not None:
        out["automerge_url"] = url
    elif "session_key" in view:
        out["automerge_url"] = automerge_url(str(view["session_key"]))
    return out


def socket_url(node: str, token: str | None) -> str:
    """The websocket URL of a node's ``/automerge``, from its HTTP base URL;
    ``ClientError`` (never showing it) for one no node could be reached at, as
    ``Client`` says it (``checked_node_url``).

    >>> socket_url("https://phone.local:7878/", "t k")
    'wss://phone.local:7878/automerge?token=t%20k'
    >>> socket_url("ftp://phone.local", None)
    Traceback (most recent call last):
    node.client.errors.ClientError: the node URL must be an http:// or https:// URL: give http(s)://host:port
    """
    parts = urlsplit(checked_node_url(node))
    scheme = {"http": "ws", "https": "wss"}[parts.scheme]
    query = f"token={quote(token, safe='')}" if token else ""
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + SOCKET_PATH, query, ""))


async def projections(node: str, session_key: str, *, token: str | None = None,
                      reconnect: bool = True, limits: ClientLimits = ClientLimits()
                      ) -> AsyncGenerator[dict[str, Any], None]:
    """Yield ``session_key``'s projection from ``node`` (``http://host:port``) now and
    after every change, until the caller stops iterating. A whole session arrives in one
    frame: a node configured to serve larger sessions than its default needs a larger
    ``limits.subscribe_frame_bytes_max``."""
    node = checked_node_url(node)  # first: the errors below name it
    replica = Replica()
    failures = 0
    async with aiohttp.ClientSession() as http:
        doc_text = await _document_text(http, node, session_key, token, limits, reconnect)
        while True:
            try:
                async with http.ws_connect(socket_url(node, token),
                                           max_msg_size=limits.subscribe_frame_bytes_max,
                                           heartbeat=30.0) as ws:
                    async for view in _follow(ws, replica, doc_text, session_key):
                        failures = 0
                        yield view
            except _Replaced:
                replaced = await _document_text(http, node, session_key, token, limits,
                                                reconnect)
                replica = Replica()  # the old one holds what the forget removed
                if replaced != doc_text:
                    doc_text = replaced
                    continue
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in (401, 403):
                    raise SubscribeError(f"the node refused the token ({exc.status})") from None
                if not reconnect:
                    raise SubscribeError(f"cannot open {node}: {exc}") from None
            except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
                if not reconnect:
                    raise SubscribeError(f"lost {node}: {exc}") from None
            else:
                if not reconnect:
                    return
            failures += 1
            await asyncio.sleep(min(limits.subscribe_retry_max_s,
                                    limits.subscribe_retry_base_s * 2 ** min(failures - 1, 10)))


async def _document_text(http: aiohttp.ClientSession, node: str, session_key: str,
                         token: str | None, limits: ClientLimits, reconnect: bool) -> str:
    """The id of the session's document as the node names it now (after a forget it is
    another); the id derived from the key while the node does not say (no such session
    yet, a token for Automerge only, a node out of reach). ``GET /v1/sessions/{key}``
    names it in a header (``AUTOMERGE_URL_HEADER``), ahead of the projection, which is
    then closed unread: its JSON may be six times the document's text (a control
    character is sent as ``\\u0001``) and far more than its compressed Automerge form.
    A node without the header (an older one), or a header that is not a valid document
    URL (mangled on the way), leaves it to the end of the projection:
    one longer than ``ClientLimits.answer_bytes_max`` is followed under the derived id,
    which is its document until a forget; one that is not a JSON object (nested deeper
    than Python parses, a proxy's page) is a ``SubscribeError`` without ``reconnect``;
    with it, the derived id too, as for a node out of reach. A body for another session
    than ``session_key`` is a ``SubscribeError`` with or without ``reconnect``."""
    url = automerge_url(session_key)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with contextlib.suppress(aiohttp.ClientError, ConnectionError, TimeoutError):
        async with http.get(f"{node.rstrip('/')}/v1/sessions/{quote(session_key, safe='')}",
                            headers=headers, timeout=aiohttp.ClientTimeout(total=30)
                            ) as response:
            if response.status == 200:
                found: object = response.headers.get(AUTOMERGE_URL_HEADER)
                if _is_document_url(found):
                    response.close()  # the id is all it needs: the projection stays unread
                else:
                    found = await _url_in_body(response, session_key, limits, reconnect)
                if _is_document_url(found):
                    url = found
    return url.removeprefix("automerge:")


def _is_document_url(found: object) -> TypeGuard[str]:
    """Whether the node named a document (an Automerge URL) in ``found``. The id itself
    is checked, not only the prefix: a proxy may mangle the header, and a subscription
    that asked for a malformed id would end on the node's refusal, not the document.

    >>> _is_document_url("automerge:4NMNnkMhL8jXrdJ9jamS58PAVdXu"), _is_document_url(None)
    (True, False)
    >>> _is_document_url("automerge:"), _is_document_url("automerge:4NMNnkMhL8jXrdJ9jamS58PAVdXu!")
    (False, False)
    """
    try:
        parse_automerge_url(found)
    except InvalidInput:
        return False
    return True


async def _url_in_body(response: aiohttp.ClientResponse, session_key: str,
                       limits: ClientLimits, reconnect: bool) -> object:
    """``automerge_url`` at the end of the projection: a node without the header. A
    projection of another session is a ``SubscribeError`` (its document is not this
    session's); one without ``session_key`` is left to the document's own check."""
    try:
        body = await json_object(response, limits.answer_bytes_max)
    except AnswerTooLong:
        return None
    except ClientError as exc:
        if not reconnect:
            raise SubscribeError(f"the node's session answer: {exc}") from None
        return None
    if "session_key" in body and body["session_key"] != session_key:
        raise _other_session(body["session_key"], session_key, "the node's session answer")
    return body.get("automerge_url")


async def _follow(ws: aiohttp.ClientWebSocketResponse, replica: Replica, doc_text: str,
                  session_key: str) -> AsyncIterator[dict[str, Any]]:
    """One connection: join, ask for the document, yield on every change. Each view is
    checked to be ``session_key``'s: the node named the document (after a forget its id
    is not the key's), and its genesis change, the first any sync brings, holds the key
    it was born for; a document of another session (or of none) is a ``SubscribeError``,
    as soon as a sync brought it in: before any answer to that sync goes back to the
    node. (Not before it is applied: the node's first answer is the whole document saved
    as one chunk, whose key only automerge reads; the replica is in memory, and dropped
    with the subscription the error ends.)"""
    me = f"clawsync-py-{secrets.token_hex(4)}"
    state = new_sync_state()
    server: str | None = None
    await ws.send_bytes(encode_join(me))
    async for message in ws:
        if message.type != aiohttp.WSMsgType.BINARY:
            break
        try:
            frame = parse_node_frame(bytes(message.data))
        except PeerFault as exc:
            raise SubscribeError(f"the node sent a bad frame: {exc}") from None
        if isinstance(frame, Peer):
            server = frame.sender
            first = replica.generate_sync_message(state)
            if first is not None:
                kind = "sync" if replica.heads else "request"
                await ws.send_bytes(encode_sync(me, server, doc_text, first, kind))
        elif isinstance(frame, Error):
            raise SubscribeError(f"the node refused: {frame.message}")
        elif isinstance(frame, Sync) and frame.document_id == doc_text and server:
            try:
                changed = replica.receive_sync_message(state, frame.data)
            except CrdtError as exc:
                raise SubscribeError(f"the node sent a bad sync message: {exc}") from None
            view = replica.to_python() if changed else None
            # Checked before the reply, which would tell the node we hold what it sent.
            if view is not None and view.get("session_key") != session_key:
                raise _other_session(view.get("session_key"), session_key,
                                     "the node's document")
            reply = replica.generate_sync_message(state)
            if reply is not None:
                await ws.send_bytes(encode_sync(me, server, doc_text, reply))
            if view is not None:
                yield projection_of(view, f"automerge:{doc_text}")
        elif isinstance(frame, Unavailable):
            if frame.document_id == doc_text and replica.heads:
                raise _Replaced  # it served this document before: a forget replaced it
            continue  # the node sends the session when it appears
