"""How the client says what went wrong talking to a node: ``Translate``, the one place
where aiohttp's and asyncio's exceptions become a ``ClientError`` in words a person can
act on (``node.client.transport`` wraps every request and the live stream in it), and
``UnreadableStream``, the error of a live stream this client cannot read."""

from __future__ import annotations

import errno
import os
from types import TracebackType

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from node.client.errors import NOT_LISTENING, ClientError, shown_address
from node.client.tls_probe import answers_tls
from node.limits import ClientLimits
from node.lookups import LookupResolver


def hung_up(error: BaseException) -> bool:
    """Whether the server hung up without a word: closed, or reset (as the kernel does
    for a server that closes with the request still unread, which of the two depends
    on timing)."""
    return isinstance(error, aiohttp.ServerDisconnectedError) or (
        isinstance(error, aiohttp.ClientOSError) and error.errno == errno.ECONNRESET)


def not_listening(error: BaseException) -> bool:
    """Whether a connection failed at the address itself, refused or unroutable: nothing
    listens there (``NOT_LISTENING``). Not a name that does not resolve, nor TLS: those
    fail with a node there, or say nothing of one."""
    return isinstance(error, aiohttp.ClientConnectorError) and not isinstance(
        error, aiohttp.ClientSSLError | aiohttp.ClientConnectorDNSError)


class Translate:
    """The one place where aiohttp's and asyncio's exceptions become ``ClientError``."""

    def __init__(self, base_url: str, shown_url: str, what: str, limits: ClientLimits,
                 resolver: LookupResolver | None) -> None:
        self.base_url, self.what, self.limits = base_url, what, limits
        self.shown_url = shown_url  # ``Transport.shown_url``, cut once
        self._resolver = resolver  # the client's name lookups, for the TLS probe

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        if error is None or isinstance(error, ClientError):
            return
        # HttpProcessingError: an answer aiohttp cannot parse (a line of the live stream
        # past its longest, LineTooLong), which is no aiohttp.ClientError.
        if not isinstance(error, aiohttp.ClientError | TimeoutError | HttpProcessingError):
            return  # our own bug or a cancellation: let it through unchanged
        if isinstance(error, HttpProcessingError):  # the same comes again on a retry
            raise UnreadableStream(self._explain(error)) from error
        said = self._explain(error)
        if hung_up(error) and await self._serves_tls():
            # A node serving HTTPS (--tls-cert) hangs up on plain HTTP without a word.
            said += ("; it speaks TLS there (a node started with --tls-cert serves "
                     "https:// only): try https://")
        raise ClientError(said, code=NOT_LISTENING if not_listening(error) else None
                          ) from error

    async def _serves_tls(self) -> bool:
        """Whether the server that hung up on this http:// address answers TLS there
        (``node.client.tls_probe``): a node at its connection cap, or another server,
        hangs up too."""
        url = URL(self.base_url)
        if (url.scheme != "http" or url.host is None or url.port is None
                or self._resolver is None):
            return False
        return await answers_tls(url.host, url.port, self._resolver)

    def _explain(self, error: BaseException) -> str:
        where = f"the node at {self.shown_url}"
        if isinstance(error, aiohttp.ConnectionTimeoutError):
            return f"cannot reach {where} within {self.limits.connect_timeout_s:g} s — is it up?"
        if isinstance(error, aiohttp.ClientConnectorCertificateError):
            return (f"{where} presented a certificate this machine does not trust ({error}); "
                    "point SSL_CERT_FILE at the cluster's CA, e.g. SSL_CERT_FILE=ca.pem")
        if isinstance(error, aiohttp.ClientSSLError):
            if "WRONG_VERSION_NUMBER" in str(error):  # a plain HTTP server answered
                return (f"{where} does not speak TLS: a node serves https:// only with "
                        "--tls-cert; try http://")
            return f"TLS with {where} failed ({error})"
        if isinstance(error, aiohttp.ClientConnectorDNSError):
            return (f"cannot reach {where}: its host name does not resolve "
                    f"({error.os_error.strerror})")
        if not_listening(error):
            assert isinstance(error, aiohttp.ClientConnectorError)  # for the type checker
            code = error.os_error.errno  # asyncio's text names the address again
            why = os.strerror(code).lower() if code and code > 0 else error.os_error.strerror
            return f"cannot reach {where} ({why}) — is `clawsync serve` running?"
        if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
            return f"{where} closed the connection during {self.what}"
        if isinstance(error, TimeoutError):
            return f"{where} did not answer {self.what} within {self.limits.request_timeout_s:g} s"
        if isinstance(error, HttpProcessingError):
            # Not its message: it quotes the node's bytes.
            return (f"{where} sent {self.what} in a form this client cannot read "
                    f"({type(error).__name__}: a line past what it reads, or not HTTP)")
        if isinstance(error, aiohttp.InvalidURL):
            return f"{shown_address(self.base_url)} is not a node URL (expected http://host:port)"
        return f"talking to {where} failed during {self.what}: {error or type(error).__name__}"


class UnreadableStream(ClientError):
    """The live stream sent what this client cannot read (not JSON, nested too deep, a
    line or a message past its limit): the same comes again on a reconnection, so the
    stream ends with it instead of reconnecting for ever."""
