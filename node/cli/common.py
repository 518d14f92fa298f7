"""What every ``clawsync`` client command shares once it runs: running a request against
the node, and turning its failures into exit codes with a readable message: 2 for input
the node refused as malformed or too large, 1 for the rest; the ``openclaw`` commands
have codes of their own for set-up mistakes that running again does not mend (3, 4).
(What the commands share to read their command line is in ``node.cli.options``.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from crdt.errors import InvalidInput, LimitExceeded
from node.cli.options import settings
from node.cli.output import print_json
from node.client.errors import ClientError
from node.text import close_words, did_you_mean, printable

if TYPE_CHECKING:  # loaded by ``with_client``, when a command runs: not for its --help
    from node.client.api import Client
    from node.config import Settings

T = TypeVar("T")

#: How much of a value of the node's an error line quotes: a broken or hostile node's
#: ``next`` may be a string of 200,000 digits, which would make a line of 200 KB.
QUOTED_CHARS_MAX = 80


class NodeError(click.ClickException):
    """The node could not be reached or refused the request: exit code 1 (usage errors,
    found before any request, exit with 2)."""

    exit_code = 1


class AnswerError(NodeError):
    """The node's answer lacks a field a command reads, or holds one of another type (a
    broken node's answer, or something else's at its address): exit code 1."""


class InputError(click.ClickException):
    """What the command was given cannot be used as it is (what a file or the standard
    input holds, a folder an OpenClaw gateway runs on or whose files are in the way of an
    export): exit code 2, as for a usage error, but without the usage lines (the command
    was typed right)."""

    exit_code = 2


#: The exit code of ``openclaw import`` and ``watch`` when the node refused an agent's
#: cursor saves ``CURSOR_CHANGED_MAX`` times in one pass, each changed there meanwhile:
#: another import saves them too. Its own code, so that a service manager does not
#: restart watch into the same refusals (the unit in deploy/systemd does not).
CURSOR_CHANGED_EXIT = 3


class CursorChangedTooOftenExit(click.ClickException):
    """Another import saves the same cursors (``node.openclaw.held.CursorChangedTooOften``):
    a set-up mistake to show, which running again does not mend."""

    exit_code = CURSOR_CHANGED_EXIT


#: The exit code of ``openclaw import``, ``watch`` and ``export`` when the node refuses
#: the token (401: none where it wants one, or a wrong one; 403: an app token given
#: instead of the node's, the only 403 of /v1). Its own code, as running again does not
#: mend it: a service manager does not restart watch into the same refusal (the unit in
#: deploy/systemd does not), while exit 1 (an agent's cursor full meanwhile, a reverse
#: proxy's own 401 or 403 in front of the node) is one a restart may get past.
TOKEN_REFUSED_EXIT = 4


class TokenRefusedExit(click.ClickException):
    """The node refused the token of an ``openclaw`` command (``TOKEN_REFUSED_EXIT``)."""

    exit_code = TOKEN_REFUSED_EXIT


#: The node's answers that blame what the command was given (a malformed id, pattern or
#: address: 400; an event or file over the node's size limits: 413): exit code 2, as
#: for the usage errors found before any request. 401, 403, 404 and 409 stay 1 (the
#: node's 401 and 403 to an ``openclaw`` command: ``TOKEN_REFUSED_EXIT``): the input is
#: well-formed, and the node (its token, its data) decides.
INPUT_STATUSES = frozenset({400, 413})

#: Error codes of a 400 that blame no input: an event dated ahead of the node's clock
#: (clock skew: the same command succeeds later) and a body damaged on the way. Exit 1.
NOT_INPUT_CODES = frozenset({"timestamp_ahead", "invalid_body", "incomplete_body"})

#: (error code, field) of 400s and 413s about the node's state, not about what was typed
#: (the commands send these fields well-formed): its count of valid tokens at the limit
#: (until some are revoked), a position past its newest one (positions are each node's
#: own). Exit 1, as other refusals of well-formed input are.
STATE_REFUSALS = frozenset({("limit_exceeded", "tokens"), ("invalid_parameter", "after")})


def failure(error: ClientError) -> click.ClickException:
    """The exit of a command whose request failed: ``InputError`` (2) when the node
    refused the input as malformed or too large, and said so; ``NodeError`` (1)
    otherwise: other refusals, refusals that depend on the node's state or the
    transport (``NOT_INPUT_CODES``, ``STATE_REFUSALS``), and a 400 with no error of the
    node's (something else answers at that address).

    >>> failure(ClientError("the node refused the forget: events[0]: must be 64 hex "
    ...                     "digits", status=400, code="invalid_field")).exit_code
    2
    >>> failure(ClientError("there is no session 's1' on the node", status=404,
    ...                     code="not_found")).exit_code
    1
    >>> failure(ClientError("the node refused issuing the token: tokens: 1024 valid "
    ...                     "tokens", status=413, code="limit_exceeded",
    ...                     field="tokens")).exit_code
    1
    """
    if error.status in INPUT_STATUSES and error.code is not None \
            and _blames_input(error.code, error.field):
        return InputError(str(error))
    return NodeError(str(error))


def _blames_input(code: str, field: str | None) -> bool:
    """Whether a 400 or 413 with this error code and field blames the command's input."""
    return code not in NOT_INPUT_CODES and (code, field) not in STATE_REFUSALS


