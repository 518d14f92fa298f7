"""The node the ``clawsync openclaw`` commands write to or read from: over HTTP
(``HttpSink``) or as a data folder opened here (``EmbeddedSink``), and ``with_sink``, which
runs a command's work against the one chosen and turns what fails into the CLI's exits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from crdt.errors import CrdtError, FolderInUse, InvalidInput, LogFormatError
from crdt.events import Event, parse_event
from crdt.log.cursors import read_cursor, save_cursor
from crdt.log.store import EventStore
from crdt.storage.disk import holds_storage
from crdt.storage.lock import Holder
from node.cli.append import batches
from node.cli.common import (
    InputError,
    NodeError,
    TokenRefusedExit,
    command_client,
    failure,
    field,
    next_position,
    note,
    rows,
    store_refusal,
    written,
)
from node.cli.options import client_limits, settings
from node.client.api import Client, ClientError
from node.config import Settings, host_name, software_version
from node.data_format import (
    FolderFormatError,
    check_format,
    log_refusal,
    mark_format,
    read_log_first,
)
from node.device import DeviceKeyError, folder_signer
from node.limits import ClientLimits
from node.openclaw.bridge import Sink
from node.openclaw.cursor_room import CursorFull
from node.text import counted

T = TypeVar("T")


class HttpSink:
    """A node over HTTP (``node.client``). A cursor is saved only if the node still holds
    it as this sink last read or saved it (by its tag), or, read as absent, still holds
    none: one changed there meanwhile (a reset, another bridge) is refused with a 412
    (``node.openclaw.held``), not overwritten."""

    def __init__(self, client: Client) -> None:
        self.client = client
        # Cursor name -> its tag as last read or saved (none: saved without a condition,
        # as to a node older than tags).
        self._tags: dict[str, str] = {}
        # Cursors read as absent, not saved since: saved only if still absent (a node
        # older than tags ignores the header, and saves whatever is there).
        self._absent: set[str] = set()

    async def cursor(self, name: str) -> dict[str, int] | None:
        tagged = await self.client.tagged_cursor(name)
        cursor, tag = (None, None) if tagged is None else tagged
        self._held(name, tag)
        if tagged is None:
            self._absent.add(name)
        return cursor

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        self._held(name, await self.client.save_cursor(
            name, cursor, if_match=self._tags.get(name), if_absent=name in self._absent))

    def keep(self, names: Collection[str]) -> None:
        """Forget the tags of the cursors not in ``names``: a ``watch`` that outlives
        many agents holds those of the agents there now only. A cursor forgotten is read
        again (its tag with it) before its next save (``node.openclaw.held``)."""
        self._tags = {name: tag for name, tag in self._tags.items() if name in names}
        self._absent &= set(names)

    def _held(self, name: str, tag: str | None) -> None:
        self._absent.discard(name)
        if tag is None:
            self._tags.pop(name, None)
        else:
            self._tags[name] = tag

    async def events(self, session_key: str) -> tuple[list[Event], int]:
        """The session's events, but for forgotten ones, which are only counted: their
        content is gone, so they cannot be rebuilt (nor hold an OpenClaw record)."""
        found: list[Event] = []
        forgotten = 0
        after = 0
        while True:
            page = await self.client.events(session_key, after=after)
            for item in rows(page, "events"):
                if item.get("withheld"):
                    # A membership record shown without its address (``withheld``): its
                    # id is the stored record's, which this JSON does not hash to; and no
                    # record of this node's own is an OpenClaw record to export.
                    continue
                if item.get("forgotten_by") is None:
                    found.append(_sealed(item))
                else:
                    forgotten += 1
            if not page.get("more"):
                return found, forgotten
            # A "next" that is no position, or does not move on, is refused: one that
            # went back and forth (5, 6, 5...) was followed forever, gathering events.
            after = next_position(page.get("next"), after)

    async def append(self, events: list[Event]) -> int:
        created = 0
        bodies = [event.to_json() for event in events]
        for _numbers, key, batch in batches(bodies, self.client.limits):
            answer = await self.client.append(key, batch)
            with written(f"the node stored {counted(len(batch), 'event')} of session {key!r}"):
                created += field(answer, "created", int)
        return created


class EmbeddedSink:
    """A node's data folder, opened here (the node must not be running)."""

    def __init__(self, store: EventStore, limits: ClientLimits = ClientLimits()) -> None:
        self.store, self.limits = store, limits

    async def cursor(self, name: str) -> dict[str, int] | None:
        return read_cursor(self.store, name)

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        save_cursor(self.store, name, cursor)

    def keep(self, names: Collection[str]) -> None:
        pass  # nothing is held of a cursor here: each read and save is the store's

    async def events(self, session_key: str) -> tuple[list[Event], int]:
        events = [stored.event for stored in self.store.get_events(session_key)]
        held = [event for event in events if event.forgotten_by is None]
        return held, len(events) - len(held)

    async def append(self, events: list[Event]) -> int:
        # Ctrl-C only cancels the task that asyncio.run runs, at its next await: without
        # one here an embedded import, which never waits, would ignore Ctrl-C to its end.
        await asyncio.sleep(0)
        created = 0
        for start in range(0, len(events), self.limits.import_batch_events_max):
            batch = events[start:start + self.limits.import_batch_events_max]
            created += sum(1 for result in self.store.append_batch(batch) if result.created)
        return created


