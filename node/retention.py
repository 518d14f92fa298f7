"""Retention as a background task: every ``RETENTION_INTERVAL_S`` (and once at start),
forget the sessions that ``Config.retain_days`` says are too old (``sync.retention``
decides; this module reads the sessions, the clock, and appends the records).

The records replicate like any forget. Every node that has the same rules writes the
same record for the same session, so it does not matter which node's check comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

import structlog
from aiohttp import web

from crdt.errors import NotFound
from crdt.events import Event
from crdt.log.store import EventStore
from node.config import Config
from node.store import AsyncStore, StoreClosing
from sync.retention import Rule, days_for, due

log = structlog.get_logger(__name__)

#: Seconds between retention checks. Retention counts in days: an hour late is nothing,
#: and a check walks every session's key (the keys alone, an index scan), then reads the
#: header of each session a rule matches (a few milliseconds per thousand sessions).
RETENTION_INTERVAL_S = 3600.0
#: Session keys read per page.
PAGE = 1000


def setup(app: web.Application, config: Config, astore: AsyncStore) -> None:
    """Run the retention task on ``app`` if any rule is set (retention is off by default)."""
    if not config.retain_days:
        return
    tasks: list[asyncio.Task[None]] = []

    async def start(_app: web.Application) -> None:
        tasks.append(asyncio.create_task(run(astore, config.retain_days), name="retention"))

    async def stop(_app: web.Application) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.on_startup.append(start)
    app.on_shutdown.append(stop)


async def run(astore: AsyncStore, rules: tuple[Rule, ...],
              interval_s: float = RETENTION_INTERVAL_S) -> None:
    """Check now, then every ``interval_s``, until the store closes."""
    while True:
        try:
            await check(astore, rules, int(time.time() * 1000))
        except StoreClosing:
            return
        except Exception:  # a bug: keep the node up and try again next time
            log.exception("retention check failed")
        await asyncio.sleep(interval_s)


async def check(astore: AsyncStore, rules: tuple[Rule, ...], now_ms: int) -> int:
    """Forget every session too old at ``now_ms``; how many were forgotten.

    The store keeps no index by last activity, so the walk covers every session; but it
    reads keys alone (``sessions_by_key``) and the header only of a session some rule
    matches: one no rule keeps for a while is kept forever, whatever its header says."""
    after, forgotten = "", 0
    while page := await astore.read(functools.partial(_keys, after=after)):
        after = page[-1]
        keys = [key for key in page if days_for(key, rules) is not None]
        records = await astore.read(functools.partial(_due, keys=keys, rules=rules,
                                                      now_ms=now_ms)) if keys else []
        for record in records:
            # One forget per commit: erasing a session holds the writer for as long as
            # its events take to rewrite, and other writers take turns in between.
            # Logged by the store as every forget it takes in is (``forgotten``, with
            # ``reason`` and ``by`` "retention"): the line every node writes for it,
            # this one and those it reaches.
            [appended] = await astore.append([record])
            if appended.created:
                forgotten += 1
    return forgotten


def _keys(store: EventStore, after: str) -> list[str]:
    return store.sessions_by_key(after, PAGE)


def _due(store: EventStore, keys: list[str], rules: tuple[Rule, ...],
         now_ms: int) -> list[Event]:
    """The retention records due for ``keys`` that this node does not hold yet."""
    records = []
    for session_key in keys:
        try:
            last = store.log.session(session_key).header.last
        except NotFound:
            continue
        record = due(session_key, last, now_ms, rules)
        if record is not None and not store.log.holds(record.id):
            records.append(record)
    return records
