"""The cheap checks ``Event.from_canonical`` tries first (``crdt.events``): names, with the
encodings of those it took kept (``parse_event`` takes a name known there without
checking it again), and whether a kind's validators take plain values only."""

from __future__ import annotations

from typing import TypeGuard

from crdt import codec
from crdt.keys import is_name
from crdt.kinds import KINDS, Validator


def encoded_name(value: object, bytes_max: int, known: dict[str, bytes]) -> bytes | None:
    """``codec.encode_text(value)`` if ``check_name`` takes ``value``, else None. A
    catch-up, and a client's appends, repeat a few kinds, agents and session keys many
    times: ``known`` keeps the encodings of the names it took with this ``bytes_max``.

    >>> known: dict[str, bytes] = {}
    >>> encoded_name("main", 64, known), known
    (b'dmain', {'main': b'dmain'})
    >>> encoded_name("a\\nb", 64, known) is None, encoded_name("x" * 65, 64, known) is None
    (True, True)
    """
    if type(value) is not str:
        return None
    encoded = known.get(value)
    if encoded is None:
        if not _is_name(value, bytes_max):
            return None
        if len(known) >= NAMES_KEPT_MAX:
            known.clear()
        encoded = known[value] = codec.encode_text(value)
    return encoded


#: Names taken by ``encoded_name``, by the limit they were checked with: kinds and
#: agent ids, and session keys. Each holds at most ``NAMES_KEPT_MAX`` names, and starts
#: again empty when full: full of names at their limits, with their encodings, NAMES
#: takes about 1.3 MiB and SESSION_KEYS about 2.3 MiB (tracemalloc, with text of one to
#: four bytes a character). Events read back or caught up from peers fill them, and so
#: do a client's appends (``parse_event``), those refused later too: a client that
#: goes through more names than that empties them again and again, which costs speed,
#: never a wrong answer. ``crdt.events`` binds both once: clear them, never rebind them.
NAMES: dict[str, bytes] = {}
SESSION_KEYS: dict[str, bytes] = {}
NAMES_KEPT_MAX = 2048


def _is_name(value: object, bytes_max: int) -> TypeGuard[str]:
    """Whether ``check_name`` takes ``value``; printable ASCII is told at once."""
    if type(value) is not str:
        return False
    if value.isascii():  # then a control character is what is not printable
        return 0 < len(value) <= bytes_max and value.isprintable()
    return is_name(value, bytes_max=bytes_max)


def plain_only(kind: str) -> bool:
    """Whether the validators of ``kind`` refuse what ``codec.check_plain`` refuses
    (types other than JSON-like ones and bytes, keys other than text): those of
    ``crdt.kinds`` do, with the depth that ``crdt.events._from_canonical_quickly``
    decodes at. A kind registered with validators of its own takes the long way.

    >>> plain_only("message_received"), plain_only("not_registered")
    (True, True)
    """
    spec = KINDS.get(kind)
    if spec is None:  # every field a JSON value
        return True
    known = _PLAIN_ONLY.get(kind)
    if known is None or known[0] is not spec:
        known = (spec, all(getattr(check, "__module__", None) == "crdt.kinds"
                           for check in spec.values()))
        _PLAIN_ONLY[kind] = known
    return known[1]


_PLAIN_ONLY: dict[str, tuple[dict[str, Validator], bool]] = {}
