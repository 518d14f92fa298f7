"""An answer "too many requests" (429) or "unavailable" (503) with a ``Retry-After``
header asks for a wait before the next try. A dial takes it as the least wait before
dialing that address again (``PeerSync.connection_failed``), bounded by its longest
back-off (``SyncConfig.backoff_max_s``, 60 s by default), so that a peer, or a proxy in
front of it, cannot park the dial for a day; the Python client waits it (bounded too)
before sending an add again (``Client.add_device``). Pure: the header's text in,
seconds out.
"""

from __future__ import annotations

import datetime
import email.utils

#: The statuses whose ``Retry-After`` a dial honours (RFC 9110 gives it meaning with
#: these and with redirects, which a dial does not follow).
ASKED_WAIT_STATUSES = frozenset({429, 503})
#: Most characters of a ``Retry-After`` value read: an HTTP-date is 29, a number of
#: seconds fewer; a longer value is none of the two.
RETRY_AFTER_CHARS_MAX = 64


def asked_wait_s(value: str | None, now_unix_s: float) -> float | None:
    """The seconds a ``Retry-After`` ``value`` asks to wait from ``now_unix_s`` (the
    wall clock, for the HTTP-date form): a number of seconds, or a date (IMF-fixdate,
    RFC 850 or asctime, all GMT), a date past asking for none; None if there is no
    value or it is neither (a date with a zone unknown, "-0000", is none).

    >>> asked_wait_s("120", 0.0), asked_wait_s(" 0 ", 0.0)
    (120.0, 0.0)
    >>> asked_wait_s("Thu, 01 Jan 1970 00:01:30 GMT", 60.0)
    30.0
    >>> asked_wait_s("Thu, 01 Jan 1970 00:00:00 GMT", 60.0)
    0.0
    >>> asked_wait_s("Thu Jan  1 00:01:30 1970", 60.0)  # asctime
    30.0
    >>> asked_wait_s("Thu, 01 Jan 1970 00:01:30 -0000", 60.0) is None
    True
    >>> [asked_wait_s(v, 0.0) for v in (None, "", "-5", "1.5", "soon", "9" * 65)]
    [None, None, None, None, None, None]
    """
    if value is None or len(value) > RETRY_AFTER_CHARS_MAX:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # delay-seconds: digits only
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # "-0000" reads as no zone, and so does the obsolete asctime form, which has no
        # comma after its day and is in GMT (RFC 9110 5.6.7: recipients accept it).
        if "," in value:
            return None
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now_unix_s)
