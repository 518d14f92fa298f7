"""``clawsync append``: record events from the command line or import a seed export (its
file read by ``node.cli.event_files``).

Fields follow httpie's convention: ``FIELD=VALUE`` is text, ``FIELD:=JSON`` a JSON value.
Events typed on the command line are checked here (with the same rules the node applies)
before anything is sent, so a typo costs no request and gets exit code 2.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

import click

from crdt.errors import InvalidInput, NotATime
from crdt.kinds import DEFAULTS, KINDS, parse_kind
from node.cli.common import (
    NodeError,
    maybe,
    note,
    removal,
    rows,
    warn_removed,
    with_client,
    written,
)
from node.cli.event_files import DECODER, read_events
from node.cli.options import client_options, session_key
from node.cli.output import print_json_lines, printable
from node.client.errors import ClientError
from node.empty_variables import param_named
from node.text import counted

if TYPE_CHECKING:  # loaded when the command runs: its --help needs neither (nor aiohttp)
    from node.client.api import Client
    from node.limits import ClientLimits

#: ``ClientLimits().import_batch_events_max``, which the help shows without loading
#: ``node.config`` (tests/node/cli/test_loading.py holds the two together).
IMPORT_BATCH_EVENTS_MAX = 1000

#: How each field type is written on the command line, by validator (crdt/kinds.py).
_FIELD_FORMS = {"text": "=TEXT", "_state_key": "=TEXT", "_boolean": ":=true|false"}


def field_forms(kind: str) -> list[str]:
    """``content=TEXT``, ``[attachments:=JSON]``...: how to write each field of ``kind``."""
    forms = []
    for name, check in KINDS[kind].items():
        form = name + _FIELD_FORMS.get(check.__name__, ":=JSON")
        forms.append(f"[{form}]" if name in DEFAULTS.get(kind, {}) else form)
    return forms


def kinds_table() -> str:
    """Every kind and its fields, one per line (optional fields in brackets)."""
    width = max(len(kind) for kind in KINDS)
    return "\n".join(f"  {kind:<{width}}  {' '.join(field_forms(kind))}" for kind in KINDS)


def parse_fields(kind: str, items: tuple[str, ...]) -> dict[str, Any]:
    """Turn ``FIELD=VALUE`` / ``FIELD:=JSON`` arguments into a checked ``kind`` object."""
    if kind not in KINDS:
        raise click.UsageError(f"unknown event kind {kind!r}. The kinds and their fields:\n"
                               f"{kinds_table()}")
    body: dict[str, Any] = {"type": kind}
    as_text: set[str] = set()
    for item in items:
        name, value, is_json = _split_field(kind, item)
        if name in body:
            raise click.UsageError(f"field {name!r} is given twice")
        body[name] = value
        if not is_json:
            as_text.add(name)
    try:
        parse_kind(body)
    except InvalidInput as error:
        # "kind.success" -> "success": hint at := when a JSON field was given as text.
        blamed = (error.field or "").split(".")[1:2]
        hint = ""
        if blamed and blamed[0] in as_text:
            hint = " (FIELD:=JSON passes a JSON value, FIELD=VALUE passes text)"
        raise click.UsageError(f"{error}{hint}. Fields of {kind}: "
                               f"{' '.join(field_forms(kind))}") from None
    return body


def _split_field(kind: str, item: str) -> tuple[str, Any, bool]:
    """``name=text`` -> (name, "text", False); ``name:=json`` -> (name, value, True)."""
    name, equals, value = item.partition("=")
    is_json = name.endswith(":")
    name = name.removesuffix(":")
    if not equals or not name:
        raise click.UsageError(f"{item!r} is not FIELD=VALUE or FIELD:=JSON. Fields of "
                               f"{kind}: {' '.join(field_forms(kind))}")
    if name not in KINDS[kind]:
        # A typo's guard: extra fields, which nodes keep as they come, go with --file.
        raise click.UsageError(f"{kind} has no field {name!r}; its fields: "
                               f"{' '.join(field_forms(kind))} (extra fields go in an "
                               "event given with --file)")
    if not is_json:
        return name, value, False
    try:
        return name, DECODER.decode(value), True
    except ValueError as error:
        raise click.UsageError(f"{name}:= needs a JSON value ({error}); "
                               f"write {name}={value} to pass it as text") from None


def batches(events: list[dict[str, Any]], limits: ClientLimits,
            numbers: Sequence[int] | None = None
            ) -> Iterator[tuple[list[int], str, list[dict[str, Any]]]]:
    """Group events by session (the API appends to one session per request) into batches
    within ``limits.import_batch_*``; yields ``(numbers of its events, key, batch)``, by
    ``numbers`` (each event's in its file; default 1, 2, ...)."""
    from node.client.transport import json_bytes  # as the command runs: it loads aiohttp

    by_session: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for number, event in zip(numbers or range(1, len(events) + 1), events, strict=True):
        by_session.setdefault(str(event["session_key"]), []).append((number, event))
    for key, numbered in by_session.items():
        batch: list[dict[str, Any]] = []
        held: list[int] = []
        size = 1  # the body's brackets, less the first event's comma
        for number, event in numbered:
            # As the body is sent (compact UTF-8), and the comma that parts it from the
            # event before it.
            event_bytes = len(json_bytes(event)) + 1
            if batch and (len(batch) >= limits.import_batch_events_max
                          or size + event_bytes > limits.import_batch_bytes_max):
                yield held, key, batch
                batch, held, size = [], [], 1
            batch.append(event)
            held.append(number)
            size += event_bytes
        if batch:
            yield held, key, batch


def blamed(error: ClientError, numbers: Sequence[int]) -> str:
    """The node's refusal of a batch, with the event it blames (``events[i]``, the
    batch's own index) named by its number in the file.

    >>> blamed(ClientError("the node refused the events: events[1].kind.content: must "
    ...                    "be a string", field="events[1].kind.content",
    ...                    said="must be a string"), [4, 9])
    'the node refused event #9 of the file: kind.content: must be a string'
    """
    found = re.fullmatch(r"events\[(\d+)\](?:\.(.+))?", error.field or "")
    if found is None or error.said is None or int(found[1]) >= len(numbers):
        return str(error)
    where = f"{found[2]}: " if found[2] else ""
    return f"the node refused event #{numbers[int(found[1])]} of the file: {where}{error.said}"


async def send_all(client: Client, events: list[dict[str, Any]], from_file: bool,
                   numbers: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Append every batch; a refusal says which part of the file was stored before it
    (``numbers``: each event's in the file, as ``batches`` takes them)."""
    stored: list[dict[str, Any]] = []
    undated = 0  # of the events the node stored: see _again
    for held, key, batch in batches(events, client.limits, numbers):
        try:
            answer = await client.append(key, batch)
        except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels, then raises it
            if from_file:
                told_interrupted(_interrupted_at(key, batch, stored, undated))
            raise
        except ClientError as error:
            if not from_file:
                raise
            said = _stored_so_far(error, key, batch, stored, undated)
            raise ClientError(f"{blamed(error, held)}\n({said})", status=error.status,
                              code=error.code, field=error.field) from None
        with written(f"the node stored {counted(len(batch), 'event')} of session {key!r}"):
            found = rows(answer, "events")
            for event in found:  # the report reads its type
                maybe(event, "kind", dict)
            stored.extend(found)
        undated += sum(1 for event in batch if _undated(event))
    return stored


def _stored_so_far(error: ClientError, key: str, batch: list[dict[str, Any]],
                   stored: list[dict[str, Any]], undated: int) -> str:
    """What of the file the node holds once ``batch`` failed: the batches before it (other
    sessions too), and none of this one if the node refused it (one request per session
    and batch, a 4xx is answered before anything is stored). With no answer, or a 5xx,
    the node may have stored this batch, or part of it, before it failed.

    >>> print(_stored_so_far(ClientError("refused", status=400), "s", [{}], [{}], 1))
    ... # doctest: +NORMALIZE_WHITESPACE
    none of the 1 event of session 's' sent with it is stored; 1 event of the file is.
    1 event stored has no timestamp: running the import again would store it a second time
    >>> print(_stored_so_far(ClientError("timed out"), "s", [{}, {}], [], 0))
    ... # doctest: +NORMALIZE_WHITESPACE
    the node may have stored the 2 events of session 's' sent with it, all, some or none;
    0 events of the file are stored before them
    """
    before = f"{counted(len(stored), 'event')} of the file"
    if error.status is None or not 400 <= error.status < 500:
        return (f"the node may have stored the {counted(len(batch), 'event')} of session "
                f"{key!r} sent with it, all, some or none; {before} {_is(stored)} stored "
                "before them")
    return (f"none of the {counted(len(batch), 'event')} of session {key!r} sent with "
            f"it is stored; {before} {_is(stored)}. {_again(undated)}")


def _interrupted_at(key: str, batch: list[dict[str, Any]], stored: list[dict[str, Any]],
                    undated: int) -> str:
    """What of the file the node holds when Ctrl-C came as ``batch`` was sent: the
    batches it acknowledged, and this one all, some or none (its commit may have been
    done or under way). Running the import again is safe only if none of the events it
    may hold is undated.

    >>> print(_interrupted_at("s", [{"timestamp": 5}], [{}, {}], 0))
    ... # doctest: +NORMALIZE_WHITESPACE
    interrupted: the node acknowledged 2 events of the file as stored; it may have stored
    the 1 event of session 's' sent when the interrupt came, all, some or none. Running
    the import again is safe: stored events are recognised
    """
    return (f"interrupted: the node acknowledged {counted(len(stored), 'event')} of the "
            f"file as stored; it may have stored the {counted(len(batch), 'event')} of "
            f"session {key!r} sent when the interrupt came, all, some or none. "
            f"{_again(undated + sum(1 for event in batch if _undated(event)), maybe=True)}")


def told_interrupted(said: str) -> None:
    """Say, before the command's ``interrupted``, what of the file the node stored."""
    sys.stderr.write("\n")  # ends the terminal's "^C" echo
    note(f"({said})")


def _undated(event: dict[str, Any]) -> bool:
    """Whether the node gives ``event`` its clock: no timestamp nor hlc, or null (as
    parse_timestamp reads it)."""
    return event.get("timestamp") is None and event.get("hlc") is None


def _is(stored: list[dict[str, Any]]) -> str:
    return "is" if len(stored) == 1 else "are"


def _again(undated: int, maybe: bool = False) -> str:
    """Whether importing the file again stores nothing twice, with ``undated`` events
    among those the node stored (``maybe``: stored or perhaps stored): an event is
    recognised by its id, which its timestamp is part of, and one without a timestamp is
    given the node's clock, a new one each time."""
    if not undated:
        return "Running the import again is safe: stored events are recognised"
    them = "it" if undated == 1 else "them"
    if maybe:
        return (f"{counted(undated, 'event')} stored or perhaps stored "
                f"{'has' if undated == 1 else 'have'} no timestamp: running the import again "
                f"may store {them} a second time")
    return (f"{counted(undated, 'event')} stored {'has' if undated == 1 else 'have'} no "
            f"timestamp: running the import again would store {them} a second time")


def report(stored: list[dict[str, Any]], as_json: bool, from_file: bool) -> None:
    """One line per event: new or already stored, its position and id."""
    if as_json:
        print_json_lines(stored)
    else:
        for event in stored:
            status = "stored" if event.get("created", True) else "already stored"
            # Dated before a forget of its session (or forgotten itself): only its
            # skeleton is kept, which the person appending must not take for a success.
            erased = f", forgotten by {event['forgotten_by']}: its content was not kept" \
                if event.get("forgotten_by") else ""
            click.echo(printable(
                f"{status}: position {event.get('position')} id {event.get('id')} "
                f"({event.get('kind', {}).get('type')} in {event.get('session_key')})"
                f"{erased}"))
    if from_file:
        created = sum(1 for event in stored if event.get("created", True))
        sessions = len({event.get("session_key") for event in stored})
        erased_count = sum(1 for event in stored if event.get("forgotten_by"))
        note(f"{counted(len(stored), 'event')} in {counted(sessions, 'session')}: "
             f"{created} stored, "
             f"{len(stored) - created} already stored"
             + (f"; {erased_count} forgotten, their content not kept" if erased_count else ""))


APPEND_HELP = f"""Append an event to SESSION, or import events from a file.

KIND is one of the event kinds below; each FIELD=VALUE sets a text field and each
FIELD:=JSON sets a JSON value (true, 3, {{"q": "x"}}, ...); only the kind's own fields
are taken here (extra fields go with --file). Prints the position and id the
node stored the event at, or "already stored" when it had the event (an event with the
same --timestamp and content is the same event, so retries are safe), and "forgotten by"
when its content was not kept (it is dated before a forget of its session).

With --file, events come from a JSON object, a JSON array or JSON lines in UTF-8 (a
leading byte order mark is skipped), for example a
seed export (its array-of-numbers ids are ignored), `events --json` or a page of `GET
/v1/sessions/KEY/events`; events without a session_key go to SESSION. They are sent
in batches of at most {IMPORT_BATCH_EVENTS_MAX}.
Forgotten events and the records only nodes write (forgets, device keys, tokens), as
`events --json` shows them, are left out, with a note.

\b
Kinds and their fields ([...] = optional):
{kinds_table()}

\b
Examples:
  clawsync append s1 message_received content='hello there'
  clawsync append s1 tool_called tool_name=search params:='{{"q": "weather"}}'
  clawsync append s1 tool_result tool_name=search result:='[3]' success:=true
  clawsync append s1 state_changed key=mood value:='"happy"' --agent bot2
  clawsync append s1 session_ended reason=bye --timestamp 2026-01-01T12:00:00Z
  clawsync append --file export.json
  clawsync --node http://a:7878 events s1 --all --json \\
    | clawsync --node http://b:7878 append --file -
"""


def timestamp_value(_ctx: click.Context, _param: click.Parameter, text: str | None
                    ) -> str | int | None:
    """The callback of ``--timestamp``: the value as the node takes it (integer
    milliseconds, or RFC 3339 text), checked here, so that a bad one is a usage error,
    found before any request."""
    if text is None:
        return None
    from crdt.events import parse_timestamp  # as the command runs: it loads cbor2

    stamp: str | int = int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else text
    try:
        parse_timestamp({"timestamp": stamp}, "")
    except InvalidInput as error:
        # The help offers both forms: a text of neither shape is told so (not one that
        # is a time, out of range).
        either = ", nor integer milliseconds" if isinstance(error, NotATime) else ""
        raise click.BadParameter(error.reason + either) from None
    return stamp


# Not no_args_is_help: no arguments is a missing SESSION, said as every other command
# says a missing argument (usage lines, then `Error: Missing argument`), not the whole
# help on stderr with no error line.
@click.command(help=APPEND_HELP)
@click.argument("session", required=False, callback=session_key)
@click.argument("kind", required=False)
@click.argument("fields", nargs=-1, metavar="[FIELD=VALUE | FIELD:=JSON]...")
@click.option("--agent", default="main", show_default=True, metavar="ID",
              help="agent_id of the event (with --file: of events that carry none).")
@click.option("--timestamp", metavar="TIME", callback=timestamp_value,
              help="RFC 3339 time or integer milliseconds. Default: the node's clock. "
                   "Giving one makes a retry store nothing new.")
@click.option("--file", "source", type=click.File("rb"), metavar="PATH|-",
              help="Read events from a file (- for stdin) instead of the arguments.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored events as JSON lines.")
@client_options
@click.pass_context
def append(ctx: click.Context, session: str | None, kind: str | None, fields: tuple[str, ...],
           agent: str, timestamp: str | int | None, source: IO[bytes] | None,
           as_json: bool) -> None:
    if source is not None:
        if kind is not None or timestamp is not None:
            raise click.UsageError("with --file, give no KIND, FIELDs or --timestamp: the "
                                   "events come from the file")
        events, numbers = read_events(source, session, agent)
    else:
        if session is None or kind is None:
            raise missing(ctx, "session" if session is None else "kind")
        event: dict[str, Any] = {"agent_id": agent, "kind": parse_fields(kind, fields),
                                 "session_key": session}
        if timestamp is not None:
            event["timestamp"] = timestamp
        events, numbers = [event], [1]
    async def run(client: Client) -> tuple[list[dict[str, Any]], str | None]:
        stored = await send_all(client, events, source is not None, numbers)
        try:
            return stored, await removal(client)
        except asyncio.CancelledError:  # Ctrl-C once every batch was acknowledged
            if source is not None:
                told_interrupted(f"interrupted: the node acknowledged all "
                                 f"{counted(len(stored), 'event')} of the file as stored: "
                                 "nothing is left "
                                 "to import")
            raise

    stored, removed = with_client(ctx, run)
    if not stored:
        raise NodeError("the node answered without the stored events")
    report(stored, as_json, source is not None)
    if removed:
        warn_removed(removed, "the events stay")


def missing(ctx: click.Context, name: str) -> click.MissingParameter:
    """The error for SESSION or KIND left out without --file (click cannot find it: both
    are optional, as --file needs neither): ``Missing argument``, as other commands say
    it, with the kinds to choose from."""
    return click.MissingParameter(f"Give SESSION and KIND (or --file). The kinds and "
                                  f"their fields:\n{kinds_table()}", ctx=ctx,
                                  param=param_named(ctx, name),
                                  param_hint=f"'{name.upper()}'")  # not its metavar, '[SESSION]'

