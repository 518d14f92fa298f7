"""The client API: an aiohttp application over an ``AsyncStore``.

Routes (session keys are percent-encoded in paths: ``a%2Fb`` is the key ``a/b``):

    POST /v1/sessions/{key}/events     append one event or a list of them
    GET  /v1/sessions/{key}/events     a session's events after a position (?after=&limit=)
    GET  /v1/sessions/{key}            the session's projection, plus its automerge_url
                                       (in the X-Clawsync-Automerge-Url header too,
                                       ``node.headers``) and forgotten
    GET  /v1/sessions/{key}/automerge  the session's saved Automerge document
    DELETE /v1/sessions/{key}          forget the session; POST .../forget some events
                                       (``node.server.forget``)
    GET  /v1/sessions                  sessions in creation order (?after=&limit=, and
                                       ?prefix= to filter by key, ?detail=1 for summaries,
                                       ?include_cluster=1 to list the cluster's own
                                       sessions too: ``node.server.sessions``)
    GET  /v1/events                    every event after a position; ?wait= long-polls,
                                       Accept: text/event-stream streams live
    GET  /v1/node                      this node: ids, name, head, counts (sessions
                                       listed, sessions_live, cluster_sessions), data
                                       folder bytes
    GET|PUT /v1/cursors/{name}         a bridge's named cursor (``node.server.cursors``)
    GET|POST /v1/devices, DELETE /v1/devices/{id}   the cluster's devices
                                       (``node.server.devices``)
    GET|POST /v1/tokens, DELETE /v1/tokens/{id}  Automerge app tokens issued by a device
                                       (``node.server.tokens``)
    GET  /                             the web console (``node.server.console``)
    GET  /healthz                      liveness, node id and head (never needs the token)
    GET  /metrics                      Prometheus metrics

With ``Config.token`` set, every /v1 route and /metrics needs ``Authorization: Bearer``;
the console's files do not (they hold no data).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import hdrs, web

from crdt import codec
from crdt.automerge.document import automerge_url
from crdt.errors import InvalidInput, LimitExceeded
from crdt.events import parse_event
from crdt.keys import check_session_key
from crdt.log.forget import UNFORGETTABLE
from crdt.log.projection import Projection
from crdt.log.records import StoredEvent
from crdt.log.store import EventStore
from crdt.storage.backends import backend_of
from node import retention
from node.automerge import hub as repo_ws
from node.automerge.tokens import IssuedTokens
from node.config import Config, software_version
from node.device import DeviceKey
from node.folder import FolderSize
from node.headers import AUTOMERGE_URL_HEADER, TOKEN_UNUSED_HEADER
from node.http import auth
from node.http.errors import HttpError, bad_parameter, forbidden, stopping, unauthorized
from node.http.metrics import Metrics
from node.http.params import (
    flag_param,
    int_param,
    one_param,
    path_session_key,
    seconds_param,
    takes_params,
)
from node.http.wire import (
    CBOR_TYPE,
    JSON_TYPE,
    answer_middleware,
    body_format,
    decode_body,
    read_body,
    respond,
    to_json_bytes,
    wants_cbor,
)
from node.limits import Limits
from node.peers.api import GOSSIP
from node.server import console, cursors, devices, forget, pages, sessions, streams, tokens
from node.store import AsyncStore
from sync.repo.config import Access

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", AsyncStore)
METRICS = web.AppKey("metrics", Metrics)
STREAMS = web.AppKey("streams", streams.StreamSlots)
FOLDER_SIZE = web.AppKey("folder_size", FolderSize)
DEVICE = web.AppKey("device", DeviceKey)
LIVE_COUNT = web.AppKey("live_count", sessions.LiveCount)

#: Largest position or session index a cursor may name (SQLite's integer range).
CURSOR_MAX = 2**63 - 1
#: How long a position just past the head is given to turn up (``_refuse_past_head``).
AHEAD_GRACE_S = 1.0


def make_app(config: Config, astore: AsyncStore, device: DeviceKey) -> web.Application:
    """The node's client API application; ``astore`` stays owned by the caller."""
    metrics = Metrics()
    # One middleware translates errors, counts answers and (with a token) refuses
    # requests without it: its 401 is translated and counted like any error.
    issued = IssuedTokens(astore, bound=astore.origin_device)
    refusal = None if config.token is None else \
        token_check(config.token, config.automerge.tokens, issued)
    app = web.Application(middlewares=[answer_middleware(metrics.count_answer, refusal)],
                          client_max_size=config.limits.body_bytes_max)
    app[CONFIG] = config
    app[STORE] = astore
    app[METRICS] = metrics
    app[STREAMS] = streams.StreamSlots(config.limits)
    app[FOLDER_SIZE] = FolderSize(config.data_dir, also=None if config.storage is None
                                  or backend_of(config.storage) is not None
                                  else Path(config.storage))
    app[DEVICE] = device
    app[LIVE_COUNT] = sessions.LiveCount()
    astore.add_commit_listener(metrics.observe_commit)

    async def on_shutdown(_app: web.Application) -> None:
        # The followers end (RunningNode.stop ended long polls and live streams already;
        # an app stopped on its own ends them here): each would hold shutdown.
        astore.release_waiters()

    async def on_cleanup(_app: web.Application) -> None:
        astore.remove_commit_listener(metrics.observe_commit)

    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    if config.token is None:
        app.on_response_prepare.append(_token_unused)
    # aiohttp matches {key} against the path with %2F still encoded, so a key holding
    # '/' (sent as %2F) cannot be mistaken for one of the longer routes.
    app.router.add_post("/v1/sessions/{key}/events", appender(astore, metrics, config.limits))
    app.router.add_get("/v1/sessions/{key}/events", get_session_events)
    app.router.add_get("/v1/sessions/{key}/automerge", get_automerge)
    app.router.add_get("/v1/sessions/{key}", get_session)
    forget.setup(app, STORE, config.limits.body_bytes_max, config.limits.read_timeout_s)
    app.router.add_get("/v1/sessions", get_sessions)
    app.router.add_get("/v1/events", get_events)
    app.router.add_get("/v1/node", get_node)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", get_metrics)
    cursors.setup(app, astore, config.limits)
    devices.setup(app, config, astore, device)
    tokens.setup(app, astore, issued, device, config.limits.body_bytes_max,
                 config.limits.read_timeout_s, node_token_required=config.token is not None)
    metrics.registry.register(repo_ws.setup(app, config, astore, issued).collector())
    console.setup(app)
    retention.setup(app, config, astore)
    return app


