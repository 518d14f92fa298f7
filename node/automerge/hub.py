"""``GET /automerge``: the websocket automerge-repo clients sync session documents over.

An app connects with ``@automerge/automerge-repo`` and its websocket adapter, pointed
at ``ws://<node>/automerge?token=<token>`` (browsers cannot set headers on websockets,
so the token may come in the query string; ``Authorization: Bearer`` works too):

    const repo = new Repo({network: [new WebSocketClientAdapter(
        "ws://127.0.0.1:7878/automerge")]})
    const handle = await repo.find("automerge:2rPXk7WCZuV9W9C4pNhWXz4JezQ6")

The protocol is ``sync.repo.connection``; this module only moves frames and decides nothing about
them. Each connection runs its machine on the store's writer thread (the only thread
that may touch the live documents), one call at a time, and sends what it returns in
order through one writer task. A hub follows the log: when events of a session commit,
every connection watching that session's document is refreshed (coalesced, so a burst
of appends costs one sync message). Edits a client makes are appended through the
``AsyncStore`` like any other events, so they replicate and reach every client.

Tokens: the node's ``--token`` opens every session; ``Config.automerge.tokens`` adds
tokens limited to some sessions, or read-only, and so do tokens issued by a device of
the cluster (``node.automerge.tokens``), whose clients are disconnected when the token
is revoked. A node without any token (loopback only) lets every local client open every
session (a client presenting an issued token gets what that token allows). A token no
node takes (longer than ``node.checks.TOKEN_CHARS_MAX``, or with a control character:
any in ``?token=``, a tab in an ``Authorization`` header, which HTTP allows in a value) is
refused with a 401 that says why, never showing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Iterable
from pathlib import Path

import structlog
from aiohttp import web

from crdt.automerge.documents import Documents
from crdt.errors import CrdtError
from crdt.log import forget
from node.automerge.connection import ClientConnection
from node.automerge.library import StoreLibrary
from node.automerge.metrics import UNAUTHORIZED, Counts, RepoCollector
from node.automerge.tokens import IssuedTokens
from node.automerge.trials import Trials
from node.checks import HIDDEN, TOKEN_CHARS_MAX, check_token, holds_control
from node.config import Config
from node.http import auth
from node.http.errors import HttpError, stopping, unauthorized
from node.http.params import takes_params
from node.store import AsyncStore, StoreClosing
from node.text import NotUtf8, file_text
from sync.repo.config import FULL_ACCESS, Access, parse_tokens
from sync.repo.connection import RepoConnection
from sync.repo.host import CLOSE_GOING_AWAY, Edit, Outcome
from sync.repo.messages import SOCKET_PATH, encode_ephemeral

log = structlog.get_logger(__name__)

#: Events read per page while following the log for changed sessions.
FOLLOW_PAGE = 1000


def setup(app: web.Application, config: Config, astore: AsyncStore,
          tokens: IssuedTokens | None = None) -> RepoHub:
    """Serve ``/automerge`` on ``app``; the hub (and ``tokens``, which it follows)
    starts and stops with the app."""
    hub = RepoHub(config, astore, tokens)
    app.router.add_get(SOCKET_PATH, hub.handle)
    app.on_startup.append(hub.start)
    app.on_shutdown.append(hub.shutdown)
    return hub


class RepoHub:
    """Every automerge-repo connection of a node, and the log follower feeding them."""

    def __init__(self, config: Config, astore: AsyncStore,
                 tokens: IssuedTokens | None = None) -> None:
        self.config = config
        self.tokens = tokens
        self.limits = config.automerge.limits
        self.astore = astore
        self.peer_id = f"clawsync-{astore.node_id}"
        self.connections: set[ClientConnection] = set()
        self._watchers: dict[bytes, set[ClientConnection]] = {}
        self._library: StoreLibrary | None = None
        self.trials: Trials | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.counts = Counts()

    def collector(self) -> RepoCollector:
        """Its Prometheus families, read when scraped."""
        return RepoCollector(self.counts, lambda: len(self.connections),
                             lambda: len(self.astore.documents))

    async def start(self, _app: web.Application | None = None) -> None:
        store = await self.astore.write(lambda store: store)
        self._library = StoreLibrary(store, self.astore.documents)
        self.trials = Trials(self.limits, self.astore.documents.actor)
        if self.tokens is not None:
            self.tokens.on_revoked(self._revoked)
            await self.tokens.start()
        self._tasks = [asyncio.create_task(self._follow(), name="automerge-follow"),
                       asyncio.create_task(self._sweep(), name="automerge-sweep")]

    async def shutdown(self, _app: web.Application | None = None) -> None:
        """Close every client (1001, going away) and stop following the log."""
        self._closing = True
        if self.tokens is not None:
            await self.tokens.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Workers stop at once too: a client's changes being tried end its connection.
        stopping = [] if self.trials is None else [self.trials.stop()]
        await asyncio.gather(*stopping, *(conn.close(CLOSE_GOING_AWAY, "the node is stopping")
                                          for conn in list(self.connections)))

    # -- connections ---------------------------------------------------------------

    def access(self, request: web.Request) -> tuple[Access, str | None] | str:
        """What the request's token opens, with the id of the issued token it is (if
        one); else why it opens nothing."""
        token = request.query.get("token") or auth.bearer(request)
        fault = token_fault(token)
        if fault is not None:
            return fault
        issued = self.tokens.find(token) if self.tokens is not None and token else None
        if issued is not None:
            assert self.tokens is not None
            if self.tokens.book.is_revoked(issued.token_id):
                return self.tokens.refusal(issued.token_id)
            return Access(issued.sessions, issued.read_only), issued.token_id
        tokens = self.config.automerge.tokens
        if self.config.token is None and not tokens:
            return FULL_ACCESS, None
        found: Access | None = None
        if self.config.token is not None and auth.matches(token, self.config.token):
            found = FULL_ACCESS
        for candidate, access in tokens.items():  # every one compared: constant time
            if auth.matches(token, candidate):
                found = access
        if found is None:
            return ("a valid token is required: ?token=<token> or "
                    "'Authorization: Bearer <token>'")
        return found, None

    @takes_params("token")
    async def handle(self, request: web.Request) -> web.StreamResponse:
        granted = self.access(request)
        if isinstance(granted, str):
            self.counts.refused(UNAUTHORIZED)
            raise unauthorized(granted)
        access, token_id = granted
        if self._closing or self._library is None:
            self.counts.refused(CLOSE_GOING_AWAY)
            raise stopping()
        ws = web.WebSocketResponse(max_msg_size=self.limits.frame_bytes_max,
                                   heartbeat=self.limits.ping_interval_s, compress=False)
        if not ws.can_prepare(request).ok:  # a browser or curl: say what goes here
            raise HttpError(400, "websocket_required", "this is the Automerge sync "
                            "websocket: connect an automerge-repo client to "
                            "ws://HOST:PORT/automerge (see the README's Automerge clients)")
        try:
            await ws.prepare(request)
        except ConnectionError:
            # The client left before the handshake's answer went: its fault, not ours,
            # and no one reads this answer (as a body cut short, node.http.wire).
            raise HttpError(400, "connection_closed",
                            "the connection closed during the websocket handshake") from None
        machine = RepoConnection(peer_id=self.peer_id, storage_id=self.peer_id,
                                 access=access, limits=self.limits, now=time.monotonic(),
                                 trials=True)
        conn = ClientConnection(self, ws, machine, self._library, self.limits, self.counts)
        conn.token_id = token_id
        self.connections.add(conn)
        if token_id is not None and self.tokens is not None \
                and self.tokens.book.is_revoked(token_id):  # revoked while we prepared
            conn.revoke(self.tokens.refusal(token_id))
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)
            self.watch(conn, {})
        return ws

    def _revoked(self, token_id: str) -> None:
        """Disconnect every client connected with the token ``token_id``."""
        assert self.tokens is not None  # only its listener calls this
        why = self.tokens.refusal(token_id)
        for conn in list(self.connections):
            if conn.token_id == token_id:
                conn.revoke(why)

    def watch(self, conn: ClientConnection, docs: dict[bytes, bool]) -> None:
        """Record the documents ``conn`` now watches (replacing what it watched)."""
        for doc_id in conn.watching - docs.keys():
            watchers = self._watchers.get(doc_id)
            if watchers is not None:
                watchers.discard(conn)
                if not watchers:
                    del self._watchers[doc_id]
        for doc_id in docs.keys() - conn.watching:
            self._watchers.setdefault(doc_id, set()).add(conn)
        conn.watching = dict(docs)

    def changed(self, doc_ids: Iterable[bytes], besides: ClientConnection | None = None) -> None:
        """The node's copies of ``doc_ids`` changed: refresh whoever watches them."""
        for doc_id in doc_ids:
            for conn in self._watchers.get(doc_id, ()):
                if conn is not besides:
                    conn.mark(doc_id)

    def forward(self, sender: ClientConnection, outcome: Outcome) -> None:
        """Pass ephemeral messages on to the other clients that have the document open."""
        for doc_id, message in outcome.ephemeral:
            for conn in self._watchers.get(doc_id, ()):
                client = conn.machine.client
                if conn is not sender and client is not None and conn.watching.get(doc_id):
                    conn.post_ephemeral(encode_ephemeral(message, client))

    async def append_edit(self, edit: Edit) -> None:
        """Append a client's edit; then let its document follow the log again."""
        library = self._library
        assert library is not None
        try:
            await self.astore.append(edit.drafts)
        except (StoreClosing, CrdtError) as error:
            log.warning("automerge client edit not stored", session=edit.session_key,
                        error=str(error))
        finally:
            with contextlib.suppress(StoreClosing):
                await self.astore.write(lambda _store: library.release(edit.session_key))
                self.changed([await self.astore.read(
                    lambda _store: library.document_id(edit.session_key))])

    # -- following the log ---------------------------------------------------------

    async def _follow(self) -> None:
        """Mark the documents of sessions with new events for refresh, and tell the
        clients of documents a forget replaced that they are gone."""
        cursor = self.astore.head
        with contextlib.suppress(StoreClosing):
            await self._drop_replaced()
        while not self.astore.released:
            try:
                await self.astore.wait_for_head(cursor, None, follower=True)  # till the site stops
                if not self._watchers:  # nobody to tell: skip what committed meanwhile
                    cursor = self.astore.head
                    continue
                events = await self.astore.events_after(cursor, FOLLOW_PAGE)
                if events:
                    await self._changed_sessions({s.event.session_key for s in events}, {
                        s.event.session_key for s in events if s.event.kind == forget.KIND})
                    cursor = events[-1].position
            except StoreClosing:
                return
            except Exception:
                # Without this task no client would hear of new events: log and go on.
                log.exception("following the log for automerge clients failed")
                await asyncio.sleep(self.limits.follow_retry_s)

    async def _changed_sessions(self, sessions: set[str], forgotten: set[str]) -> None:
        """Refresh the clients of ``sessions``; those of documents that forgets of
        ``forgotten`` replaced (``StoreLibrary.replaced``) hear doc-unavailable."""
        library = self._library
        assert library is not None
        if forgotten:
            self.changed(await self.astore.write(lambda _store: library.take_retired(forgotten)))
        self.changed(await self.astore.read(lambda _store: {
            library.document_id(session_key) for session_key in sessions}))

    async def _drop_replaced(self) -> None:
        """At start: delete the documents of sessions forgotten while their document was
        being written or the node stopped before it could (``_follow`` does it live)."""
        after: str | None = ""
        while after is not None:
            after, dropped = await self.astore.write(functools.partial(
                _drop_all_replaced, documents=self.astore.documents, after=after))
            if dropped:
                log.info("automerge documents replaced after a forget", sessions=dropped)

    async def _sweep(self) -> None:
        """Let documents nobody used for ``documents_idle_s`` leave memory."""
        idle_s = self.limits.documents_idle_s
        while True:
            await asyncio.sleep(min(self.limits.sweep_interval_s, idle_s))
            try:
                dropped = await self.astore.write(
                    lambda _store: self.astore.documents.drop_idle(idle_s))
            except StoreClosing:
                return
            except Exception:
                log.exception("dropping idle automerge documents failed")
                continue
            if dropped:
                log.debug("automerge documents left memory", count=dropped)


