"""A node's refusal of events dated too far ahead of its clock, as the OpenClaw bridge
meets it (``node.openclaw.bridge``): recognised over HTTP or from a data folder opened
here, when to try the record again, and what to say of it while it waits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard

from crdt.clock import MS_MAX, Hlc
from crdt.errors import InvalidInput, TimestampAhead
from crdt.events import Event
from node.client.errors import ClientError
from node.openclaw.pace import (
    AHEAD_PLAUSIBLE_MAX_S,
    AHEAD_RETRY_MAX_S,
    AHEAD_RETRY_MIN_S,
    days_said,
)
from node.openclaw.source import Record

#: The node's words refusing a time (``crdt.clock.Clock.check_ahead``): its bound and
#: its clock, read from them only when the refusal does not give them as numbers (a node
#: older than ``TimestampAhead.bound_ms``).
_AHEAD = re.compile(r"more than (\d+) ms ahead of this node's clock \(([^)]+)\)")


@dataclass(frozen=True)
class Refusal:
    """The node's refusal of an event dated too far ahead of its clock."""

    said: str  # its words
    clock: tuple[int, int] | None  # its bound (ms) and clock (ms), if it says them

    def beyond_waiting(self, events: list[Event]) -> bool:
        """Whether ``events`` are dated more than ``AHEAD_PLAUSIBLE_MAX_S`` beyond what
        the node takes: a wrong timestamp or clock, which waiting will not mend (unknown,
        from a refusal that does not say the node's clock: False)."""
        due_ms = self.due_ms(events)
        return due_ms is not None and due_ms > AHEAD_PLAUSIBLE_MAX_S * 1000

    def due_ms(self, events: list[Event]) -> int | None:
        """How long (ms) until the node's clock should take ``events``: the latest of
        them less the node's bound and clock (None if the refusal does not say them)."""
        if self.clock is None:
            return None
        bound_ms, node_ms = self.clock
        return max(event.timestamp.ms for event in events) - bound_ms - node_ms


def node_clock(error: ClientError | TimestampAhead) -> tuple[int, int] | None:
    """The node's bound (ms) and clock (ms) from its refusal: the numbers it gives
    (``bound_ms``, ``clock_ms``), else read from its words; None if it says neither."""
    if isinstance(error, TimestampAhead):
        return error.bound_ms, error.clock_ms
    bound_ms, clock_ms = error.details.get("bound_ms"), error.details.get("clock_ms")
    if _whole(bound_ms) and _whole(clock_ms):
        return bound_ms, clock_ms
    said = _AHEAD.search(str(error))
    if said is None:
        return None
    try:
        return int(said.group(1)), Hlc.parse_rfc3339(said.group(2)).ms
    except InvalidInput:
        return None


def _whole(value: object) -> TypeGuard[int]:
    """A number of ms as a node gives one (JSON's ``true`` is no number)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MS_MAX


def retry_s(events: list[Event], refused: Refusal) -> float:
    """Seconds until the node's clock should take ``events`` (the latest of them less
    the node's bound), within ``AHEAD_RETRY_MIN_S`` and ``AHEAD_RETRY_MAX_S``."""
    due_ms = refused.due_ms(events)
    if due_ms is None:
        return AHEAD_RETRY_MAX_S
    return min(AHEAD_RETRY_MAX_S, max(AHEAD_RETRY_MIN_S, due_ms / 1000))


def refused_time(error: ClientError | InvalidInput) -> Refusal | None:
    """The node's refusal of an event dated too far ahead of its clock (over HTTP, or by
    a data folder opened here); None for any other error."""
    if isinstance(error, TimestampAhead) or (
            isinstance(error, ClientError) and error.code == TimestampAhead.code):
        return Refusal(str(error), node_clock(error))
    return None


def said_waiting(record: Record, events: list[Event], refused: Refusal) -> str:
    """What to tell of a record that waits for the node's clock: which, by how much the
    clocks differ (if the node said its clock), and what happens to it."""
    dated = max(events, key=lambda event: event.timestamp).timestamp
    # Both times to the millisecond, not in the commands' one style (``node.text``,
    # to the second): what is wrong is their difference, often under a second, which
    # two times cut to the second would hide (both the same).
    if refused.clock is None:
        lead = f"ahead of the node's clock ({refused.said})"
    else:
        bound_ms, node_ms = refused.clock
        lead = (f"{(dated.ms - node_ms) / 1000:.1f} s ahead of the node's clock "
                f"({Hlc(node_ms, 0).rfc3339()}), which takes events at most {bound_ms} "
                "ms ahead")
    if refused.beyond_waiting(events):
        return (f"{record.where}: dated {dated.rfc3339()}, {lead}: more than "
                f"{days_said(AHEAD_PLAUSIBLE_MAX_S)} ahead, which no clock running fast "
                "explains: the record's timestamp (or the clock of OpenClaw's machine, or "
                "the node's) is wrong, and waiting will not bring it in; the record and "
                "those after it in its session are not imported until it is fixed (set "
                "the timestamp or the clock right, or remove the record)")
    return (f"{record.where}: dated {dated.rfc3339()}, {lead}: the clock of OpenClaw's "
            "machine is fast or the node's is slow; the record and those after it in its "
            "session wait, not skipped, and are tried again until the node takes them "
            "(set the clocks right, or raise the node's [limits] clock_drift_max_ms)")


def said_moved(entry: str, waited: str, where: str) -> str:
    """What to tell of a wait (of the record at ``waited``) that ends as its session
    (cursor ``entry``) is now read on from ``where``: that record replaced by another
    there, its row deleted, or its transcript cut short or replaced."""
    place = where.rsplit(", ", 1)[-1]  # "seq 3", "line at byte 0": its file is named
    if where == waited:
        return (f"{waited}: its record was replaced by another; the wait ends, and the "
                "record there now is tried")
    if entry.startswith("db:"):
        return (f"{waited}: its row is gone (deleted); the wait ends, and its session is "
                f"read on from {place}")
    return (f"{waited}: its session is no longer read on from there (its transcript was "
            f"cut short or replaced); the wait ends, and it is read again from {place}")


def said_ended(waited: str, why: str | None) -> str:
    """What to tell of a wait (of the record at ``waited``) that ends with its record
    gone: ``why``, its session still in the store; else the session is gone."""
    if why is not None:
        return f"{waited}: {why}; the wait ends, and what was imported of its session stays"
    return (f"{waited}: its session is gone from the store (deleted or moved away); it no "
            "longer waits, and what was imported of it stays")
