"""The Automerge app tokens issued by the cluster's devices (``crdt.tokens``), kept up to
date from the log: the records in ``DEVICES_SESSION`` are read at start and followed as
they commit, whether written here (``clawsync tokens create``) or by replication. A
revocation is heard by every listener (the hub closes the clients that use the token)
as soon as it commits here; so is the removal of the device that issued a token, once
``remove_devices`` is told of it (``node.server.tokens`` follows ``node.devices``).

Only hashes live here: a presented token is hashed and compared with every issued one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

import structlog

from crdt.errors import NotFound
from crdt.membership import DEVICES_SESSION, Bound
from crdt.tokens import Book, Issued
from node.store import AsyncStore, Commit, StoreClosing

log = structlog.get_logger(__name__)

#: Records read per page while catching up.
PAGE = 500
#: Pause before following the log again after an unexpected failure.
RETRY_S = 1.0

#: What a client of a refused token is told (``IssuedTokens.refusal``).
REVOKED = "this token was revoked"
ISSUER_REMOVED = "the device that issued this token was removed"

RevokedListener = Callable[[str], None]


class IssuedTokens:
    """The book of issued tokens on a running node."""

    def __init__(self, astore: AsyncStore, bound: Bound | None = None) -> None:
        self.astore = astore
        self.book = Book(bound=bound)
        self._position = 0  # the last record of DEVICES_SESSION taken in
        self._lock = asyncio.Lock()
        self._listeners: list[RevokedListener] = []
        self._task: asyncio.Task[None] | None = None
        self._due = asyncio.Event()  # set by a commit that may hold token records

    def on_revoked(self, listener: RevokedListener) -> None:
        """Call ``listener(token_id)`` when a revocation is first taken in."""
        self._listeners.append(listener)

    def refusal(self, token_id: str) -> str:
        """Why a token no node takes any more is refused, for its client: revoked, or
        its issuing device removed (which revokes its tokens too)."""
        if self.book.state(token_id) == "issuer removed":
            return ISSUER_REMOVED
        return REVOKED

    def find(self, secret: str) -> Issued | None:
        """The issued token (valid or revoked) whose secret is ``secret``."""
        return self.book.find(secret)

    async def start(self) -> None:
        self.astore.add_commit_listener(self._committed)  # first: no commit slips by
        await self.catch_up()
        self._task = asyncio.create_task(self._follow(), name="automerge-tokens")

    async def stop(self) -> None:
        self.astore.remove_commit_listener(self._committed)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def catch_up(self) -> None:
        """Take in every record committed so far (a caller that just appended one
        finds it in effect when this returns)."""
        async with self._lock:
            while True:
                try:
                    page = await self.astore.get_events_since(DEVICES_SESSION,
                                                              self._position, PAGE)
                except NotFound:  # no record yet
                    return
                if not page:
                    return
                for stored in page:
                    token_id = self.book.take(stored.event, stored.origin)
                    if token_id is not None:
                        self._revoked(token_id)
                self._position = page[-1].position
                # Records set aside for an origin not bound yet: its device_key may be
                # in this page, or have come since.
                self.refresh()

    def refresh(self) -> None:
        """Origins were bound to devices: take in the records kept aside for that."""
        for token_id in self.book.refresh():
            self._revoked(token_id)

    def remove_devices(self, devices: Iterable[str]) -> None:
        """These devices are removed: the tokens they issued are revoked (listeners hear
        of each once)."""
        for token_id in self.book.remove_devices(devices):
            self._revoked(token_id, "its issuing device was removed")

    def _revoked(self, token_id: str, why: str = "revoked") -> None:
        # The records read at start were logged when they came: only news is info.
        (log.info if self._task is not None else log.debug)(
            "automerge token revoked", token_id=token_id, why=why)
        for listener in list(self._listeners):
            try:
                listener(token_id)
            except Exception:
                log.exception("a listener of token revocations failed")

    def _committed(self, commit: Commit) -> None:
        if commit.touches(DEVICES_SESSION):
            self._due.set()

    async def _follow(self) -> None:
        while not self.astore.released:
            await self._due.wait()
            self._due.clear()
            try:
                await self.catch_up()
            except StoreClosing:
                return
            except Exception:
                # Without this task revocations would not reach this node's clients.
                log.exception("following the log for token records failed")
                self._due.set()
                await asyncio.sleep(RETRY_S)
