"""Retention: which sessions to forget because nothing happened in them for too long, and
the forget record that does it, as pure functions (``now`` is passed in).

A rule keeps sessions whose key matches a pattern (``fnmatch``, ``*`` for any text) for
some days after their last activity; the first matching rule applies, and a session no
rule matches is kept forever. Every node decides alone, so the record must be the same
on every node that holds the same session: it is a whole-session forget (``reason`` and
``by`` "retention") stamped one millisecond after the session's last activity. Its id
hashes only that, so nodes that forget a session independently write the same record
(stored once), and a node that holds it already has nothing to do.

Stamped just after the last activity it saw, the record covers exactly the events a
node judged too old; an event written later that reached this node late (a device
offline for a while) lives on, and ages out in its turn.

>>> rules = parse_rules(["tg:*=30", "*=365"])
>>> days_for("tg:alice", rules), days_for("web:bob", rules), days_for("x", ())
(30.0, 365.0, None)
>>> last = (1_000, 0, bytes(32))
>>> due("tg:alice", last, 1_000 + 29 * DAY_MS, rules) is None
True
>>> record = due("tg:alice", last, 1_000 + 31 * DAY_MS, rules)
>>> record.timestamp.ms, record.payload["reason"], record == retention_record("tg:alice", last)
(1001, 'retention', True)
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable
from dataclasses import dataclass

from crdt.clock import Hlc
from crdt.events import Event
from crdt.log import forget

DAY_MS = 86_400_000
#: ``reason`` and ``by`` of the records retention writes.
REASON = "retention"
#: Longest retention a rule may give (days): about 27,000 years, far inside the clock.
DAYS_MAX = 10_000_000

SortKey = tuple[int, int, bytes]


@dataclass(frozen=True, slots=True)
class Rule:
    """Keep sessions whose key matches ``pattern`` for ``days`` after their last activity."""

    pattern: str
    days: float


def parse_rules(values: Iterable[str]) -> tuple[Rule, ...]:
    """Rules from ``PATTERN=DAYS`` texts, in order; ``ValueError`` saying what is wrong.

    >>> parse_rules(["tg:*=0.5"])
    (Rule(pattern='tg:*', days=0.5),)
    >>> parse_rules(["tg:*"])
    Traceback (most recent call last):
    ValueError: retain-days 'tg:*': give PATTERN=DAYS, e.g. 'tg:*=30'
    """
    rules = []
    for value in values:
        pattern, sep, days_text = str(value).rpartition("=")
        if not sep or not pattern:
            raise ValueError(f"retain-days {value!r}: give PATTERN=DAYS, e.g. 'tg:*=30'")
        try:
            days = float(days_text)
        except ValueError:
            days = math.nan
        if not 0 < days <= DAYS_MAX:
            raise ValueError(f"retain-days {value!r}: DAYS must be a number above 0 and at "
                             f"most {DAYS_MAX}")
        rules.append(Rule(pattern, days))
    return tuple(rules)


def days_for(session_key: str, rules: Iterable[Rule]) -> float | None:
    """The days ``session_key`` is kept after its last activity; None: forever."""
    for rule in rules:
        if fnmatch.fnmatchcase(session_key, rule.pattern):
            return rule.days
    return None


def retention_record(session_key: str, last: SortKey) -> Event:
    """The forget record retention writes for a session whose newest event is ``last``:
    the same bytes on every node."""
    draft = forget.forget(session_key, reason=REASON, by=REASON)
    return draft.seal(Hlc(last[0] + 1, 0))


def due(session_key: str, last: SortKey | None, now_ms: int,
        rules: Iterable[Rule]) -> Event | None:
    """The record that forgets ``session_key`` if its last activity (``last``, the sort
    key of its newest event; None: no events) is older than its rule allows at
    ``now_ms``; else None."""
    days = days_for(session_key, rules)
    if days is None or last is None or now_ms - last[0] <= days * DAY_MS:
        return None
    return retention_record(session_key, last)
