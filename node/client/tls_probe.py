"""Whether a server speaks TLS: asked when an http:// address hung up without a word.

A node serving HTTPS (``--tls-cert``) closes a plain HTTP connection without an answer,
but so does a node at its ``connections_per_address_max``, or another server at the
address. Only a TLS handshake tells them apart, so the "try https://" advice is given
only when one completes (or the server answers it in TLS: an alert, TLS's own close).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from aiohttp.abc import AbstractResolver

from node.tls_alert import answered_in_tls

#: Seconds the name lookup and the handshake may take, and then the close. A loopback
#: or LAN node answers in milliseconds; the probe runs only after a failure, so a slow
#: or silent server costs the person at most twice this before the error they would see
#: anyway, just without the advice.
TLS_PROBE_TIMEOUT_S = 1.0


async def answers_tls(host: str, port: int, resolver: AbstractResolver,
                      timeout_s: float = TLS_PROBE_TIMEOUT_S) -> bool:
    """True when the server at ``host``:``port`` answers a TLS handshake within
    ``timeout_s``. The name is looked up by ``resolver``, the client's (its lookup
    threads are not waited for at exit, as the loop's would be: a name server that
    stalls does not hold the command). The certificate is not checked (only whether it
    speaks TLS matters; a ClientHello is all that is sent); a TLS alert, or TLS's own
    close, counts as an answer (it may want what a probe does not present). Refused,
    reset, closed, not TLS, silent or not found: False."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout_s):
            found = await resolver.resolve(host, port)
            _, writer = await asyncio.open_connection(found[0]["host"], port, ssl=context,
                                                      server_hostname=host)
    except ssl.SSLError as error:
        return answered_in_tls(error)  # an alert, or TLS's own close, is TLS spoken
    except (OSError, TimeoutError, RuntimeError, IndexError):
        # RuntimeError: the client's lookups closed meanwhile; IndexError: no address.
        return False
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(timeout_s):
            await writer.wait_closed()
    return True
