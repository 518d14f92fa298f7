"""Named cursors for bridges: where a source that feeds the node (an OpenClaw state
folder) has been read up to, kept by the node so that a bridge restarted anywhere resumes
where it stopped.

A cursor is a small map of names to non-negative integers (for OpenClaw: a session's
last imported sequence number or byte offset). It is stored beside the peer checkpoints
(``k`` records, ``crdt.log.records``) under ``cursor:<name>``, a prefix no peer key has.

>>> from crdt.log.store import EventStore
>>> store = EventStore.open("memory:")
>>> save_cursor(store, "openclaw:ab12:main", {"db:s1": 7})
>>> read_cursor(store, "openclaw:ab12:main"), read_cursor(store, "other")
({'db:s1': 7}, None)
>>> save_cursor(store, "no spaces", {})
Traceback (most recent call last):
crdt.errors.InvalidInput: name: may hold only letters, digits and . _ : - (1 to 128 of them)

A save may be made on the condition that the cursor still holds what was read of it,
named by its tag (``cursor_tag``): a reader that saves where it has read up to does not
overwrite what another wrote meanwhile.

>>> read = cursor_tag({"db:s1": 7})
>>> save_cursor(store, "openclaw:ab12:main", {"db:s1": 9}, if_tags={read})
>>> save_cursor(store, "openclaw:ab12:main", {"db:s1": 8}, if_tags={read})
Traceback (most recent call last):
crdt.errors.CursorChanged: the cursor 'openclaw:ab12:main' is no longer as read (tag ...
>>> read_cursor(store, "openclaw:ab12:main")
{'db:s1': 9}
>>> store.close()
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from typing import Any

from crdt import codec
from crdt.errors import CursorChanged, InvalidInput, LimitExceeded
from crdt.keys import check_name
from crdt.log.store import EventStore

#: A cursor's name: what a URL path carries without escaping.
NAME = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Entries one cursor holds at most (an OpenClaw agent: one per session).
CURSOR_ENTRIES_MAX = 20_000
#: A cursor's encoded size at most (CBOR): bounded, as every stored thing is.
CURSOR_BYTES_MAX = 1024 * 1024
#: Largest value: SQLite's integer range.
VALUE_MAX = 2**63 - 1
#: Characters of an entry a refusal shows (``shown_entry``): enough to tell which it is.
ENTRY_SHOWN_CHARS = 60
#: A cursor's tag: this many bytes of the BLAKE2b hash of its canonical CBOR, in hex.
TAG_BYTES = 8
PREFIX = "cursor:"


def check_cursor_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidInput("may hold only letters, digits and . _ : - (1 to 128 of them)",
                           field="name")
    return name


def check_cursor(value: Any) -> dict[str, int]:
    """A cursor from outside: an object of names to integers within the limits."""
    if not isinstance(value, dict):
        raise InvalidInput("must be an object of names to integers", field="cursor")
    if len(value) > CURSOR_ENTRIES_MAX:
        raise LimitExceeded(f"holds {len(value)} entries; the limit is {CURSOR_ENTRIES_MAX}",
                            field="cursor")
    for entry, number in value.items():
        try:
            check_name(entry, "cursor")
        except InvalidInput as error:  # "is 300 bytes" alone reads as the whole cursor's
            raise type(error)(f"an entry's name {error.reason} ({shown_entry(entry)})",
                              field="cursor") from None
        if isinstance(number, bool) or not isinstance(number, int) \
                or not 0 <= number <= VALUE_MAX:
            raise InvalidInput(f"{entry!r} must be an integer from 0 to {VALUE_MAX}",
                               field="cursor")
    size = len(codec.encode_fast(value))
    if size > CURSOR_BYTES_MAX:
        raise LimitExceeded(f"is {size} bytes encoded; the limit is {CURSOR_BYTES_MAX}",
                            field="cursor")
    return value


def shown_entry(entry: object) -> str:
    """Cursor ``entry`` as a refusal names it: quoted, control characters escaped, cut
    to ``ENTRY_SHOWN_CHARS`` characters (a refused one may be far longer).

    >>> shown_entry("jsonl:s1"), len(shown_entry("x" * 100)), shown_entry("x" * 100)[-3:]
    ("'jsonl:s1'", 63, "x'…")
    >>> print(shown_entry("a" + chr(1)))
    'a\\x01'
    """
    if not isinstance(entry, str):
        return repr(entry)[:ENTRY_SHOWN_CHARS]
    if len(entry) <= ENTRY_SHOWN_CHARS:
        return repr(entry)
    return repr(entry[:ENTRY_SHOWN_CHARS]) + "…"


def cursor_tag(value: dict[str, int]) -> str:
    """The tag of a cursor's value: the same for equal values, whatever their order."""
    return hashlib.blake2b(codec.encode(value), digest_size=TAG_BYTES).hexdigest()


def save_cursor(store: EventStore, name: str, value: dict[str, int], *,
                if_tags: Collection[str] | None = None, if_saved: bool | None = None) -> None:
    """Check and store the cursor ``name`` (replacing what was there); with ``if_tags``,
    only if what is there has one of those tags; with ``if_saved`` True only if one is
    there (any), False only if none is; else ``CursorChanged`` and nothing is saved
    (checked in the transaction that saves it: no other save comes between)."""
    check_cursor_name(name)
    checked = check_cursor(value)
    conditional = if_tags is not None or if_saved is not None

    def unchanged(held: dict[str, int] | None) -> None:
        if held is None:
            if if_tags is not None or if_saved:
                raise CursorChanged(f"the cursor {name!r} is no longer as read: none is saved")
            return
        if if_saved is False:
            raise CursorChanged(f"the cursor {name!r} is no longer as read: none was saved, "
                                f"and it holds a value now (tag {cursor_tag(held)})")
        if if_tags is not None and cursor_tag(held) not in if_tags:
            raise CursorChanged(f"the cursor {name!r} is no longer as read (tag "
                                f"{', '.join(sorted(if_tags))}): it holds another value "
                                f"(tag {cursor_tag(held)})")

    store.save_checkpoint(PREFIX + name, checked, unchanged if conditional else None)


def read_cursor(store: EventStore, name: str) -> dict[str, int] | None:
    """The cursor last saved under ``name``, or None."""
    return store.checkpoint(PREFIX + check_cursor_name(name))
