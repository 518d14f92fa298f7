"""TLS answers a client is refused with, in tests of what it makes of them: an alert
Python has no name for, and servers that answer a hello with a record of their choice
(TLS's own close, an alert OpenSSL cannot read)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

#: The alert of a server that speaks none of the protocols asked (ALPN), which Python
#: 3.11's table of OpenSSL's reasons does not name: OpenSSL 3 says it in words alone
#: (``tlsv1 alert no application protocol``).
NO_APPLICATION_PROTOCOL = 120

#: A TLS record of an alert (21), version 1.2, two bytes long: warning (1), close_notify (0).
CLOSE_NOTIFY = bytes([21, 3, 3, 0, 2, 1, 0])


#: An alert record (21), version 1.0, two bytes long, whose level (117) is neither
#: warning nor fatal: OpenSSL fails the handshake with its own ``UNKNOWN_ALERT_TYPE``, a
#: record it could not read, not an alert the server sent.
UNKNOWN_ALERT_LEVEL = bytes([21, 3, 1, 0, 2, 0x75, 0x0D])


def answering_hello(
        answer: bytes) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """For ``asyncio.start_server``: a server that answers the client's hello with
    ``answer``, and closes."""
    async def answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the hello came
        writer.write(answer)
        writer.close()
    return answering


#: A server that answers the hello with close_notify, as a warning, in the clear as
#: alerts before the keys are.
close_in_tls = answering_hello(CLOSE_NOTIFY)