def _drop_all_replaced(_store: object, documents: Documents,
                       after: str) -> tuple[str | None, int]:
    """One page of the sweep at start: the sessions with a stored document after
    ``after``; the last of them (None at the end) and how many were dropped."""
    keys = documents.stored_sessions(after, FOLLOW_PAGE)
    return (keys[-1] if keys else None), documents.drop_all_replaced(keys)


def token_fault(token: str) -> str | None:
    """Why a presented token is none a node takes (the node's own, a file's, an issued
    one: each is at most ``TOKEN_CHARS_MAX`` characters, none with a control character),
    without showing it; None for any other, matched or not. Said before any comparison.

    >>> token_fault("app-token-1"), token_fault("x" * 2000)
    (None, 'the token is longer than 1024 characters (TOKEN_CHARS_MAX): no token is')
    """
    if len(token) > TOKEN_CHARS_MAX:
        return (f"the token is longer than {TOKEN_CHARS_MAX} characters (TOKEN_CHARS_MAX): "
                "no token is")
    if holds_control(token):
        return "the token holds a control character: no token does"
    return None


def load_tokens(path: Path) -> dict[str, Access]:
    """The token table in a JSON file (``serve --automerge-tokens``); ``ValueError``
    saying what is wrong with it, naming a token by its place, never showing it.
    ``HIDDEN``, --print-config's placeholder for a secret, is refused as a token: it is
    no secret (refused for being short too, but said so). A token is held to what the
    node's own is (``node.checks.check_token``): at most ``TOKEN_CHARS_MAX`` characters,
    no control character."""
    try:
        # A byte order mark, which editors write (Windows Notepad), is read past, as
        # serve --config's TOML reads past one.
        raw = json.loads(file_text(path.read_bytes()))
    except NotUtf8 as error:
        raise ValueError(f"cannot read {path}: it is {error}") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    if isinstance(raw, dict) and HIDDEN in raw:
        raise ValueError(f"{path}: a token is {HIDDEN!r}, the placeholder --print-config "
                         "shows for a secret it hides, not a secret: give the real one")
    try:
        table = parse_tokens(raw)
    except ValueError as error:  # named by the file, as check_token's below are
        raise ValueError(f"{path}: {error}") from None
    for number, token in enumerate(table, 1):
        # A JSON string holds a control character only as written: no line end to guess.
        check_token(token, f"{path}: token {number} of the table", from_lines=False)
    return table
