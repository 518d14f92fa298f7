"""Hybrid logical clock: wall-clock milliseconds plus a counter.

A node stamps the events it originates with ``Clock.now``. Timestamps only grow on one
node, even when the wall clock steps back, so a session's events keep their causal order
there. Timestamps that arrive from clients or peers are passed to ``Clock.observe`` so
that the next local event sorts after them, but a remote timestamp may drag the local
clock at most ``drift_max_ms`` ahead of our wall clock: a peer whose clock is hours fast
must not push every later event on this node hours into the future. Its events are still
stored and delivered; they simply sort where their own timestamps put them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from crdt.errors import InvalidInput

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
        """The wall-clock part as RFC 3339 with millisecond precision, in UTC."""
        moment = datetime.fromtimestamp(self.ms / 1000, tz=UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.ms % 1000:03d}Z"

    @classmethod
    def parse_rfc3339(cls, text: str, field: str = "timestamp") -> Hlc:
        """Parse an RFC 3339 time. Digits beyond the millisecond become the counter
        (as nanoseconds within that millisecond) so that sub-millisecond order from
        the seed's chrono timestamps survives import."""
        head, frac, tail = _split_fraction(text)
        try:
            moment = datetime.fromisoformat(head + tail)
        except ValueError:
            raise InvalidInput("not an RFC 3339 time", field=field) from None
        if moment.tzinfo is None:
            raise InvalidInput("RFC 3339 time needs a zone (Z or +hh:mm)", field=field)
        nanos = int((frac + "000000000")[:9]) if frac else 0
        ms = int(moment.timestamp()) * 1000 + nanos // 1_000_000
        return cls(ms, nanos % 1_000_000).check(field)


def _split_fraction(text: str) -> tuple[str, str, str]:
    """Split ``...T12:00:00.123456789Z`` into (``...T12:00:00``, ``123456789``, ``Z``)."""
    if "." not in text:
        return text.replace("z", "Z").replace("Z", "+00:00"), "", ""
    head, rest = text.split(".", 1)
    digits = len(rest) - len(rest.lstrip("0123456789"))
    frac, tail = rest[:digits], rest[digits:]
    if not frac or len(frac) > 9:
        return text, "", ""  # let fromisoformat report it
    return head, frac, tail.replace("z", "Z").replace("Z", "+00:00")


#: The earliest timestamp: the clock of a new node.
HLC_ZERO = Hlc(0, 0)


def wall_ms() -> int:
    """Milliseconds since the Unix epoch, from the system clock."""
    return time.time_ns() // 1_000_000


@dataclass
class Clock:
    """The node's hybrid logical clock. Not thread-safe: one writer owns it.

    >>> clock = Clock(last=Hlc(1000, 0))
    >>> clock.now(wall=999)      # wall clock stepped back: the counter moves instead
    Hlc(ms=1000, counter=1)
    >>> clock.observe(Hlc(10**6, 0), wall=1000)   # too far ahead: dragged at most drift_max_ms
    >>> clock.last
    Hlc(ms=61000, counter=0)
    """

    last: Hlc = HLC_ZERO
    drift_max_ms: int = DRIFT_MAX_MS

    def now(self, wall: int | None = None) -> Hlc:
        """A new timestamp greater than every one issued or observed so far."""
        wall = wall_ms() if wall is None else wall
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
        ceiling = Hlc(wall + self.drift_max_ms, 0)
        self.last = max(self.last, min(remote, ceiling))
