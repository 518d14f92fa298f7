"""TLS answers a client is refused with, in tests of what it makes of them: an alert
Python has no name for, and a server that answers a hello with TLS's own close."""

from __future__ import annotations

import asyncio

#: The alert of a server that speaks none of the protocols asked (ALPN), which Python
#: 3.11's table of OpenSSL's reasons does not name: OpenSSL 3 says it in words alone
#: (``tlsv1 alert no application protocol``).
NO_APPLICATION_PROTOCOL = 120

#: A TLS record of an alert (21), version 1.2, two bytes long: warning (1), close_notify (0).
CLOSE_NOTIFY = bytes([21, 3, 3, 0, 2, 1, 0])


async def close_in_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """For ``asyncio.start_server``: answer the client's hello with close_notify, as a
    warning, in the clear as alerts before the keys are, and close."""
    await reader.read(1)  # the hello came
    writer.write(CLOSE_NOTIFY)
    writer.close()