def store_refusal(error: InvalidInput, where: Path) -> click.ClickException:
    """``failure`` for a data folder opened here (``--data-dir``): the store refused an
    event as the node would over HTTP (``LimitExceeded``: its 413 ``limit_exceeded``),
    so the command exits with the code it would have had against the node.

    >>> store_refusal(InvalidInput("must be a string", field="kind.content"),
    ...               Path("d")).exit_code
    2
    >>> from crdt.errors import TimestampAhead
    >>> store_refusal(TimestampAhead("ahead", field="timestamp", bound_ms=60_000,
    ...                              clock_ms=0), Path("d")).exit_code
    1
    """
    code = "limit_exceeded" if isinstance(error, LimitExceeded) else error.code
    message = f"{where}: {error}"
    return InputError(message) if _blames_input(code, error.field) else NodeError(message)


def with_client(ctx: click.Context, work: Callable[[Client], Awaitable[T]], *,
                named: Mapping[str, str] | None = None, session_key: str | None = None) -> T:
    """Run ``work`` against the node; a ``ClientError`` becomes ``failure(error)``.
    ``named`` maps fields of the API to the command's options that give them: the
    node's refusal of one as malformed names the option (``--limit``, not ``limit``).
    ``session_key``: the SESSION the command was given; the node's "no such session"
    then names the keys it holds that are close to it (``unknown_session``)."""
    options = settings(ctx)

    async def session() -> T:
        async with command_client(options) as client:
            try:
                return await work(client)
            except ClientError as error:
                if session_key is None or error.status != 404 or error.code != "not_found":
                    raise
                hint = await unknown_session(client, session_key)
                if hint is None:
                    raise
                raise error.with_hint(hint) from None

    try:
        return asyncio.run(session())
    except ClientError as error:
        exit_with = failure(error)
        option = (named or {}).get(error.field or "")
        blamed = f": {error.field}: "
        if option is not None and isinstance(exit_with, InputError) \
                and blamed in str(error):  # without usage lines, as the node found it
            exit_with = InputError(str(error).replace(blamed, f": {option}: ", 1))
        raise exit_with from None


#: How many of the node's sessions (its first ones) a missing SESSION is compared with,
#: for a typo: one page at most, one more request before the error.
SESSIONS_COMPARED_MAX = 1000

#: Seconds that request may take: the node has already answered, and a hint is not
#: worth the whole request timeout; past it, the error says how to list the sessions.
SESSIONS_HINT_TIMEOUT_S = 3.0


async def unknown_session(client: Client, key: str) -> str | None:
    """What to add when the node has no session ``key``: the keys of its sessions that
    look like it (a typo), or how to list them; None when this token may not list them
    (401, 403: `clawsync sessions` would be refused too). A session whose every event
    was forgotten is not named: `clawsync sessions` hides it, and it holds nothing to
    read. Nothing more fails here: the node may refuse a page that long (its page_max),
    be slow to list, or answer something that is not a list."""
    listed = "`clawsync sessions` lists them"
    try:
        hint = await asyncio.wait_for(_close_sessions(client, key), SESSIONS_HINT_TIMEOUT_S)
    except ClientError as error:
        return None if error.status in (401, 403) else listed
    except TimeoutError:
        return listed
    return hint or listed


async def _close_sessions(client: Client, key: str) -> str | None:
    """"did you mean" with the node's sessions (its first ``SESSIONS_COMPARED_MAX``)
    close to ``key`` and not forgotten, or None."""
    page = await client.sessions(limit=SESSIONS_COMPARED_MAX)
    rows = page.get("sessions") if isinstance(page, dict) else None
    if not isinstance(rows, list):
        return None
    keys = [row["session_key"] for row in rows
            if isinstance(row, dict) and isinstance(row.get("session_key"), str)]
    # Only a row in detail says "forgotten", and a page of them is 4.5 times the size
    # of the plain one: asked of the close ones alone (CLOSE_WORDS_MAX at most).
    close = [one for one in close_words(key, keys) if not await forgotten(client, one)]
    return did_you_mean(key, close)


