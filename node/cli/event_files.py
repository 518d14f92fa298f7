"""The events file ``clawsync append --file`` imports: a JSON object, a JSON array (or a
page of ``GET .../events``), or JSON lines, in UTF-8; what it holds that no node takes
from a client (forgotten events, nodes' own records) left out with a note."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from crdt.kinds import written_by_nodes
from node.cli.common import InputError, note
from node.json_numbers import finite_float, refuse_constant
from node.text import NotUtf8, counted, file_text

# Python's json takes NaN, Infinity and 1e999 (as inf); no node does (node.json_numbers).
DECODER = json.JSONDecoder(parse_constant=refuse_constant, parse_float=finite_float)


def read_events(source: IO[bytes], session: str | None, agent: str
                ) -> tuple[list[dict[str, Any]], list[int]]:
    """Events from a JSON object, a JSON array or JSON lines, each with its session key
    and agent filled in from SESSION and ``--agent`` when it carries none, and each
    one's number in the file. Forgotten events and nodes' own records, as ``events
    --json`` shows them, are left out (with a note): no node takes them from a client,
    and the rest of a copy still goes."""
    name = getattr(source, "name", "the file")
    text = decoded(source.read(), name)
    events = _parse_document(text, name)
    if not events:
        raise InputError(f"{name} holds no events")
    for number, event in enumerate(events, 1):
        if not isinstance(event, dict):
            raise InputError(f"event #{number} in {name} is not a JSON object")
        if "session_key" not in event:
            if session is None:
                raise InputError(f"event #{number} in {name} has no session_key: "
                                 "give SESSION for events without one")
            event["session_key"] = session
        event.setdefault("agent_id", agent)
    numbers = [number for number, event in enumerate(events, 1)
               if not only_nodes_write(event)]
    if len(numbers) < len(events):
        note(f"left out {len(events) - len(numbers)} of the {counted(len(events), 'event')} "
             f"in {name}: "
             "forgotten ones (their content is gone) and records only nodes write "
             "(forgets, device keys, tokens)")
        if not numbers:
            raise InputError(f"{name} holds no events a client can append")
    return [events[number - 1] for number in numbers], numbers


def decoded(data: bytes, name: str) -> str:
    """``data`` as UTF-8 text, without a leading byte order mark: JSON forbids one, but
    editors write it (Windows Notepad), and the events after it are no less events.

    >>> decoded(b'\\xef\\xbb\\xbf{}', "f")
    '{}'
    >>> decoded(b'ok\\xff', "f")
    Traceback (most recent call last):
    ...
    node.cli.common.InputError: f is not UTF-8 text (its byte 3, 0xff, begins no UTF-8 character)
    """
    try:
        return file_text(data)
    except NotUtf8 as error:
        raise InputError(f"{name} is {error}") from None


def only_nodes_write(event: dict[str, Any]) -> bool:
    """Whether ``event`` (as a node's JSON shows it) is one no node takes from a client:
    a forgotten event, or a record nodes write themselves (``written_by_nodes``, with
    the node's word on whether it knows the kind)."""
    kind = event.get("kind")
    return event.get("forgotten_by") is not None or (
        isinstance(kind, dict) and written_by_nodes(str(kind.get("type")),
                                                    str(event.get("agent_id")),
                                                    event.get("known_kind") is not False))


def _parse_document(text: str, name: str) -> list[Any]:
    """One JSON document (object or array), or else JSON lines."""
    try:
        return _events_of(DECODER.decode(text))
    except json.JSONDecodeError as error:
        if text.lstrip().startswith("["):
            raise InputError(f"{name} is not valid JSON: {error}") from None
        return list(_json_lines(text, name))
    except ValueError as error:
        raise InputError(_refused_number(text, name, error)) from None


def _events_of(document: Any) -> list[Any]:
    if isinstance(document, dict) and "kind" not in document \
            and isinstance(document.get("events"), list):
        return list(document["events"])  # a page, as GET .../events answers
    return document if isinstance(document, list) else [document]


def _refused_number(text: str, name: str, error: ValueError) -> str:
    """Where a number no node takes (NaN, Infinity, 1e999) sits in JSON that is valid
    otherwise: its event's number, as Python's own ``json`` reads them."""
    try:
        events = _events_of(json.loads(text))
    except ValueError:  # JSON lines, the number on the first (later ones fail as extra data)
        first = next(number for number, line in enumerate(text.splitlines(), 1)
                     if line.strip())
        return f"line {first} of {name}: {error}"
    number = next((number for number, event in enumerate(events, 1)
                   if not _finite(event)), None)
    return f"{name}: {error}" if number is None else f"event #{number} in {name}: {error}"


def _finite(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False
    return True


def _json_lines(text: str, name: str) -> Iterator[Any]:
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield DECODER.decode(line)
            except json.JSONDecodeError as error:
                raise InputError(f"line {number} of {name} is not JSON: {error}") from None
            except ValueError as error:  # NaN, Infinity, 1e999: no node takes them
                raise InputError(f"line {number} of {name}: {error}") from None