def token_check(token: str, app_tokens: Mapping[str, Access], issued: IssuedTokens
                ) -> Callable[[web.Request], HttpError | None]:
    """Why a request may not go on, on a node with the client ``token`` (None: it may):
    /v1 and /metrics need it, or for a forget an Automerge token that may write the
    session (``node.server.forget``, ``node.server.tokens``); everything else is open.
    An Automerge token is valid, only not for this: 403, where a wrong token is 401."""

    def refusal(request: web.Request) -> HttpError | None:
        if not _protected(request.path) \
                or auth.matches(auth.bearer(request), token) \
                or forget.app_allowed(request, app_tokens) \
                or tokens.forget_allowed(request, issued):
            return None
        if forget.app_token(request, app_tokens) or tokens.valid(request, issued) is not None:
            return forbidden(APP_TOKEN_REFUSED)
        return unauthorized()

    return refusal


#: What an Automerge token is told where it does not open the route.
APP_TOKEN_REFUSED = ("this is an app token: it opens Automerge documents, and may forget "
                     "the sessions it may write unless it is read-only; the rest of /v1 "
                     "needs the node's own token")


def _protected(path: str) -> bool:
    return path == "/metrics" or path == "/v1" or path.startswith("/v1/")


async def _token_unused(request: web.Request, response: web.StreamResponse) -> None:
    """On a node without ``--token``: a token given where the node's would be asked for
    opens nothing, which its client is told (``TOKEN_UNUSED_HEADER``), not refused."""
    if hdrs.AUTHORIZATION in request.headers and _protected(request.path):
        response.headers[TOKEN_UNUSED_HEADER] = "true"