async def forgotten(client: Client, session: str) -> bool:
    """Whether ``session`` is forgotten whole, as the node reads it: `clawsync sessions`
    hides it, and a forget of it writes a record all the same (``crdt.log.forget``).
    Read from its row of the session list (``detail``, by ``prefix``), never its
    projection, which the node would build and send whole. False where it cannot be
    read (no such session, a token that may forget but not read, an answer not
    understood): the caller's own request says what is wrong, in its own words."""
    after = None
    try:
        while True:  # the rows of keys that merely start with it may come first
            page = await client.sessions(after=after, detail=True, prefix=session)
            for row in maybe(page, "sessions", list) or []:
                if isinstance(row, dict) and row.get("session_key") == session:
                    return row.get("forgotten") is True
            if maybe(page, "more", bool) is not True:
                return False
            if after is None:
                # Not on the first page, with more to come: the session's own route
                # answers one the node does not hold with a 404 at once, where the list
                # would be paged through to its end (the whole store, for a key that
                # starts many others). Asked only here: it sends the first event whole.
                await client.events(session, limit=1)
            # A "next" that does not move on (a broken node's 5, 6, 5...) is refused
            # there, not followed for ever.
            after = next_position(page.get("next"), after)
    except (ClientError, AnswerError, click.ClickException):
        return False


def listing(ctx: click.Context, as_json: bool,
            fetch: Callable[[Client], Awaitable[T]]) -> T | None:
    """What a group's own listing shows (``clawsync tokens``, ``devices``, ``origins``):
    None if one of its subcommands runs instead, or once ``--json`` printed it."""
    if ctx.invoked_subcommand is not None:
        if as_json:  # else the subcommand would run and print its usual output
            name = ctx.invoked_subcommand
            assert isinstance(ctx.command, click.Group)  # a listing is a group's
            command = ctx.command.get_command(ctx, name)
            takes_json = command is not None and any(
                param.name == "as_json" for param in command.params)
            raise click.UsageError(
                f"--json before {name} is the listing's: give it after {name} "
                f"(clawsync {ctx.info_name} {name} ... --json)" if takes_json
                else f"--json is the listing's, and {name} prints no JSON")
        return None
    view = with_client(ctx, fetch)
    if as_json:
        print_json(view)
        return None
    return view


def command_client(options: Settings) -> Client:
    """The client a command talks to its node with (``with_client``, the OpenClaw
    commands' sink): a node that says it takes no token is warned of, once
    (``answers.token_unused``), the request answered all the same."""
    from node.client import answers
    from node.client.api import Client

    return Client(options.node, options.token, limits=options.limits,
                  on_token_unused=lambda shown_url: note(answers.token_unused(shown_url)))


def note(message: str) -> None:
    """A remark for the person at the terminal: stderr, so stdout stays parseable.
    Escaped here, once for every note: many quote the node (its next position, its
    counts, a removal's words), and a hostile node's control characters would rewrite
    the terminal or forge a line of the command's own."""
    click.echo(printable(message), err=True)


async def removal(client: Client) -> str | None:
    """How this node's device was removed, if it was. The node stores what a removed
    device writes (appends, forget records: its own apps still read them), so only this
    says none of it will replicate."""
    try:
        return ((await client.peers()).get("device") or {}).get("removed_text")
    except ClientError:
        return None  # a token that may write but not read the status: nothing to add


def warn_removed(removed: str, kept: str) -> None:
    """The warning after a write on a removed device's node (``removal``): ``kept``
    stays on this node, as no other device takes what this one writes."""
    from crdt.device import shown_words

    note(shown_words(f"warning: this device was {removed}: {kept} on this node, as every "
                     "other device refuses what it writes now"))


def quoted(value: Any) -> str:
    """``value`` as Python writes it, cut to ``QUOTED_CHARS_MAX`` characters (then
    ending in "..."), for an error line that quotes a node.

    >>> quoted("7" * 100) == repr("7" * 100)[:QUOTED_CHARS_MAX] + "..."
    True
    >>> quoted(7)
    '7'
    """
    text = repr(value)
    return text if len(text) <= QUOTED_CHARS_MAX else f"{text[:QUOTED_CHARS_MAX]}..."


