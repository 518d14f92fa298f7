"""Text from elsewhere made safe to print on a terminal: kept in a module of its own,
without imports, so that the HTTP client (``node.client``) escapes a node's words where
it receives them, and the commands (``node.cli.output``) the content they print.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Iterable
from typing import Any

#: C0 and C1 control characters and DEL: a terminal obeys escape sequences made of them.
#: Then Unicode's bidirectional controls (the Arabic letter mark, the left-to-right and
#: right-to-left marks, embeddings, overrides and isolates): a terminal that reorders
#: text by them shows it in another order than it is read (a name shown as another's,
#: words after them shown before). Not every format character (category Cf): the zero
#: width joiner, U+200D, joins the emoji of a name, and changes no order.
BIDI_CONTROLS = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROLS = re.compile(rf"[\x00-\x1f\x7f-\x9f{BIDI_CONTROLS}]")


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, which agree: "1 event", "2 events" (``plural`` where an
    added "s" is not it).

    >>> counted(1, "event"), counted(0, "session"), counted(2, "record or file",
    ...                                                     "records or files")
    ('1 event', '0 sessions', '2 records or files')
    """
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


#: How many close words a "did you mean" names at most, and how close each must be
#: (``difflib``'s ratio: 0.6, its default, takes "prot" for "port").
CLOSE_WORDS_MAX = 3
CLOSE_WORDS_CUTOFF = 0.6


def did_you_mean(word: str, words: Iterable[str]) -> str | None:
    """"did you mean ...?" with those of ``words`` that look like ``word`` (a typo), or
    None when none does (a caller then lists them, or says how to).

    >>> did_you_mean("prot", ["port", "host", "peers"])
    "did you mean 'port'?"
    >>> did_you_mean("tg:alce", ["tg:alice", "tg:alicia", "dc:bob"])
    "did you mean 'tg:alice' or 'tg:alicia'?"
    >>> did_you_mean("zzz", ["port"]) is None
    True
    >>> did_you_mean("TG:ALICE", ["tg:alice", "dc:bob"])
    "did you mean 'tg:alice'?"
    """
    close = close_words(word, words)
    if not close:
        return None
    return printable("did you mean " + " or ".join(repr(name) for name in close) + "?")


def close_words(word: str, words: Iterable[str]) -> list[str]:
    """Those of ``words`` that look like ``word``, the closest first, at most
    ``CLOSE_WORDS_MAX``: what ``did_you_mean`` names.

    >>> close_words("tg:alce", ["dc:bob", "tg:alicia", "tg:alice"])
    ['tg:alice', 'tg:alicia']
    """
    from difflib import get_close_matches  # only when asked: most commands never are

    # Compared case-folded: a key typed with caps lock on differs from the one meant in
    # every letter, and difflib alone finds nothing like it.
    by_folded: dict[str, list[str]] = {}
    for one in words:
        by_folded.setdefault(one.casefold(), []).append(one)
    return [one for folded in get_close_matches(word.casefold(), list(by_folded),
                                                n=CLOSE_WORDS_MAX, cutoff=CLOSE_WORDS_CUTOFF)
            for one in by_folded[folded]][:CLOSE_WORDS_MAX]


