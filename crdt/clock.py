"""Hybrid logical clock: wall-clock milliseconds plus a counter.

A node stamps the events it originates with ``Clock.now``. Timestamps only grow on one
node, even when the wall clock steps back, so a session's events keep their causal order
there. Timestamps that arrive from clients or peers are passed to ``Clock.observe`` so
that the next local event sorts after them, but a remote timestamp may drag the local
clock at most ``drift_max_ms`` ahead of our wall clock: a peer whose clock is hours fast
must not push every later event on this node hours into the future.

The same bound holds three ways (``drift_max_ms``, ``[limits] clock_drift_max_ms``):

* a timestamp further ahead of our wall clock than the bound is not stored at all
  (``Clock.ahead``): from a client it is refused, from a peer it waits until our wall
  clock has caught up (the store and the peer protocol apply the rule);
* a remote timestamp moves the local clock at most that far ahead (``observe``);
* the local clock itself never leads the wall clock by more (``now``): when the wall
  clock was fast and has been put right (or the node restarts on a corrected clock), the
  clock starts again from the wall clock instead of stamping the future for hours.

That last rule gives up strict monotony after such a step back. The log needs none: a
stored event's place is its position and its (origin, seq), both counted apart from time.
What it needs is that a new event is not mistaken for an old one of the same content
(ids hash the timestamp), and only timestamps at or below the highest one issued before
the step back (``Clock.high``) can repeat: the store checks those (``may_repeat``).
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

from crdt.errors import InvalidInput, NotATime, TimestampAhead

#: Largest counter value. 2**32 keeps a timestamp two small integers in every language.
COUNTER_MAX = 2**32 - 1
#: Timestamps must fall between 1970 and 9999-12-31, so they print as RFC 3339.
MS_MAX = 253_402_300_799_999
#: How far ahead of our wall clock a remote timestamp may move the local clock (1 minute).
#: Larger tolerates worse-synchronised devices; smaller limits how far a fast clock skews
#: the order of events that follow it.
DRIFT_MAX_MS = 60_000


class Hlc(NamedTuple):
    """A hybrid-logical-clock timestamp; tuples order them correctly.

    >>> Hlc(5, 0) < Hlc(5, 1) < Hlc(6, 0)
    True
    >>> Hlc.parse_rfc3339("2024-01-01T12:00:00.123456789Z")
    Hlc(ms=1704110400123, counter=456789)
    """

    ms: int
    counter: int

    def check(self, field: str = "timestamp") -> Hlc:
        """Return self if both parts are in range, else raise ``InvalidInput``."""
        for part, high in ((self.ms, MS_MAX), (self.counter, COUNTER_MAX)):
            if isinstance(part, bool) or not isinstance(part, int) or not 0 <= part <= high:
                raise InvalidInput(f"must be [ms, counter] with 0 <= ms <= {MS_MAX} and "
                                   f"0 <= counter <= {COUNTER_MAX}", field=field)
        return self

    def rfc3339(self) -> str:
        """The wall-clock part as RFC 3339 with millisecond precision, in UTC.

        >>> Hlc(1_700_000_000_123, 0).rfc3339()
        '2023-11-14T22:13:20.123Z'
        """
        return _second_text(self.ms // 1000) + f"{self.ms % 1000:03d}Z"

    @classmethod
    def parse_rfc3339(cls, text: str, field: str = "timestamp") -> Hlc:
        """Parse an RFC 3339 time. Digits beyond the millisecond become the counter
        (as nanoseconds within that millisecond) so that sub-millisecond order from
        the seed's chrono timestamps survives import."""
        match = _RFC3339.fullmatch(text)
        if match is None:
            raise NotATime("not an RFC 3339 time with a zone "
                           "(like 2026-01-31T12:00:00.123Z)", field=field)
        year, month, day, hour, minute, second, frac, zone = match.groups()
        if zone in ("Z", "z"):
            offset = timedelta(0)
        else:
            hours, minutes = int(zone[1:3]), int(zone[4:6])
            if hours > 23 or minutes > 59:
                raise InvalidInput("zone offset out of range", field=field)
            sign = -1 if zone[0] == "-" else 1
            offset = sign * timedelta(hours=hours, minutes=minutes)
        try:
            moment = datetime(int(year), int(month), int(day), int(hour), int(minute),
                              int(second), tzinfo=timezone(offset))
            seconds = int(moment.timestamp())
        except (ValueError, OverflowError):
            raise InvalidInput("not a valid date and time", field=field) from None
        nanos = int((frac or "").ljust(9, "0"))
        return cls(seconds * 1000 + nanos // 1_000_000, nanos % 1_000_000).check(field)


# RFC 3339 section 5.6, without leap seconds (no clock we take input from emits them).
# Python's fromisoformat would also take ISO 8601 forms that RFC 3339 does not allow,
# such as week dates or missing seconds.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


#: The earliest timestamp: the clock of a new node.
HLC_ZERO = Hlc(0, 0)


def wall_ms() -> int:
    """Milliseconds since the Unix epoch, from the system clock."""
    return time.time_ns() // 1_000_000


@dataclass
class Clock:
    """The node's hybrid logical clock. Not thread-safe: one writer owns it (``ahead``
    and ``check_ahead`` read only the bound, so any thread may call them).

    >>> clock = Clock(last=Hlc(1000, 0))
    >>> clock.now(wall=999)      # wall clock stepped back: the counter moves instead
    Hlc(ms=1000, counter=1)
    >>> clock.observe(Hlc(10**6, 0), wall=1000)   # too far ahead: dragged at most drift_max_ms
    >>> clock.last
    Hlc(ms=61000, counter=0)
    >>> clock.now(wall=500)   # the wall clock stepped back further than drift_max_ms
    Hlc(ms=500, counter=0)
    >>> clock.may_repeat(Hlc(500, 0)), clock.high
    (True, Hlc(ms=61000, counter=0))
    """

    last: Hlc = HLC_ZERO
    drift_max_ms: int = DRIFT_MAX_MS
    #: The highest timestamp issued or observed before the clock last started again from
    #: the wall clock (``HLC_ZERO`` if it never did): timestamps up to it may repeat.
    high: Hlc = HLC_ZERO

    @property
    def high_water(self) -> Hlc:
        """The highest timestamp ever issued or observed: what the store persists, so that
        a restart knows both where the clock stood and which timestamps may repeat."""
        return max(self.last, self.high)

    def ahead(self, timestamp: Hlc, wall: int | None = None) -> bool:
        """True if ``timestamp`` lies more than drift_max_ms ahead of the wall clock: an
        event with it must not be stored now (it would sort after everything for that
        long, and win every last-writer-wins field)."""
        wall = wall_ms() if wall is None else wall
        return timestamp.ms - wall > self.drift_max_ms

    def check_ahead(self, timestamp: Hlc, field: str = "timestamp") -> None:
        """Raise ``TimestampAhead`` (naming ``field``) if ``ahead(timestamp)``."""
        wall = wall_ms()
        if self.ahead(timestamp, wall):
            raise TimestampAhead(
                f"{timestamp.rfc3339()} is more than {self.drift_max_ms} ms ahead of this "
                f"node's clock ({Hlc(wall, 0).rfc3339()})", field=field,
                bound_ms=self.drift_max_ms, clock_ms=wall)

    def may_repeat(self, timestamp: Hlc) -> bool:
        """True if ``now`` may have issued ``timestamp`` before (it lies at or below the
        high mark of a clock that started again from the wall clock)."""
        return timestamp <= self.high

    def now(self, wall: int | None = None) -> Hlc:
        """A new timestamp greater than every one issued or observed so far, unless the
        clock had run more than drift_max_ms ahead of the wall clock: then the wall
        clock's time (see the module docstring)."""
        wall = wall_ms() if wall is None else wall
        self.settle(wall)
        if wall > self.last.ms:
            self.last = Hlc(wall, 0)
        elif self.last.counter < COUNTER_MAX:
            self.last = Hlc(self.last.ms, self.last.counter + 1)
        else:  # a counter overflow borrows the next millisecond rather than failing
            self.last = Hlc(self.last.ms + 1, 0)
        return self.last

    def observe(self, remote: Hlc, wall: int | None = None) -> None:
        """Move the clock up to ``remote``, but no further than drift_max_ms past ``wall``."""
        wall = wall_ms() if wall is None else wall
        self.settle(wall)
        ceiling = Hlc(wall + self.drift_max_ms, 0)
        self.last = max(self.last, min(remote, ceiling))

    def settle(self, wall: int | None = None) -> None:
        """Start again from the wall clock if the clock leads it by more than the bound:
        the wall clock was fast and has been put right. ``now`` and ``observe`` call it;
        the store also does on opening, so that a restart on a corrected clock starts
        right."""
        wall = wall_ms() if wall is None else wall
        if self.last.ms - wall > self.drift_max_ms:
            self.high = self.high_water
            # Just before the wall clock, so that the next timestamp is (wall, 0).
            self.last = Hlc(wall - 1, COUNTER_MAX) if wall > 0 else HLC_ZERO


@functools.lru_cache(maxsize=4096)
def _second_text(second: int) -> str:
    """The second ``second`` as RFC 3339 up to its dot. Cached: a session's events
    crowd into few seconds, and formatting dominated building a document from the log."""
    return datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")