def next_position(following: Any, after: int | None) -> int:
    """A page's ``next``, the position the page after it starts after: a node sends a
    whole number past ``after``, where this page started (None: at the start). Anything
    else (a broken or hostile node's) is said, not a traceback; and one that does not
    move on, which a command following the pages would follow forever (5, 6, 5, 6...),
    gathering without bound, is refused.

    >>> next_position(7, 3)
    7
    >>> next_position("7\x1b[2J", None)
    Traceback (most recent call last):
    ...
    node.cli.common.NodeError: the node's next page starts after '7\\x1b[2J', which is not ...
    >>> next_position(5, 6)
    Traceback (most recent call last):
    ...
    node.cli.common.NodeError: the node's next page starts after 5, not past 6, where its ...
    """
    if not isinstance(following, int) or isinstance(following, bool) or following < 0:
        raise NodeError(printable(f"the node's next page starts after {quoted(following)}, "
                                  "which is not a position"))
    if after is not None and following <= after:
        raise NodeError(printable(f"the node's next page starts after {quoted(following)}, "
                                  f"not past {after}, where its page started: following "
                                  "its pages would never end"))
    return following


#: How an error line names the type a field of the node's answer should have.
_TYPE_NAMES: dict[type, str] = {dict: "an object", list: "a list", str: "a string",
                                int: "a whole number", float: "a number",
                                bool: "true or false"}


def field(answer: Any, name: str, kind: type[T]) -> T:
    """The field ``name`` of a node's answer (``answer``, a JSON object), which must be
    there and be a ``kind`` (``float`` takes whole numbers too; ``int`` and ``float``
    take no ``bool``); else an ``AnswerError`` names it and what it should be.

    >>> field({"members": []}, "members", list)
    []
    >>> field({"members": None}, "members", list)
    Traceback (most recent call last):
    ...
    node.cli.common.AnswerError: the node's answer has None as 'members', not a list
    >>> field({}, "members", list)
    Traceback (most recent call last):
    ...
    node.cli.common.AnswerError: the node's answer has no field 'members'
    """
    if not isinstance(answer, dict) or name not in answer:
        raise AnswerError(printable(f"the node's answer has no field {quoted(name)}"))
    return _typed(answer[name], name, kind)


def maybe(answer: Any, name: str, kind: type[T]) -> T | None:
    """``field``, for one the node may leave out or send as null (an older node's
    answer, a row without a name): None then.

    >>> maybe({"name": None}, "name", str) is None
    True
    >>> maybe({}, "name", str) is None
    True
    """
    if not isinstance(answer, dict):
        raise AnswerError(printable(f"the node's answer has no field {quoted(name)}"))
    value = answer.get(name)
    return None if value is None else _typed(value, name, kind)


def _typed(value: Any, name: str, kind: type[T]) -> T:
    wanted = (int, float) if kind is float else kind
    if isinstance(value, wanted) and not (kind in (int, float)
                                          and isinstance(value, bool)):
        return value  # type: ignore[return-value]  # an int where a float is asked for
    raise AnswerError(printable(f"the node's answer has {quoted(value)} as {quoted(name)}, "
                                f"not {_TYPE_NAMES.get(kind, kind.__name__)}"))


def rows(answer: Any, name: str, *, absent_ok: bool = False) -> list[dict[str, Any]]:
    """The list of objects a node's answer holds as ``name`` (a page's events or
    sessions, the rows of a listing), checked to be one: anything else is an
    ``AnswerError``, not a traceback where an item is read. ``absent_ok``: an answer
    without it (an older node's) has none.

    >>> rows({"events": [{"position": 1}]}, "events")
    [{'position': 1}]
    >>> rows({"events": "abc"}, "events")
    Traceback (most recent call last):
    ...
    node.cli.common.AnswerError: the node's answer has 'abc' as 'events', not a list
    >>> rows({"events": [1]}, "events")
    Traceback (most recent call last):
    ...
    node.cli.common.AnswerError: the node's answer has 1 in 'events', not an object
    """
    found = maybe(answer, name, list) if absent_ok else field(answer, name, list)
    for item in found or []:
        if not isinstance(item, dict):
            raise AnswerError(printable(f"the node's answer has {quoted(item)} in "
                                        f"{quoted(name)}, not an object"))
    return found or []


@contextmanager
def written(done: str) -> Iterator[None]:
    """Around the reading of a write's answer: a malformed one says the write was
    ``done`` (the node answered 2xx: it is not to be taken for a failed write, nor
    made again in haste) and what its answer lacks."""
    try:
        yield
    except AnswerError as error:
        raise NodeError(printable(f"{done}, but its answer is malformed: "
                                  f"{error.message}")) from None
