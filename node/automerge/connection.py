"""One automerge-repo client of the hub (``node.automerge.hub``): frames in, calls of its
protocol machine (``sync.repo.connection.RepoConnection``) on the store's writer thread
one at a time, frames out in order through one sender task, with a bounded outbox (a
client that reads too slowly is closed, 1008).

What a connection asks of its hub is the ``Hub`` protocol: the store, the trials of
client changes, and the watch lists by which other clients hear of a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

import aiohttp
import structlog
from aiohttp import web

from node.automerge.library import StoreLibrary
from node.automerge.metrics import Counts
from node.automerge.trials import Trials
from node.store import AsyncStore, StoreClosing
from sync.repo.config import RepoLimits
from sync.repo.connection import RepoConnection
from sync.repo.host import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED,
    Edit,
    Outcome,
    Trial,
)

log = structlog.get_logger(__name__)


class Hub(Protocol):
    """What a connection needs of the hub that accepted it."""

    astore: AsyncStore
    trials: Trials | None

    def watch(self, conn: ClientConnection, docs: dict[bytes, bool]) -> None: ...

    def changed(self, doc_ids: Iterable[bytes],
                besides: ClientConnection | None = None) -> None: ...

    def forward(self, sender: ClientConnection, outcome: Outcome) -> None: ...

    async def append_edit(self, edit: Edit) -> None: ...


class ClientConnection:
    """One client: frames in, machine calls on the writer thread, frames out in order."""

    def __init__(self, hub: Hub, ws: web.WebSocketResponse, machine: RepoConnection,
                 library: StoreLibrary, limits: RepoLimits, counts: Counts | None = None
                 ) -> None:
        self.hub = hub
        self.counts = counts if counts is not None else Counts()  # the hub's, shared
        self.limits = limits
        self.ws = ws
        self.machine = machine
        self.library = library
        self.watching: dict[bytes, bool] = {}
        self._dirty: set[bytes] = set()
        self._dirty_event = asyncio.Event()
        self._outbox: deque[bytes | tuple[int, str]] = deque()
        self._outbox_bytes = 0
        self._outbox_event = asyncio.Event()
        self._turn = asyncio.Lock()  # one machine call at a time, in order
        self._done = asyncio.Event()
        self._refused = False  # counted once, however many closes follow
        #: The issued token (``node.automerge.tokens``) the client connected with.
        self.token_id: str | None = None

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        tasks = [asyncio.create_task(self._refresh_loop()), sender]
        try:
            await self._read_loop()
            if self.machine.closed:  # let the error message and the close go out
                await asyncio.wait([sender], timeout=self.limits.send_timeout_s)
        finally:
            self._done.set()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if not self.ws.closed:
                await self.ws.close()

    def mark(self, doc_id: bytes) -> None:
        self._dirty.add(doc_id)
        self._dirty_event.set()

    def post(self, frame: bytes | tuple[int, str]) -> None:
        if isinstance(frame, bytes):
            if (len(self._outbox) >= self.limits.outbox_frames_max
                    or self._outbox_bytes + len(frame) > self.limits.outbox_bytes_max):
                self._outbox.clear()
                self._outbox_bytes = 0
                frame = (CLOSE_POLICY, "the client reads too slowly")
            else:
                self._outbox_bytes += len(frame)
        if not isinstance(frame, bytes):
            self._count_refusal(frame[0])
        self._outbox.append(frame)
        self._outbox_event.set()

    def post_ephemeral(self, frame: bytes) -> bool:
        """Queue another client's ephemeral message unless this client is behind; True
        if queued."""
        if (len(self._outbox) >= self.limits.ephemeral_outbox_frames_max
                or self._outbox_bytes + len(frame) > self.limits.ephemeral_outbox_bytes_max):
            return False
        self.post(frame)
        return True

    def _count_refusal(self, code: int) -> None:
        if not self._refused:
            self._refused = True
            self.counts.refused(code)

    def revoke(self, why: str) -> None:
        """Its token was revoked (``why``, for the client): tell the client so and
        disconnect it (after the machine call under way, if any)."""
        task = asyncio.create_task(self._call(lambda _now: self.machine.refuse(
            CLOSE_POLICY, why), on_writer=False))
        _REVOKING.add(task)
        task.add_done_callback(_REVOKING.discard)

    async def close(self, code: int, reason: str) -> None:
        self.post((code, reason))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.limits.send_timeout_s):
                await self._done.wait()

    async def _read_loop(self) -> None:
        while not self.ws.closed and not self.machine.closed:
            timeout_s = None
            if (wakeup := self.machine.wakeup_at) is not None:
                timeout_s = max(0.0, wakeup - time.monotonic())
            try:
                async with asyncio.timeout(timeout_s):
                    message = await self.ws.receive()
            except TimeoutError:
                await self._call(lambda now: self.machine.tick(now), on_writer=False)
                continue
            if message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                self.counts.frames_in += 1
            if message.type == aiohttp.WSMsgType.BINARY:
                await self._binary(bytes(message.data))
            elif message.type == aiohttp.WSMsgType.TEXT:
                await self._call(lambda _now: self.machine.refuse(
                    CLOSE_UNSUPPORTED, "text frames are not part of the protocol"),
                    on_writer=False)
            elif message.type == aiohttp.WSMsgType.ERROR:
                # aiohttp's error carries the code it closed with (1009 for a frame over
                # the limit); the socket's close_code may be the client's answer by now.
                sent = getattr(message.data, "code", self.ws.close_code)
                code = CLOSE_TOO_BIG if sent == CLOSE_TOO_BIG else CLOSE_POLICY
                log.warning("automerge client frame refused", peer=self.machine.client,
                            code=code, error=str(message.data))
                self._count_refusal(code)
                return
            else:  # closing or closed
                return

    async def _binary(self, frame: bytes) -> None:
        """A frame from the client; changes it carries are tried in a worker, then
        applied or refused. The next frame waits for that."""
        trial = await self._call(functools.partial(self._receive, frame))
        if trial is not None and self.hub.trials is not None:
            verdict = await self.hub.trials.check(trial)
            refusal = verdict if isinstance(verdict, tuple) else None
            tried = None if isinstance(verdict, tuple) else verdict
            await self._call(lambda _now: self.machine.resume(refusal, self.library, tried))

    async def _refresh_loop(self) -> None:
        while True:
            await self._dirty_event.wait()
            self._dirty_event.clear()
            doc_ids, self._dirty = self._dirty, set()
            await self._call(functools.partial(self._refresh, doc_ids))

    def _receive(self, frame: bytes, now: float) -> Outcome:
        return self.machine.receive(frame, now, self.library)

    def _refresh(self, doc_ids: set[bytes], now: float) -> Outcome:
        return self.machine.refresh(doc_ids, now, self.library)

    async def _call(self, step: Callable[[float], Outcome],
                    on_writer: bool = True) -> Trial | None:
        """Run one machine call (on the writer thread when it may touch documents) and
        act on its outcome, one call at a time; the changes it asks to have tried."""
        async with self._turn:
            if self.machine.closed:
                return None
            try:
                if on_writer:
                    outcome = await self.hub.astore.write(lambda _store: step(time.monotonic()))
                else:
                    outcome = step(time.monotonic())
            except StoreClosing:
                outcome = self.machine.refuse(CLOSE_GOING_AWAY, "the node is stopping")
            except Exception:  # a bug of ours: keep the node up, drop this client
                log.exception("automerge connection failed", peer=self.machine.client)
                outcome = self.machine.refuse(CLOSE_INTERNAL, "the node failed")
            self._act(outcome)
            return outcome.trial

    def _act(self, outcome: Outcome) -> None:
        for note in outcome.notes:
            log.log(_LEVELS.get(note.level, 20), note.event, **note.fields)
        if outcome.watch is not None:
            self.hub.watch(self, outcome.watch)
        for frame in outcome.frames:
            self.post(frame)
        self.hub.changed(outcome.changed, besides=self)
        self.hub.forward(self, outcome)
        for edit in outcome.edits:
            task = asyncio.create_task(self.hub.append_edit(edit))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
        if outcome.close is not None:
            self.post((outcome.close.code, outcome.close.reason))

    async def _send_loop(self) -> None:
        while True:
            await self._outbox_event.wait()
            self._outbox_event.clear()
            while self._outbox:
                item = self._outbox.popleft()
                if isinstance(item, bytes):
                    self._outbox_bytes -= len(item)
                try:
                    async with asyncio.timeout(self.limits.send_timeout_s):
                        if isinstance(item, bytes):
                            await self.ws.send_bytes(item)
                            self.counts.frames_out += 1
                        else:
                            await self.ws.close(code=item[0], message=item[1].encode()[:120])
                            return
                except (ConnectionError, TimeoutError, RuntimeError):
                    await self.ws.close(code=CLOSE_POLICY, message=b"send failed")
                    return


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
#: Edits being appended; kept referenced until done.
_BACKGROUND: set[asyncio.Task[None]] = set()
#: Disconnections of clients whose token was revoked; kept referenced until done.
_REVOKING: set[asyncio.Task[Trial | None]] = set()
