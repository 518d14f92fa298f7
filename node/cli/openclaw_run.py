"""What the ``clawsync openclaw`` commands do once they run (``node.cli.openclaw``
declares them): the state folder checked, and the import, the watch and the export, each
against the node that ``node.cli.openclaw_sink`` opens. Apart from the commands'
declarations, so that their ``--help`` loads none of this (the HTTP client, the event log,
the crypto libraries).
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from crdt.errors import NotFound
from crdt.events import Event
from node.cli.common import CursorChangedTooOftenExit, InputError, NodeError, note, unknown_session
from node.cli.openclaw_sink import HttpSink, with_sink
from node.cli.options import settings
from node.client.api import ClientError
from node.openclaw.bridge import Bridge, Sink
from node.openclaw.export import ExportRefused, Written
from node.openclaw.export import export as export_transcript
from node.openclaw.held import CursorChangedTooOften
from node.openclaw.lock_holders import HeldLock, StateLockUnreadable
from node.openclaw.mapping import EXTRA
from node.openclaw.pace import AHEAD_PLAUSIBLE_MAX_S, days_said
from node.openclaw.records import Transcript, openclaw_ids, transcripts_for
from node.openclaw.session_names import session_key_for
from node.openclaw.source import path_there
from node.openclaw.sqlite import rows_of_session
from node.openclaw.state import (
    DATABASE,
    GatewayLockUnreadable,
    StateFolder,
    StateFolderError,
    check_state_folder,
    running_gateway,
)
from node.openclaw.state_locks import (
    StateLockHeld,
    held_state_lock,
    holding_state_locks,
)
from node.openclaw.tally import PassFull, Tally
from node.text import counted, printable


def _not_writable(filename: str | bytes | None) -> str:
    """What to do about a file or folder of the state folder this user may not write: run
    as OpenClaw's user when it is another user's; when it is this user's own (its mode
    says no, or, for root, whom modes do not stop, it is immutable), make it writable:
    running as another user would not help."""
    advice = "run clawsync as the user OpenClaw runs as"
    if filename is None:
        return advice
    path = Path(os.fsdecode(filename))
    folder = path if path.is_dir() else next(
        (parent for parent in path.parents if parent.is_dir()), None)
    try:
        owner = folder.stat().st_uid if folder is not None else None
    except OSError:
        return advice
    if owner != os.geteuid():
        return advice
    return (f"{folder} is this user's but not writable (its mode, or an immutable flag: "
            "lsattr shows one); make it writable, and export again")


def _state(path: Path, agents: tuple[str, ...], *, present: bool) -> StateFolder:
    """The state folder, checked; ``present``: each ``--agent`` must have its folder
    there already (an import; a watch also follows an agent that comes later)."""
    try:
        state = StateFolder(check_state_folder(path), list(agents) or None)
    except StateFolderError as error:
        raise click.UsageError(str(error)) from None
    missing = [agent for agent in agents if not _is_folder(state.path / "agents" / agent)]
    if missing:
        there = sorted(entry.name for entry in (state.path / "agents").iterdir()
                       if _is_folder(entry))
        said = (f"no agent {', '.join(map(repr, missing))} in {state.path}/agents "
                f"(there: {', '.join(there) or 'none'})")
        if present:
            raise click.UsageError(said)
        note(f"{said}; followed once it appears")
    return state


def _is_folder(path: Path) -> bool:
    """Whether ``path`` is a folder; one that cannot be looked into counts as one: it
    is there, and each pass names it (``path_there``: ``is_dir`` says False for it
    from Python 3.14 on)."""
    try:
        return path_there(path, folder=True)
    except OSError:
        return True


def _changed_too_often(error: CursorChangedTooOften) -> CursorChangedTooOftenExit:
    """What the pass did before it gave up, then why it did (as for ``PassFull``)."""
    note(_summary(error.tally))
    return CursorChangedTooOftenExit(str(error))


def _summary(tally: Tally) -> str:
    # Those still waiting, named in an earlier pass or this one: a summary of a watch that
    # no longer counted them would read as though nothing was held back.
    waits = tally.still_waiting or len(tally.waiting)
    waiting = f", {counted(waits, 'record')} waiting for the node's clock" if waits else ""
    return (f"{counted(tally.records, 'record')} read: "
            f"{counted(tally.created, 'new event')}, "
            f"{tally.events - tally.created} already stored, "
            f"{counted(len(tally.problems), 'record or file', 'records or files')} "
            f"skipped{waiting}")


def run_import(ctx: click.Context, state_dir: Path, agents: tuple[str, ...],
               data_dir: Path | None) -> None:
    """``clawsync openclaw import``."""
    state = _state(state_dir, agents, present=True)

    async def work(sink: Sink) -> Tally:
        try:
            return await Bridge(state, sink, note).run_pass()
        except PassFull as error:  # what the other agents had is imported: said so
            note(_summary(error.tally))
            raise
        except CursorChangedTooOften as error:
            raise _changed_too_often(error) from None
        finally:
            state.close()

    tally = with_sink(ctx, data_dir, work, reach_first=True)
    note(_summary(tally))
    failed = import_failure(tally)
    if failed is not None:
        raise NodeError(failed)


def import_failure(tally: Tally) -> str | None:
    """What an import closes with when it did not import everything: what was skipped
    and what waits, both when both happened."""
    said = []
    if tally.problems:
        problems = len(tally.problems)
        said.append(f"{counted(problems, 'record or file', 'records or files')} "
                    f"{'was' if problems == 1 else 'were'} skipped (named above)")
    if tally.waiting:
        # Not bad input: the same import takes them once the node's clock has caught up.
        waiting = len(tally.waiting)
        said.append(f"{counted(waiting, 'record')} {'is' if waiting == 1 else 'are'} dated "
                    "ahead of the node's clock (named above): "
                    f"{'it' if waiting == 1 else 'they'} and the records after "
                    f"{'it in its session' if waiting == 1 else 'them in their sessions'} "
                    "are not imported yet")
    if not said:
        return None
    advice = ("; import again later, or use `clawsync openclaw watch`, which waits for them"
              if len(tally.waiting) > tally.beyond_waiting else "")
    if tally.beyond_waiting:  # waiting will not bring these in
        beyond = tally.beyond_waiting
        advice += (f"; {counted(beyond, 'record')} {'is' if beyond == 1 else 'are'} dated "
                   f"more than {days_said(AHEAD_PLAUSIBLE_MAX_S)} ahead, which waiting "
                   "will not mend: fix "
                   f"{'its timestamp' if beyond == 1 else 'their timestamps'} or the clock "
                   "(named above), then import again")
    return "; ".join(said) + "; the rest is imported" + advice


def run_watch(ctx: click.Context, state_dir: Path, agents: tuple[str, ...],
              data_dir: Path | None, poll_s: float, retry_max_s: float) -> None:
    """``clawsync openclaw watch``; ``retry_max_s``: the longest wait before trying an
    unreachable node again (the command's help shows it)."""
    state = _state(state_dir, agents, present=False)

    delay_s = poll_s

    def on_pass(tally: Tally) -> None:
        nonlocal delay_s
        delay_s = poll_s  # the node answers again
        # A pass that skipped something, or met a record that waits, counts it too.
        if tally.records or tally.problems or tally.waiting:
            note(_summary(tally))

    async def work(sink: Sink) -> None:
        nonlocal delay_s
        bridge = Bridge(state, sink, note)
        try:
            while True:
                try:
                    await bridge.watch(poll_s, on_pass)
                except PassFull as error:  # as import: what was read, then who is over
                    note(_summary(error.tally))
                    raise
                except CursorChangedTooOften as error:  # not mended by trying again
                    raise _changed_too_often(error) from None
                except ClientError as error:
                    if error.status is not None and error.status < 500:
                        raise
                    # A node that asks for a wait (a 503's Retry-After: restarting, or
                    # its disk busy) is given it, up to the longest wait.
                    wait_s = max(delay_s, min(error.retry_after_s or 0.0, retry_max_s))
                    note(f"{error}; trying again in {wait_s:g} s")
                    await asyncio.sleep(wait_s)
                    delay_s = min(max(delay_s * 2, 1.0), retry_max_s)
        finally:
            state.close()

    note(f"following {state.path} into "
         f"{data_dir if data_dir is not None else settings(ctx).node}")
    # Until Ctrl-C, which ends it by SIGINT as every command (nothing is left half-done: a
    # cursor is saved only after its events are stored).
    with_sink(ctx, data_dir, work)


def refuse_if_openclaw_runs(state: Path, *, own_held: bool = False) -> None:
    """Export into a folder whose gateway runs, or on which an `agent --local` turn runs:
    it would write the session into its store while OpenClaw's import moves the exported
    file there, and may go on from the transcript it holds in memory. A lock that cannot
    be read refuses too: OpenClaw may run, and the person can tell. ``own_held``: within
    ``holding_openclaw_locks``, whose locks are not looked at again."""
    try:
        gateway = running_gateway(state)
    except GatewayLockUnreadable as error:
        raise InputError(
            f"{error}: run clawsync as the user OpenClaw runs as; or, if no gateway runs on "
            "it (openclaw gateway status), remove that lock") from None
    if gateway is not None:
        port = f", port {gateway.port}" if gateway.port is not None else ""
        raise InputError(
            f"an OpenClaw gateway is running on {state} (pid {gateway.pid}{port}): stop it "
            "first (openclaw gateway stop), export, import, then start it again")
    # What the gateway's lock does not show: an `agent --local` turn, a gateway of
    # another pid namespace, a `doctor` at work.
    try:
        held = held_state_lock(state, own_held=own_held)
    except StateLockUnreadable as error:
        if error.denied:  # another user's: OpenClaw's own, if it runs as that user
            raise InputError(f"{error}: run clawsync as the user OpenClaw runs as") from None
        raise _unreadable_lock(error) from None
    if held is not None:
        raise _working_on(state, held)


def _working_on(state: Path, held: HeldLock) -> InputError:
    if held.writer:
        what = "a lock on the folder itself" if held.path == state else held.path
        return InputError(
            f"another `clawsync openclaw export` is writing into {state} ({held.holder()}; "
            f"it holds {what}): let it finish, then export")
    if held.path == state:
        return _folder_held(state, f" ({held.holder()})")
    return InputError(
        f"an OpenClaw process is working on {state} ({held.holder()}; it holds "
        f"{held.path}): let it finish, or stop it (openclaw gateway stop for a gateway), "
        "then export")


def _folder_held(state: Path, holder: str) -> InputError:
    """The lock on the state folder itself, held by a process not known to be an export
    (``holder``: which, for a person, if known): any process may take it, as a wrapper
    running export under ``flock`` on the folder, which would keep out every export."""
    return InputError(
        f"a process holds a lock on the state folder {state} itself{holder}, which export "
        "takes while it writes: nothing was written; let it finish, then export (to run "
        "exports one at a time, lock another file than the state folder: exports keep "
        "each other out on their own)")


def _let_go(state: Path, error: StateLockHeld) -> InputError:
    """A lock that was held when export tried to take it, by a process that ended or let
    go of it before it could be named: nothing was written, and trying again may do.
    Or the lock on the folder itself, whose holder the system does not name (no
    ``/proc/locks``): any process may hold it."""
    if error.folder:
        return _folder_held(state, "")
    return InputError(
        f"an OpenClaw process was working on {state} (it held {error.path} when this "
        "export tried to take it, and has let go since): nothing was written; export again")


def _unreadable_lock(error: StateLockUnreadable) -> InputError:
    """A lock, or its folder, that cannot be looked at or taken: removing it is the way
    out if it is there and no OpenClaw process runs; if it is not there, it is what
    cannot be made (a full or read-only ``/tmp``)."""
    if not os.path.lexists(error.path):
        return InputError(f"{error}: it is not there and cannot be made; make room or "
                          f"let this user write in {error.path.parent}, then export")
    return InputError(
        f"{error}: if no OpenClaw process runs on it (openclaw gateway status; no "
        f"`openclaw agent` running), remove {error.path}")


@contextmanager
def holding_openclaw_locks(state: Path) -> Iterator[None]:
    """Hold OpenClaw's per-machine locks of this user on ``state`` while export writes,
    and look again at everything else that says OpenClaw runs: a look alone holds for
    the moment it is made, and a `doctor --session-sqlite import` or a gateway started
    right after it would work beside the write (the import moving files away as they are
    written). Holding them, such a process waits or gives up. Another export holding
    them, or the lock on the state folder itself that export takes first, refuses this
    one, named as such. If this user's lock folder is not there and cannot be made (a
    read-only or full ``/tmp``), no OpenClaw process of this user can hold a lock there:
    export goes on without them, kept apart from other exports by the folder's lock, and
    says so. If only the folder's lock cannot be taken (a file system without it),
    OpenClaw's still keep out OpenClaw and other exports (still named as such, by
    export's mark on them): it goes on, and says so."""
    try:
        with holding_state_locks(state) as told:
            # The note after the last look: it must not come just before a refusal.
            refuse_if_openclaw_runs(state, own_held=True)
            if told is not None:
                note(f"note: {told}")
            yield
    except StateLockHeld as error:
        if error.held is None:
            raise _let_go(state, error) from None
        raise _working_on(state, error.held) from None
    except StateLockUnreadable as error:
        raise _unreadable_lock(error) from None


def run_export(ctx: click.Context, session: str, state_dir: Path, agents: tuple[str, ...],
               data_dir: Path | None, session_id: str | None) -> None:
    """``clawsync openclaw export``: the state folder checked, the session read from the
    node, its transcript chosen, written under OpenClaw's locks, and what to do next."""
    if len(agents) > 1:
        raise click.UsageError("export writes for one agent: give --agent once")
    try:
        state = check_state_folder(state_dir)
    except StateFolderError as error:
        raise click.UsageError(str(error)) from None
    refuse_if_openclaw_runs(state)
    key, (events, forgotten) = _read_session(ctx, data_dir, session, agents)
    transcript = _chosen_transcript(key, events, forgotten, session_id)
    if agents and agents[0] != transcript.agent_id:
        # Written into another agent's folder, it would come back as that agent's
        # session, a copy of the whole conversation, at the next import.
        raise InputError(
            f"session {key!r} belongs to OpenClaw agent {transcript.agent_id!r}, not "
            f"{agents[0]!r}: export writes a session for its own agent (leave out --agent)")
    updated_ms = max(event.timestamp.ms for event in events
                     if _session_id(event) == transcript.session_id)
    written = _write_transcript(state, transcript, updated_ms)
    what = "already there, unchanged" if written.unchanged else "written"
    click.echo(printable(f"{written.path}: {counted(written.records, 'record')} {what}"))
    _note_what_is_missing(key, forgotten, transcript)
    store = state / "agents" / transcript.agent_id / DATABASE
    try:
        held = rows_of_session(store, transcript.session_id)
    except OSError as error:
        held = 0
        note(f"note: whether OpenClaw's store already holds session "
             f"{transcript.session_id} cannot be told ({store}: {error.strerror or error}); "
             "check what its import would do first: "
             "openclaw doctor --session-sqlite dry-run --json")
    if held:
        note(f"note: OpenClaw's store already holds session {transcript.session_id} "
             f"({held} records); check what its import would do with it first: "
             "openclaw doctor --session-sqlite dry-run --json")
    note("now, with the OpenClaw gateway stopped: openclaw doctor --session-sqlite import")


def _read_session(ctx: click.Context, data_dir: Path | None, session: str,
                  agents: tuple[str, ...]) -> tuple[str, tuple[list[Event], int]]:
    """The session's key as the node holds it, its events and how many were forgotten:
    OpenClaw's key (``agent:<agent>:`` put before ``session``) if the node holds it, or
    else ``session`` as it is (a clawsync key)."""
    prefixed = session if session.startswith("agent:") else session_key_for(
        agents[0] if agents else "main", session)

    async def work(sink: Sink) -> tuple[str, tuple[list[Event], int]]:
        for candidate in dict.fromkeys([prefixed, session]):
            try:
                return candidate, await sink.events(candidate)
            except (NotFound, ClientError) as error:
                if isinstance(error, ClientError) and error.status != 404:
                    raise
        # As every other command's "no such session": the close keys, or how to list them.
        hint = await unknown_session(sink.client, session) \
            if isinstance(sink, HttpSink) else None
        raise NodeError(f"there is no session {session!r}"
                        + (f" nor {prefixed!r}" if prefixed != session else "")
                        + " on the node" + (f"; {hint}" if hint else ""))

    return with_sink(ctx, data_dir, work, reads_only=True)


def _chosen_transcript(key: str, events: list[Event], forgotten: int,
                       session_id: str | None) -> Transcript:
    """The transcript of the OpenClaw session id to export: ``session_id``, or else the
    latest; the others are named in a note."""
    latest = _latest_first(events)
    transcripts = sorted((t for t in transcripts_for(events, reattach=forgotten > 0)
                          if session_id is None or t.session_id == session_id),
                         key=lambda t: latest.index(t.session_id))
    if not transcripts and session_id is not None and any(latest):
        # A session id the person typed that the session does not hold: their input.
        raise InputError(f"session {key!r} holds no OpenClaw session id {session_id!r}: "
                         "its session ids are "
                         + ", ".join(repr(one) for one in latest if one) + " (latest first)")
    if not transcripts:
        raise NodeError(f"session {key!r} holds no OpenClaw records")
    # The older layout names one session id per key: the one OpenClaw goes on with.
    transcript, *others = transcripts
    if others:
        note(f"session {key!r} also holds OpenClaw session ids written before "
             f"{transcript.session_id!r}: "
             + ", ".join(f"--session-id {other.session_id}" for other in others)
             + " exports one of them instead")
    return transcript


def _write_transcript(state: Path, transcript: Transcript, updated_ms: int) -> Written:
    """Write ``transcript`` into its agent's folder while holding OpenClaw's locks; what
    was in the way, or why writing failed, as the exit the person should see."""
    try:
        # Again, and held: it may have started while the node answered.
        with holding_openclaw_locks(state):
            return export_transcript(state, transcript, transcript.agent_id, updated_ms)
    except ExportRefused as error:
        # What the state folder holds is in the way (another transcript, another session
        # id for the key, a file that does not read): as for a running gateway, the
        # person has to change something there first.
        raise InputError(str(error)) from None
    except OSError as error:  # nothing half-done (or both written: its message says so)
        if error.errno in (errno.EACCES, errno.EPERM):
            raise InputError(f"{error}: {_not_writable(error.filename)}") from None
        if error.errno == errno.EROFS:
            raise InputError(f"{error}: the state folder is read-only") from None
        raise NodeError(str(error)) from None  # a full disk, say: trying again may do


def _note_what_is_missing(key: str, forgotten: int, transcript: Transcript) -> None:
    """Say what the written transcript leaves out or joins, rather than export a
    conversation that looks whole."""
    if forgotten or transcript.left_out:
        # A forget takes content out of records.
        note(f"note: {forgotten} event(s) of {key!r} were forgotten: the records they "
             "held are left out, or written without the forgotten parts"
             + (f"; {transcript.left_out} event(s) are left out with the record whose "
                "main event was forgotten" if transcript.left_out else "")
             + (f"; {transcript.reattached} record(s) whose parent is left out follow "
                "the record before the first of them" if transcript.reattached else ""))
    if transcript.headers_left_out:
        note(f"note: OpenClaw session id {transcript.session_id!r} of {key!r} was begun "
             f"{transcript.headers_left_out + 1} times separately (on several devices): "
             "written with the first beginning's header only, as OpenClaw's import takes "
             "one; every turn is there, each beginning's as a branch of its own, and "
             "OpenClaw goes on from the latest record")


def _session_id(event: Event) -> str | None:
    """The OpenClaw session id of ``event`` as its transcript is grouped
    (``openclaw_ids``): None if it names none as text."""
    ids = openclaw_ids(event.payload.get(EXTRA))
    return None if ids is None else ids[1]


def _latest_first(events: list[Event]) -> list[str | None]:
    """The OpenClaw session ids of a session's events, the one with the latest event
    first (after ``/new``, a reset or a rewind, the one OpenClaw continues)."""
    last: dict[str | None, Any] = {}
    for event in events:
        last[_session_id(event)] = max(last.get(_session_id(event), event.sort_key),
                                       event.sort_key)
    return sorted(last, key=last.__getitem__, reverse=True)