def _limits(request: web.Request) -> Limits:
    return request.app[CONFIG].limits


def _page_params(request: web.Request) -> tuple[int, int]:
    """``after`` and ``limit`` from the query string, checked."""
    limits = _limits(request)
    after = int_param(request, "after", default=0, low=0, high=CURSOR_MAX)
    limit = int_param(request, "limit", default=limits.page_default, low=1,
                      high=limits.page_max)
    return after, limit


async def _refuse_past_head(request: web.Request, name: str, after: int) -> None:
    """400 for a position this node has not stored that far. Positions are numbered by
    each node: one past its head (another node's, or one from before a restore from a
    backup) would skip, without a word, every event stored until the head reaches it. A
    page read on a reader thread may name a commit the event loop has not heard of yet,
    so such a position is given ``AHEAD_GRACE_S`` to turn up."""
    astore = request.app[STORE]
    if after > astore.head and await astore.wait_for_head(after - 1, AHEAD_GRACE_S) < after:
        if astore.stopping:  # the grace cut short by the stop: ask again after it
            raise stopping()
        raise bad_parameter(name, f"is past this node's newest position ({astore.head}): "
                                  "positions are numbered by each node, and one from "
                                  "another node or from before a restore does not carry over")


def appender(astore: AsyncStore, metrics: Metrics, limits: Limits
             ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``POST /v1/sessions/{key}/events``, with what it uses bound once: it runs for
    every append, and each ``request.app[...]`` is a lookup per request."""
    observe = metrics.append_seconds.observe

    async def post_events(request: web.Request) -> web.Response:
        """Validate every event of the body, then append them all in one commit."""
        key = path_session_key(request)
        if key in UNFORGETTABLE:  # the cluster's own sessions: what a client put there
            # could never be forgotten, and would travel with membership records
            raise InvalidInput("holds the cluster's own records (retired origins, devices "
                               "and tokens); clients cannot write to it", field="session_key")
        body_type = body_format(request)  # before reading: a 415 needs no body
        body = await read_body(request, bytes_max=limits.body_bytes_max,
                               timeout_s=limits.read_timeout_s)
        value = decode_body(body, body_type)
        if isinstance(value, dict) and isinstance(value.get("events"), list) \
                and "kind" not in value:
            raise InvalidInput("is a page of events, as a read answers: post its "
                               "\"events\" list", field="events")
        items = value if isinstance(value, list) else [value]
        if not items:
            raise InvalidInput("must hold at least one event", field="events")
        if len(items) > limits.batch_events_max:
            raise LimitExceeded(f"{len(items)} events in one request; the limit is "
                                f"{limits.batch_events_max}", field="events")
        # All are parsed (and their claimed ids checked) before any is queued: one bad
        # event fails the whole request and nothing is written.
        drafts = [parse_event(item, session_key=key, where=f"events[{i}]")
                  for i, item in enumerate(items)]
        started_s = time.perf_counter()
        appended = await astore.append(drafts)
        observe(time.perf_counter() - started_s)
        events = []
        created = 0
        for result in appended:
            answer = result.stored.to_json()  # a new dict each time: add to it in place
            answer["created"] = result.created
            events.append(answer)
            created += result.created
        return respond(request, {"events": events, "created": created},
                       status=201 if created else 200)

    return post_events


@takes_params("after", "limit")
async def get_session_events(request: web.Request) -> web.Response:
    """A session's events after ``after``, in position order, one page at a time."""
    key = path_session_key(request)
    after, limit = _page_params(request)
    await _refuse_past_head(request, "after", after)
    return await _events_page(request, after, limit,
                              lambda store, cursor, count:
                              store.get_events_since(key, cursor, count))


async def get_session(request: web.Request) -> web.StreamResponse:
    """The projection; as JSON it is encoded and sent a piece at a time (a session of
    large messages would otherwise be held encoded whole, six bytes per character)."""
    key = path_session_key(request)

    def read(store: EventStore) -> tuple[Projection, dict[str, Any]]:
        session, projection = store.read_session(key)
        # The URL is named after the latest forget, if any; ``forgotten`` as a detail
        # row of the list says it (nothing but forget records left).
        return projection, {"automerge_url": automerge_url(key, store.forget_generation(key)),
                            "forgotten": session.forgotten}

    astore = request.app[STORE]
    projection, extra = await astore.read(read)
    # The document's id in a header too, ahead of the body: a client that wants only
    # the id need not read a projection that may be longer than it reads.
    headers = {hdrs.VARY: hdrs.ACCEPT, AUTOMERGE_URL_HEADER: extra["automerge_url"]}
    if wants_cbor(request):  # CBOR does not escape: about the size of the projection
        body = await astore.read(lambda _store: codec.encode({**projection.to_json(), **extra}))
        return web.Response(body=body, content_type=CBOR_TYPE, headers=headers)
    limits = _limits(request)
    response = web.StreamResponse(headers=headers)
    response.content_type = JSON_TYPE
    pieces = pages.projection_json(projection, extra, limits.stream_write_bytes_max)
    try:
        await response.prepare(request)
        for piece in pieces:
            async with asyncio.timeout(limits.stream_send_timeout_s):
                await response.write(piece)
        await response.write_eof()
    except TimeoutError:  # a reader who stopped reading: drop it, and what it left
        if request.transport is not None:
            request.transport.abort()
    except ConnectionError:
        pass  # the client left (before the headers went too: aiohttp ends it quietly)
    return response


async def get_automerge(request: web.Request) -> web.Response:
    key = path_session_key(request)
    document = await request.app[STORE].automerge(key)
    return web.Response(body=document, content_type="application/octet-stream")


@takes_params("after", "limit", "prefix", "detail", "include_cluster")
async def get_sessions(request: web.Request) -> web.Response:
    after, limit = _page_params(request)
    prefix = one_param(request, "prefix")
    if prefix == "":
        prefix = None  # an empty filter matches every key
    elif prefix is not None:
        try:
            check_session_key(prefix, "prefix")
        except LimitExceeded:
            raise  # 413, as for a key too long anywhere
        except InvalidInput as error:  # a query parameter's fault, as the others say
            raise bad_parameter("prefix", error.reason) from None
    detail = flag_param(request, "detail")
    cluster = flag_param(request, "include_cluster")

    def read(store: EventStore) -> dict[str, Any]:
        count = store.stats()["sessions"]
        if after > count:  # as a position past the head: see ``_refuse_past_head``
            raise bad_parameter("after", f"is past this node's last session index ({count}): "
                                         "indexes are numbered by each node, and one from "
                                         "another node or from before a restore does not "
                                         "carry over")
        return sessions.session_page(store, after=after, limit=limit, prefix=prefix,
                                     detail=detail, cluster=cluster)

    return respond(request, await request.app[STORE].read(read))


@takes_params("after", "limit", "wait")
async def get_events(request: web.Request) -> web.StreamResponse:
    """Every event on this node after a position: a page, a long poll or a live stream."""
    limits = _limits(request)
    astore = request.app[STORE]
    if streams.wants_stream(request):
        name, after = streams.resume_position(request, CURSOR_MAX)
        _page_params(request)  # a stream has no pages, but a bad value is still refused
        seconds_param(request, "wait", high_s=limits.poll_wait_max_s)
        await _refuse_past_head(request, name, after)
        return await streams.stream_events(request, astore, after, limits,
                                           request.app[STREAMS])
    after, limit = _page_params(request)
    wait_s = seconds_param(request, "wait", high_s=limits.poll_wait_max_s)
    await _refuse_past_head(request, "after", after)
    if wait_s > 0 and astore.head <= after \
            and await astore.wait_for_head(after, wait_s) <= after and astore.stopping:
        # No news, and no wait left to give: an empty page would have the client ask
        # again at once, over and over, for the whole stop.
        raise stopping()
    return await _events_page(request, after, limit,
                              lambda store, cursor, count: store.events_after(cursor, count))


async def _events_page(request: web.Request, after: int, limit: int,
                       fetch: Callable[[EventStore, int, int], list[StoredEvent]]
                       ) -> web.Response:
    """A page of the events ``fetch`` reads after ``after``: at most ``limit`` of them
    and about ``page_bytes_max`` encoded (``node.server.pages``), with the cursor of the
    next page. Read and encoded on a reader thread, so a page of large events neither
    blocks the event loop nor is held twice in memory."""
    cbor = wants_cbor(request)
    encode: pages.Encode = ((lambda stored: codec.encode(stored.to_json())) if cbor
                            else (lambda stored: to_json_bytes(stored.to_json())))
    bytes_max = _limits(request).page_bytes_max

    def build(store: EventStore) -> bytes:
        page = pages.build(lambda cursor, count: fetch(store, cursor, count), encode,
                           after, limit, bytes_max)
        return pages.cbor_body(page) if cbor else pages.json_body(page)

    body = await request.app[STORE].read(build)
    return web.Response(body=body, content_type=CBOR_TYPE if cbor else JSON_TYPE,
                        headers={hdrs.VARY: hdrs.ACCEPT})


async def healthz(request: web.Request) -> web.Response:
    astore = request.app[STORE]
    return respond(request, {"status": "ok", "node_id": astore.node_id, "head": astore.head})


async def session_counts(request: web.Request) -> tuple[dict[str, int], int, int, int]:
    """The store's counts, the cluster's own sessions it holds, the sessions
    ``GET /v1/sessions`` lists (the others) and how many of those were forgotten whole,
    kept within 0 and the sessions listed (``sessions.LiveCount``): ``GET /v1/node``
    and ``/metrics`` say the same. Reads the header of each cluster session (two at
    most), never a walk of the list."""
    astore = request.app[STORE]
    # The cluster's sessions first: one a commit adds between the two reads is then
    # counted among the others for this answer, and no count goes below zero.
    cluster, stats = await astore.read(
        lambda store: (sessions.cluster_sessions(store), store.stats()))
    listed = stats["sessions"] - cluster
    forgotten = listed - request.app[LIVE_COUNT](listed, stats["sessions_forgotten"])
    return stats, cluster, listed, forgotten


async def get_node(request: web.Request) -> web.Response:
    """This node for people: its ids and name, what it holds, its data folder's size.

    ``sessions`` counts what ``GET /v1/sessions`` lists, and ``sessions_live`` those of
    them with events left (what ``clawsync sessions`` shows: not forgotten whole,
    ``sessions.LiveCount``); the cluster's own sessions, listed only with
    ``include_cluster=1``, are ``cluster_sessions``. The counts are kept as commits go
    (``session_counts``)."""
    astore = request.app[STORE]
    stats, cluster, listed, forgotten = await session_counts(request)
    return respond(request, {
        "node_id": astore.node_id, "device_id": request.app[DEVICE].device_id,
        "name": request.app[devices.DEVICES].name, "head": astore.head,
        "events": stats["events"], "sessions": listed, "sessions_live": listed - forgotten,
        "cluster_sessions": cluster,
        "origins": stats["origins"], "software": software_version(),
        "storage_bytes": await request.app[FOLDER_SIZE].bytes(),
        # Set if this device was removed (``Gossip.own_removal``).
        "removed": request.app[GOSSIP].own_removal() if GOSSIP in request.app else None,
    })


async def get_metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    astore = request.app[STORE]
    stats, _, _, forgotten = await session_counts(request)
    failures = await astore.read(lambda store: store.after_commit_failures)
    await metrics.refresh_storage(astore.head, stats, forgotten, request.app[FOLDER_SIZE],
                                  failures)
    return metrics.response()
