"""TLS on an accepted connection, as ``loop.connect_accepted_socket(ssl=...)`` does it,
except that a handshake the site refuses is told to the client: asyncio closes the
connection at once and drops the alert OpenSSL wrote (``unknown ca`` for a client
certificate no CA of ``--tls-ca`` signed), so a client saw only a closed connection
(aiohttp's "Server disconnected", in TLS 1.3, where the client's side of the handshake
ends before the server judges its certificate). With the alert, a dialing node says
that its certificate was refused (``node.peers.dial_words.why``).
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from typing import Any

#: The private methods of ``asyncio.sslproto.SSLProtocol`` that ``_Alerting`` relies on.
SSLPROTOCOL_HOOKS = ("_on_handshake_complete", "_process_outgoing")


class _Alerting(sslproto.SSLProtocol):
    """asyncio's TLS protocol that sends the alert of a handshake that failed before the
    connection closes. asyncio's own TLS drops that alert: a failed server handshake
    closes the transport at once, its buffer cleared, before the alert OpenSSL wrote is
    sent (CPython gh-98078, fixed upstream in 2026 by flushing first). This override can
    go once the Python the node requires sends the alert itself (it then flushes an
    empty buffer a second time, which is harmless meanwhile).

    It steps into asyncio's own TLS (``SSLPROTOCOL_HOOKS``, the same from Python 3.11
    on): there is no public hook. A Python that renamed them would drop the alert with
    no error, so a test checks that they are there.
    (typeshed describes the protocol asyncio had before: hence the ignores.)"""

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            # Written, not yet sent: the close that follows sends what the socket took.
            self._process_outgoing()  # type: ignore[attr-defined]
        super()._on_handshake_complete(handshake_exc)


async def accept_tls(loop: asyncio.AbstractEventLoop, conn: Any, app: asyncio.Protocol,
                     context: ssl.SSLContext, handshake_timeout_s: float) -> None:
    """Serve ``app`` over TLS with ``context`` on the accepted socket ``conn``, once the
    handshake is done; raises as ``connect_accepted_socket`` does if it fails (the
    connection closed, its alert sent)."""
    handshaken: asyncio.Future[None] = loop.create_future()
    tls = _Alerting(loop, app, context, handshaken, server_side=True,
                    ssl_handshake_timeout=handshake_timeout_s)  # type: ignore[arg-type]
    transport, _ = await loop.connect_accepted_socket(lambda: tls, conn)
    try:
        await handshaken
    except BaseException:
        transport.close()
        raise