#: A key TOML writes bare; any other is quoted.
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def as_written(value: Any) -> str:
    """A value read from a TOML file (``tomllib``), spelled as the file wrote it, for a
    message that refuses it: ``true``, ``inf`` and ``nan``, a date unquoted, not
    Python's ``True``, JSON's ``Infinity`` or a string's quotes.

    >>> [as_written(value) for value in (True, 5, 0.5, float("-inf"), float("nan"), "5")]
    ['true', '5', '0.5', '-inf', 'nan', '"5"']
    >>> as_written([datetime.date(1979, 5, 27), {"a b": float("inf"), "c": None}])
    '[1979-05-27, {"a b" = inf, c = null}]'
    >>> as_written(datetime.datetime(1979, 5, 27, 7, 32, tzinfo=datetime.UTC))
    '1979-05-27T07:32:00Z'
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    if isinstance(value, (datetime.date, datetime.time)):  # a datetime is a date
        # As TOML writes it, not as a person reads it (``utc_text``): with ``Z``, as a
        # file writes it, rather than Python's ``+00:00``.
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, list):
        return "[" + ", ".join(as_written(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(
            f"{key if _BARE_KEY.fullmatch(key) else json.dumps(key)} = {as_written(item)}"
            for key, item in value.items()) + "}"
    return json.dumps(value)  # a number, or a string in quotes (None: not TOML's)


def printable(text: str) -> str:
    """``text`` with each control character shown as an escape (``\\x1b``, or ``\\u202e``
    for a bidirectional one): content comes from whoever can write to a session, or from
    a node (its error messages), and printed raw, an escape sequence in it would retitle,
    clear or rewrite the reader's terminal, and a direction override reorder what it
    shows. Escaping twice changes nothing more.

    >>> printable("T\\x1b]0;PWNED\\x07")
    'T\\\\x1b]0;PWNED\\\\x07'
    >>> printable("file\\u202egpj.exe")
    'file\\\\u202egpj.exe'
    >>> printable("\\U0001f469\\u200d\\U0001f4bb") == "\\U0001f469\\u200d\\U0001f4bb"
    True
    >>> printable(printable("a\\nb")) == printable("a\\nb")
    True
    """
    return _CONTROLS.sub(_escaped, text)


def without_controls(text: str) -> str:
    """``text`` without the control characters ``printable`` escapes, for a line of the
    log or a status where an escape would be noise (a peer's refusal): the same ones
    taken out, the zero width joiner of an emoji kept.

    >>> without_controls("no\x1b[2Jpe\u202e \U0001f469\u200d\U0001f4bb")
    'no[2Jpe \U0001f469\u200d\U0001f4bb'
    """
    return _CONTROLS.sub("", text)


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code <= 0xff else f"\\u{code:04x}"


#: The UTF-8 byte order mark, which editors write at a file's start (Windows Notepad).
UTF8_BOM = b"\xef\xbb\xbf"


def bom_length(data: bytes) -> int:
    """How many of the first bytes of ``data`` are a UTF-8 byte order mark: 3, or 0. A
    file read as UTF-8 text is read past them (JSON and TOML forbid one, but editors
    write it); a body sent over a network is refused for one.

    >>> bom_length(b"\\xef\\xbb\\xbf{}"), bom_length(b"{}")
    (3, 0)
    """
    return len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0


def not_utf8(error: UnicodeDecodeError, skipped: int = 0) -> str:
    """Where bytes that were to be UTF-8 text are not, for an error line that names
    their file: the first byte that begins no UTF-8 character, counted from 1 (and from
    the file's start: ``skipped`` bytes before what was decoded, a byte order mark).

    >>> try:
    ...     b"ok\\xff".decode("utf-8")
    ... except UnicodeDecodeError as error:
    ...     not_utf8(error, skipped=3)
    'not UTF-8 text (its byte 6, 0xff, begins no UTF-8 character)'
    """
    return (f"not UTF-8 text (its byte {skipped + error.start + 1}, "
            f"0x{error.object[error.start]:02x}, begins no UTF-8 character)")


class NotUtf8(ValueError):
    """A file's bytes are not UTF-8 text: its text says where (``not_utf8``)."""


def file_text(data: bytes) -> str:
    """``data``, a file's bytes, as UTF-8 text (whatever the locale says), read past a
    leading byte order mark (``bom_length``); ``NotUtf8`` saying where they are not,
    counted from the file's start. ``append --file``, ``serve --config`` and
    ``--automerge-tokens`` read their files with it.

    >>> file_text(b"\\xef\\xbb\\xbf{}")
    '{}'
    >>> file_text(b"\\xef\\xbb\\xbfok\\xff")
    Traceback (most recent call last):
    ...
    node.text.NotUtf8: not UTF-8 text (its byte 6, 0xff, begins no UTF-8 character)
    """
    skipped = bom_length(data)
    try:
        return data[skipped:].decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotUtf8(not_utf8(error, skipped=skipped)) from None


def utc_text(moment: datetime.datetime) -> str:
    """``moment`` as the node and its commands write times to people, in every table and
    line: in UTC, to the second, a space between the date and the clock (easier to scan
    than ISO's ``T``), with ``Z`` (not ``+00:00``, nor ``UTC``). Output a program reads
    (``--json``, a log line's fields) keeps the time as the node gives it.

    >>> utc_text(datetime.datetime(2030, 4, 2, 0, 0, 59, 999_000, tzinfo=datetime.UTC))
    '2030-04-02 00:00:59Z'
    """
    return _utc_iso(moment, sep=" ", timespec="seconds")


def log_time(moment: datetime.datetime) -> str:
    """``moment`` as a log line's field that is a time: ISO 8601 in UTC with ``Z``, as
    the line's own ``timestamp`` (structlog's, UTC) and the node's answers
    (``crdt.clock.Hlc.rfc3339``) write it, not Python's ``+00:00`` (a program that reads
    the log finds every time in one spelling).

    >>> log_time(datetime.datetime(2030, 4, 2, 2, 0, tzinfo=datetime.timezone(
    ...     datetime.timedelta(hours=2))))
    '2030-04-02T00:00:00Z'
    """
    return _utc_iso(moment)


def _utc_iso(moment: datetime.datetime, *, sep: str = "T", timespec: str = "auto") -> str:
    """``moment`` in UTC as ``isoformat`` writes it, with ``Z`` for its ``+00:00``."""
    return moment.astimezone(datetime.UTC).isoformat(sep=sep, timespec=timespec) \
        .replace("+00:00", "Z")


def time_text(timestamp: object) -> str:
    """A time as a node gives it (RFC 3339 text, ``2026-12-07T18:52:39.613Z``) as
    ``utc_text`` writes it; one that is no such time (without its offset, or not a time
    at all) as it came, and nothing as nothing.

    >>> time_text("2026-12-07T18:52:39.613Z"), time_text("2026-12-07T19:52:39+01:00")
    ('2026-12-07 18:52:39Z', '2026-12-07 18:52:39Z')
    >>> time_text("yesterday"), time_text("2026-12-07T18:52:39"), time_text(None)
    ('yesterday', '2026-12-07T18:52:39', '')

    One whose UTC falls off the calendar (no node gives it; a mangled answer may) comes
    as it came too:

    >>> time_text("0001-01-01T00:30:00+01:00")
    '0001-01-01T00:30:00+01:00'
    """
    if timestamp is None:
        return ""
    text = str(timestamp)
    try:
        moment = datetime.datetime.fromisoformat(text)
        # No offset: a time no node gives, not taken for this machine's.
        return text if moment.tzinfo is None else utc_text(moment)
    except (ValueError, OverflowError):  # no time; one before year 1 or after 9999 in UTC
        return text
