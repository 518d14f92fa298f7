"""How long an address where another device answered our dial is held off
(``Learning.answered_by``), the records of such holds, and the clock they and the
hold-offs of forgotten addresses count in (``awake_s``, which goes on while the machine
sleeps).

A member's address where another device (no member, or a removed one) answers is not
dialed again for ``ANSWERED_BY_HOLD_ROUNDS`` members rounds, or ``ANSWERED_BY_HOLD_S``
seconds if sooner, unless something shows the hold is over (``node.peers.learning``).
"""

from __future__ import annotations

import time
from typing import NamedTuple

from crdt.membership import Member

#: Members rounds (every ``members_interval_s``, and one at each membership change) for
#: which an address where another device answered our dial is not dialed again, then
#: dialed once more (``answered_by``): ten minutes at the default 30 s.
ANSWERED_BY_HOLD_ROUNDS = 20
#: Seconds (counted while the machine sleeps too) after which such an address is dialed
#: once more, however few rounds went by: a long ``members_interval_s`` would hold it
#: off for days.
ANSWERED_BY_HOLD_S = 600.0
#: What is logged when a member's address is held so, the first time for its record.
HELD_TEXT = (
    "member's address answered by another device; not dialed there again until its "
    "record changes, a link with it comes up or the device there is a member, and for "
    f"{ANSWERED_BY_HOLD_ROUNDS} members rounds or {ANSWERED_BY_HOLD_S / 60:g} minutes "
    "at most, whichever ends first")


class Hold(NamedTuple):
    """Until when an address where another device answered is not dialed again: the
    members round, and the time (``awake_s``), whichever comes first."""

    round: int
    at_s: float


class Held(NamedTuple):
    """A member's record whose address another device answered at, that device, and
    the hold (``Learning.answered_by``)."""

    member: Member
    device: str
    until: Hold


class Answered(NamedTuple):
    """The device that answered our dial of an address, and the hold."""

    device: str
    until: Hold


#: A clock that goes on while the machine sleeps (Linux's boot time; the monotonic clock
#: elsewhere): a hold-off of learned addresses is of the world's time, not of this
#: process's, or a laptop asleep most of the day would hold one for days.
_AWAKE_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def awake_s() -> float:
    return time.clock_gettime(_AWAKE_CLOCK)


def hold_from(rounds: int) -> Hold:
    """A hold that ends ``ANSWERED_BY_HOLD_ROUNDS`` rounds after members round
    ``rounds``, or ``ANSWERED_BY_HOLD_S`` seconds from now, whichever comes first."""
    return Hold(rounds + ANSWERED_BY_HOLD_ROUNDS, awake_s() + ANSWERED_BY_HOLD_S)


def holds(until: Hold, rounds: int) -> bool:
    """Whether the hold ``until`` still runs at members round ``rounds``, now."""
    return rounds < until.round and awake_s() < until.at_s