def _sealed(item: dict[str, Any]) -> Event:
    """An event as the node sent it (its id checked), its own records too."""
    event = parse_event(item, records_ok=True)
    if not isinstance(event, Event):
        raise ClientError("the node sent an event without its timestamp")
    return event


def with_sink(ctx: click.Context, data_dir: Path | None,
               work: Callable[[Sink], Coroutine[Any, Any, T]], *,
               reach_first: bool = False, reads_only: bool = False) -> T:
    """Run ``work`` against the node (HTTP) or the data folder (embedded); with
    ``reach_first``, ask the node for its status before (an address or token that is
    wrong is an error even when ``work`` has nothing to send); ``reads_only``: a folder
    that holds no node's data is refused, not made one (it has nothing to read). With a
    data folder no node is contacted: the group's --node and --token are not looked at."""

    async def over_http(options: Settings) -> T:
        async with command_client(options) as client:
            if reach_first:
                await client.node()
            return await work(HttpSink(client))

    try:
        if data_dir is None:
            return asyncio.run(over_http(settings(ctx)))
        # A newer node's folder is not read; first, as ``serve`` checks it: a folder
        # this user may not enter is said here ("cannot read ... Permission denied").
        check_format(data_dir, software_version())
        if not holds_storage(data_dir):  # a mistyped path must not pass unseen
            if reads_only:
                raise click.UsageError(f"--data-dir {data_dir} holds no node's data")
            note(f"{data_dir} holds no node's data yet: a new node's data folder is made there")
        try:  # read before it is opened to write: a log refused is left byte for byte
            read_log_first(data_dir)
        except LogFormatError as error:
            raise NodeError(str(log_refusal(error, data_dir, software_version()))) from None
        signer = folder_signer(data_dir, host_name())  # the node's, if it is a node's
        # No node to stop: a start refused the folder meanwhile says what this is.
        command = ctx.command.name or "command"
        way = "stop that watch first (its systemd unit too, if it runs as one)" \
            if command == "watch" else f"let that {command} end first"
        with EventStore.open(data_dir, signer=signer, written_by=software_version(),
                             holder=Holder(ctx.command_path, way)) as store:
            later = mark_format(data_dir, software_version()).later
            if later is not None:
                note(later)
            return asyncio.run(work(EmbeddedSink(store, client_limits(ctx))))
    except ClientError as error:
        # The node's refusal is set right, not waited out: its own exit code. A proxy's
        # login in front of it may pass (an expired session of its own): 1, restarted.
        if error.status in (401, 403) and not error.in_between:
            raise TokenRefusedExit(str(error)) from None
        raise failure(error) from None
    except CursorFull as error:  # an agent with more sessions than its cursor holds: 1
        raise NodeError(str(error)) from None
    except InvalidInput as error:  # refused an event: exit as the node's refusal would
        if data_dir is None:
            raise NodeError(str(error)) from None
        raise store_refusal(error, data_dir) from None
    except FolderFormatError as error:  # as ``serve`` refuses to start on it: 1
        raise NodeError(str(error)) from None
    except LogFormatError as error:  # refused only by the open (a WAL without its index)
        raise NodeError(str(log_refusal(error, data_dir, software_version(),
                                        opened=True))) from None
    except DeviceKeyError as error:
        # A folder whose key cannot be used (damaged, open to others, not a file) is
        # input this command cannot use, as for ``clawsync device --data-dir``: exit 2,
        # in the same words (they name the file, never what it holds).
        raise InputError(str(error)) from None
    except FolderInUse as error:  # its words name the folder already
        raise NodeError(str(error)) from None
    except CrdtError as error:
        raise NodeError(str(error) if data_dir is None else f"{data_dir}: {error}") from None
