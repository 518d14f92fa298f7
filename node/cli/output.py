"""How the ``clawsync`` commands print: tables and colour (rich) when stdout is a terminal,
one plain line per item otherwise, so output piped to ``grep`` or a file stays simple.

>>> event_text({"type": "tool_result", "tool_name": "search", "result": {"n": 2},
...             "success": False})
'search failed: {"n":2}'
>>> shorten("a\\nlong line", 8)
'a long …'
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
from typing import TYPE_CHECKING, Any

import click

from node.cli.columns import column_widths, layout_tries, wrapped
from node.text import BIDI_CONTROLS, time_text
from node.text import printable as printable  # the commands print with it

if TYPE_CHECKING:  # rich is loaded where a terminal is written to
    from rich.console import Console

# The event kinds (``crdt.kinds``, ``crdt.log``) are imported where events are printed:
# they load cbor2 and the crypto libraries, which a command's --help needs none of.

#: Widest summary of an event in one line of output, in characters.
TEXT_CHARS_MAX = 100


def is_terminal() -> bool:
    """True when a person is (probably) reading stdout and rich is installed."""
    if not sys.stdout.isatty():
        return False
    try:
        import rich  # noqa: F401  (optional: plain output without it)
    except ImportError:
        return False
    return True


def terminal_width() -> int | None:
    """The columns of the terminal stdout is, or None where it is none (piped)."""
    if not is_terminal():
        return None
    return shutil.get_terminal_size().columns  # what ``console`` gives rich


def console(*, highlight: bool = True) -> Console:
    """A rich console on stdout, as wide as the terminal: rich takes a TERM=dumb
    terminal (an editor's shell, say) for 80 columns whatever its size and COLUMNS say,
    so the size is given (COLUMNS, else the terminal's, as ``shutil`` reads them).
    ``highlight``: rich's colouring of numbers and such in what is printed."""
    from rich.console import Console

    width, height = shutil.get_terminal_size()
    return Console(width=width, height=height, highlight=highlight)


def shorten(text: str, chars_max: int = TEXT_CHARS_MAX) -> str:
    """One printable line of at most ``chars_max`` characters."""
    flat = printable(" ".join(text.split()))
    return flat if len(flat) <= chars_max else flat[: chars_max - 1] + "…"


def compact(value: Any) -> str:
    """JSON without spaces, for values shown inside a line."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def result_text(result: Any) -> str:
    """A tool's result as a person reads it: a text as it is (an OpenClaw result's text
    blocks), not in JSON's quotes; any other value as JSON."""
    return result if isinstance(result, str) else compact(result)


def event_text(kind: dict[str, Any]) -> str:
    """The interesting part of an event, by kind, as one short line."""
    from crdt.log import forget, retire

    match kind.get("type"):
        case "session_started":
            text = f"{kind.get('channel')} with {kind.get('peer_id')}"
        case "message_received" | "message_sent":
            text = str(kind.get("content", ""))
        case "tool_called":
            text = f"{kind.get('tool_name')}({compact(kind.get('params'))})"
        case "tool_result":
            outcome = "ok" if kind.get("success") else "failed"
            text = f"{kind.get('tool_name')} {outcome}: {result_text(kind.get('result'))}"
        case "agent_response":
            text = f"{kind.get('content', '')} [{kind.get('model')}]"
        case "session_ended":
            text = str(kind.get("reason", ""))
        case "state_changed":
            text = f"{kind.get('key')} = {compact(kind.get('value'))}"
        case forget.KIND:
            events = kind.get("events") or []
            covered = f"{len(events)} event(s)" if events else "the session"
            text = f"{covered}, {kind.get('reason')}, by {kind.get('by')}"
        case retire.KIND:
            text = compact({k: v for k, v in kind.items() if k != "type"})
        case _:
            text = compact({k: v for k, v in kind.items() if k != "type"})
    return shorten(text)


def event_row(event: dict[str, Any], *, with_session: bool = False) -> list[str]:
    """Columns of one event: position, time, [session], type, summary."""
    from crdt.kinds import RECORD_KINDS

    kind = event.get("kind") or {}
    # Each cell printable: ``tail`` prints them as they are, around its colours.
    row = [printable(str(event.get("position", ""))), printable(time_text(event.get("timestamp")))]
    if with_session:
        row.append(printable(str(event.get("session_key", ""))))
    kind_name = printable(str(kind.get("type", "?")))
    # Written by a newer version than the node's (a node before 0.3 flags its records).
    if event.get("known_kind") is False and kind_name not in RECORD_KINDS:
        kind_name += " (unknown kind)"
    if event.get("forgotten_by"):  # its content was forgotten (``crdt.log.forget``)
        return [*row, kind_name,
                f"(forgotten by {printable(str(event['forgotten_by'])[:16])})"]
    return [*row, kind_name, event_text(kind)]


#: What ``json.dumps(..., ensure_ascii=False)`` leaves raw and a terminal may obey: DEL
#: and the C1 controls (U+009B starts an escape sequence, as ESC [ does), and the
#: bidirectional controls ``printable`` escapes (``node.text.BIDI_CONTROLS``); and the
#: lone surrogates (U+D800-U+DFFF) a node's JSON may hold (``"\\ud800"``), which no
#: UTF-8 output can write: escaped, the same string on ``json.loads``.
_RAW_CONTROLS = re.compile(rf"[\x7f-\x9f{BIDI_CONTROLS}\ud800-\udfff]")


def json_text(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON, its text readable (not ``\\u`` escapes), but for the control
    characters, escaped all: JSON escapes C0 ones itself, these are escaped here. Only a
    string holds them, where ``\\u009b`` stands for the same character: still valid JSON,
    with the same value.

    >>> json_text({"text": "é\x9b2J"})
    '{"text": "é\\\\u009b2J"}'
    >>> json_text("a\\ud800b")
    '"a\\\\ud800b"'
    >>> json_text("file\\u202egpj.exe")
    '"file\\\\u202egpj.exe"'
    """
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _RAW_CONTROLS.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


#: How far ``print_json`` indents each level: the commands that print one JSON value
#: (``status``, ``tokens``, ``devices``, ``origins``, ``forget``, ``device``,
#: ``projection``) have always printed it indented by 2, and a script may read it line
#: by line (``grep '"name"'``); a parser reads any indent alike.
JSON_INDENT = 2


def print_json(value: Any) -> None:
    """A command's ``--json`` answer, one value over several lines, escaped as
    ``json_text`` escapes (every ``--json`` is printed through it: a name is shown as
    typed, "Zoë" not "Zo\\u00eb", and a control character never reaches the terminal raw).

    >>> print_json({"name": "Zoë\x9b"})
    {
      "name": "Zoë\\u009b"
    }
    """
    click.echo(json_text(value, indent=JSON_INDENT))


def print_json_lines(items: list[dict[str, Any]]) -> None:
    """One JSON object per line: easy to pipe into ``jq`` or back into ``append --file``."""
    for item in items:
        click.echo(json_text(item))


class Pages:
    """One table printed page by page (``events --all``, ``sessions --all``), each page as
    it comes: its column names once, over the first page's rows, and each later page's
    columns as wide as those of the pages before it, or wider where its cells need it
    (see ``print_rows``). A page printed is never printed again: what a later page
    needs cannot move the lines above."""

    def __init__(self) -> None:
        #: Whether a page printed rows: the later ones have no header nor title.
        self.started = False
        #: The terminal table's columns (by index) and their widths, as the last page
        #: printed them; None: the plain lines (piped, or a terminal too narrow for the
        #: table), which the later pages print too.
        self.kept: list[int] | None = None
        self.table_widths: list[int] = []
        #: The plain lines' widths (every column but the last), as the last page had them.
        self.plain_widths: list[int] = []


def print_rows(rows: list[list[str]], headers: list[str], *, title: str | None = None,
               headed: bool = False, whole: bool = False,
               wrap: tuple[int, ...] = (), fold: tuple[int, ...] = (),
               optional: tuple[int, ...] = (), apart: int | None = None,
               plain: list[list[str]] | None = None, pages: Pages | None = None,
               wrap_last: tuple[int, ...] = (), one_per_line: tuple[int, ...] = (),
               wrap_before: tuple[int, ...] = ()) -> None:
    """A table on a terminal, tab-free plain lines (two spaces between columns) otherwise;
    ``headed``: those lines start with the headers in capitals (tables of numbers that
    say nothing without them; a list of events or sessions reads without). ``whole``: no
    cell may be cut short, as the ids people copy into another command (``devices
    remove ID``): on a terminal too narrow for the table, the plain lines, which the
    terminal wraps; but the cells of the columns ``wrap`` (by index: free text, never
    ids or times) may take more than one line of the table, broken between words, so
    that it fits a narrower terminal, as may the headers; those of the columns ``fold``
    (free text that may hold a long URL) as well, a word wider than the column broken
    between characters. ``optional``: the columns (by
    index) a whole table leaves out, in this order, where it would not fit the terminal
    with them (the plain lines and --json keep every column); a note on stderr names
    them. ``apart``: the column (by index: an id too wide to share a line, as a device's)
    that, where a whole table would not fit the terminal with it, goes on a line of its
    own over each row's other cells, whole, before any ``optional`` column is left out.
    ``plain``: the rows of the plain lines, where they say more than the table has
    room for (a whole device id, where the table has the first group of it). A
    ``title`` is a line of its own over the table, whole: the terminal wraps it.
    ``pages``: these rows are a page of a table printed page by page (``Pages``), which
    prints the header, the title and the note of columns left out with the first page
    alone. ``wrap_last``: the columns of ``wrap`` kept on one line where leaving out
    ``optional`` columns makes the room (a version over two lines reads as two values),
    wrapped only where no table fits otherwise. ``wrap_before``: the last of
    ``optional``, left out only where no table fits with ``wrap_last`` wrapped either (a
    token's patterns one a line hide nothing; its issuer left out does). ``one_per_line``:
    the columns of ``wrap`` whose cells are lists, words that are items (a token's
    session patterns): a cell that does not fit its column on one line gives each a line
    of its own."""
    if not rows:
        return
    if pages is not None and pages.started:
        title, headed = None, False
    rows = [[printable(cell) for cell in row] for row in rows]
    if apart is not None:
        optional = (apart, *optional)
    table = is_terminal() and (pages is None or not pages.started or pages.kept is not None)
    if table and _print_table(rows, headers, title, whole, wrap, fold, optional, apart,
                              pages, wrap_last, one_per_line, wrap_before):
        if pages is not None:
            pages.started = True
        return
    if pages is not None:  # the plain lines from here on: no header in their middle
        pages.kept = None
    if plain is not None:
        rows = [[printable(cell) for cell in row] for row in plain]
    if headed:
        rows = [[header.upper() for header in headers], *rows]
    from rich.cells import cell_len

    # Pad every column but the last, so the lines read as a table but stay greppable;
    # by terminal cells, not characters: 家 takes two columns of the screen. A later
    # page's columns are at least as wide as the pages' before it, so that they line up
    # under them; one cell wider than its column widens it from that page on, the lines
    # above printed already (a plain line has no width to keep: the terminal wraps it).
    widths = [max(cell_len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    if pages is not None:
        before = pages.plain_widths or [0] * len(widths)
        widths = [max(width, at_least) for width, at_least in zip(widths, before, strict=True)]
        pages.plain_widths, pages.started = widths, True
    for row in rows:
        cells = [cell + " " * (width - cell_len(cell))
                 for cell, width in zip(row, widths, strict=False)]
        # An empty last cell left the padding of the one before it at the line's end.
        click.echo("  ".join([*cells, row[-1]]).rstrip())


def _print_table(rows: list[list[str]], headers: list[str], title: str | None,
                 whole: bool, wrap: tuple[int, ...], fold: tuple[int, ...],
                 optional: tuple[int, ...], apart: int | None = None,
                 pages: Pages | None = None, wrap_last: tuple[int, ...] = (),
                 one_per_line: tuple[int, ...] = (),
                 wrap_before: tuple[int, ...] = ()) -> bool:
    """``print_rows``'s table, if it has one for this terminal (see there)."""
    from rich.table import Table
    from rich.text import Text

    later = pages is not None and pages.started
    kept, widths = list(range(len(headers))), None
    if later and pages is not None and pages.kept is not None:
        kept, widths = pages.kept, (_later_widths(pages.kept, pages.table_widths, headers,
                                                  rows, wrap, fold) if whole else None)
        if whole and widths is None:
            return False
    elif whole:
        layout = _layout(headers, rows, wrap, fold, optional, wrap_last, wrap_before)
        if layout is None:
            return False
        kept, widths = layout
    if pages is not None:
        pages.kept, pages.table_widths = kept, widths or []
    out = console()

    def table(shown: list[list[str]], *, header: bool = True) -> Table:
        # No padding at the table's edges: its first column starts where a line does,
        # as the plain lines' do, and two more columns of the terminal are the cells'.
        made = Table(header_style="bold cyan", box=None, pad_edge=False,
                     show_header=header)
        for at, index in enumerate(kept):
            # A whole table's cells come broken into lines here (``wrapped``): rich's
            # own wrapping breaks a time between its date and its clock, and rich 15
            # kept the space a wrapped line of double-width characters ends with, one
            # cell too wide.
            made.add_column(wrapped(headers[index], widths[at]) if widths
                            else headers[index], no_wrap=whole, overflow="ellipsis",
                            width=widths[at] if widths else None)
        for row in shown:
            # Text(), not markup strings: a message containing "[bold]" must print as
            # typed.
            made.add_row(*(Text(wrapped(row[index], widths[at], fold=index in fold,
                                        one_per_line=index in one_per_line)
                                if widths and (index in wrap or index in fold)
                                else row[index]) for at, index in enumerate(kept)))
        return made

    if title is not None:
        # A line of its own, not rich's title: that one was centred over the table (the
        # line started with spaces) and broken at the table's width, a session key
        # people copy among them. Text, as the cells are: rich reads a string as markup,
        # and a key "a[/b]" stopped the command with a MarkupError, "[link=URL]" put a
        # hyperlink on the reader's screen.
        out.print(Text(printable(title), style="table.title"), no_wrap=True,
                  overflow="ignore", crop=False)
    if apart is None or apart in kept:
        _print_lines_of(out, table(rows, header=not later))
    else:  # the column ``apart`` on a line of its own over each row: the columns the same
        if not later:
            # Its header on a line of its own over the others', as its cells over theirs.
            out.print(Text(headers[apart], style="bold cyan"), no_wrap=True,
                      overflow="ignore", crop=False)
            _print_lines_of(out, table([]))  # the other headers alone
        for row in rows:
            out.print(Text(row[apart], style="bold"), no_wrap=True, overflow="ignore",
                      crop=False)
            _print_lines_of(out, table([row], header=False))
    left_out = [headers[index] for index in range(len(headers))
                if index not in kept and index != apart]
    if left_out and not later:  # said with the first page: the later ones leave out the same
        click.echo(f"(left out for want of room: {', '.join(left_out)}; piped or with "
                   "--json, every column is there)", err=True)
    return True


def _print_lines_of(out: Console, table: Any) -> None:
    """``table``'s lines, as rendered on ``out``. rich pads
    each line to the table's width: the spaces after its last cell are cut, so that a
    copied line or a terminal's scrollback holds none."""
    from rich.text import Text

    for line in out.render_lines(table, pad=False, new_lines=False):
        text = Text()
        for part in line:
            if not part.control:
                text.append(part.text, part.style)
        text.rstrip()
        out.print(text, no_wrap=True, overflow="ignore", crop=False)


def prints_table(rows: list[list[str]], headers: list[str], *, whole: bool = False,
                 wrap: tuple[int, ...] = (), fold: tuple[int, ...] = (),
                 optional: tuple[int, ...] = (), wrap_last: tuple[int, ...] = (),
                 wrap_before: tuple[int, ...] = ()) -> bool:
    """Whether ``print_rows`` prints these rows as a table, not as the plain lines: a
    command asks the node for what only the plain lines show when they will be printed."""
    if not rows or not is_terminal():
        return False
    rows = [[printable(cell) for cell in row] for row in rows]
    return not whole or _layout(headers, rows, wrap, fold, optional, wrap_last,
                                wrap_before) is not None


def _layout(headers: list[str], rows: list[list[str]], wrap: tuple[int, ...],
            fold: tuple[int, ...],
            optional: tuple[int, ...],
            wrap_last: tuple[int, ...] = (),
            wrap_before: tuple[int, ...] = ()) -> tuple[list[int], list[int]] | None:
    """The columns a whole table shows on this terminal (all, else fewer of the
    ``optional`` ones, in their order) and their widths (``column_widths``, with the
    padding rich gives a table's cells), or None if no such table fits. The columns of
    ``wrap_last`` are wrapped only where no table fits with them whole: whether one fits
    at all is as without them; those of ``wrap_before`` are left out after they are
    wrapped."""
    from rich.table import Table

    _top, right, _bottom, left = Table(box=None).padding
    width = terminal_width() or 0
    for wrapping, left_out in layout_tries(wrap, optional, wrap_last, wrap_before):
        kept = [index for index in range(len(headers)) if index not in left_out]
        widths = column_widths(
            [headers[index] for index in kept],
            [[row[index] for index in kept] for row in rows],
            tuple(at for at, index in enumerate(kept) if index in wrapping),
            width, left + right,
            tuple(at for at, index in enumerate(kept) if index in fold))
        if widths is not None:
            return kept, widths
    return None


def _later_widths(kept: list[int], before: list[int], headers: list[str],
                  rows: list[list[str]], wrap: tuple[int, ...],
                  fold: tuple[int, ...]) -> list[int] | None:
    """The widths of the columns ``kept`` for a later page of a whole table whose pages
    before it had the widths ``before``: each at least as wide as before, so that the page
    lines up under the header, unless its cells need more (a longer key, a position of
    more digits) or the terminal has not the room. Such a column then takes what its cells
    need, shifting those right of it on this page and the later ones: a page printed
    cannot be redrawn, and a whole cell (an id people copy) cut short with "…" to keep
    the column would be worse. The line still fits the terminal (``column_widths``
    shrinks the free text first); None where no such line does: the plain lines then."""
    from rich.table import Table

    _top, right, _bottom, left = Table(box=None).padding
    return column_widths([headers[index] for index in kept],
                          [[row[index] for index in kept] for row in rows],
                          tuple(at for at, index in enumerate(kept) if index in wrap),
                          terminal_width() or 0, left + right,
                          tuple(at for at, index in enumerate(kept) if index in fold),
                          floor=before)


def print_lines(lines: list[tuple[str, str]]) -> None:
    """``label  value`` lines, the labels coloured on a terminal."""
    lines = [(label, printable(value)) for label, value in lines]
    width = max((len(label) for label, _ in lines), default=0)
    if not is_terminal():
        for label, value in lines:
            click.echo(f"{label:<{width}}  {value}".rstrip())
        return
    from rich.text import Text

    out = console()
    for label, value in lines:
        line = Text()
        line.append(f"{label:<{width}}  ", style="bold cyan")
        line.append(value)
        out.print(line)


def projection_lines(view: dict[str, Any], messages_max: int) -> list[tuple[str, str]]:
    """The readable summary of a projection, as ``(label, value)`` lines."""
    lines = [
        ("session", str(view.get("session_key"))),
        ("agent", str(view.get("agent_id") or "-")),  # none left once all is forgotten
        # Nothing but forget records left: its header alone would read "active".
        ("state", "forgotten (every event of it)" if view.get("forgotten")
         else str(view.get("state"))),
        ("channel", f"{view.get('channel') or '-'} (peer {view.get('peer_id') or '-'})"),
        ("events", str(view.get("event_count"))),
        ("messages", f"{len(view.get('messages') or [])} in history, "
                     f"{view.get('message_count')} received from the peer"),
        ("last activity", time_text(view.get("last_activity")) or "-"),
        ("automerge", str(view.get("automerge_url") or "-")),
    ]
    messages = view.get("messages") or []
    shown = messages[-messages_max:] if messages_max > 0 else []
    if shown:
        lines.append(("last messages", f"{len(shown)} of {len(messages)}"))
    for message in shown:
        lines.append(("", message_line(message)))
    custom = view.get("custom_state") or {}
    if custom:
        lines.append(("custom state", ""))
    for key, value in sorted(custom.items()):
        lines.append(("", shorten(f"{key} = {compact(value)}")))
    return lines


def message_line(message: dict[str, Any]) -> str:
    """``time  role  content`` for one message of a projection."""
    role = str(message.get("role", "?"))
    content = message.get("content", "")
    if message.get("tool_name"):
        outcome = "ok" if message.get("success") else "failed"
        role = f"{role} {message['tool_name']} {outcome}"
        # A tool's result is held as compact JSON (the projection's format): a text
        # shows as in the event's line, not in JSON's quotes. (RecursionError: a hostile
        # node's JSON nested deeper than Python's parser goes, "[" x 200,000.)
        with contextlib.suppress(TypeError, ValueError, RecursionError):
            content = result_text(json.loads(content))
    return shorten(f"{time_text(message.get('timestamp'))}  {role}: {content}")
