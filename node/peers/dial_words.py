"""The plain words of a peer's failures, for people and the log: why a dial, or a
request to a peer, failed (``why``: the operating system's reason, not aiohttp's text),
and what a peer's refusal says (``refusal_text``: a few words of its body, control
characters and our credentials taken out). Pure text: the bytes come from
``node.peers.transport``.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from collections.abc import Iterable, Iterator

import aiohttp

from node.peers.hiding import hidden
from node.text import without_controls
from node.tls_alert import alert, closed_in_tls, wordless_alert

#: A name lookup that found the name but no address for it (none at all, or none of
#: the family asked for): not "not known", and looked up. Not every system has both.
_NO_ADDRESS = frozenset(getattr(socket, name) for name in ("EAI_NODATA", "EAI_ADDRFAMILY")
                        if hasattr(socket, name))


def why(error: BaseException, timeout_s: float | None = None) -> str:
    """Why a dial of a peer, or a request to it, failed, for people: the operating
    system's reason where it gave one, not aiohttp's text, which names the address
    again (the caller names it) and says "ssl:default" on a plain http:// dial. What
    helps stays: a name lookup's reason, a certificate's, a status the peer answered.
    ``timeout_s``: the time an answer was waited for.

    >>> import errno, socket
    >>> why(aiohttp.ClientConnectorError(None, ConnectionRefusedError(errno.ECONNREFUSED, "")))
    'connection refused'
    >>> why(aiohttp.ClientConnectorDNSError(None, socket.gaierror(socket.EAI_NONAME, "")))
    'name not known'
    >>> why(aiohttp.ClientConnectorDNSError(None, socket.gaierror(
    ...     socket.EAI_AGAIN, "Temporary failure in name resolution")))
    'name not looked up: temporary failure in name resolution'
    >>> {why(aiohttp.ClientConnectorDNSError(None, socket.gaierror(code, "")))
    ...  for code in (socket.EAI_NODATA, socket.EAI_ADDRFAMILY)}
    {'name has no address'}
    >>> why(aiohttp.ClientConnectorError(None, ConnectionResetError()))  # no errno
    'it closed the connection during the TLS handshake'
    >>> why(TimeoutError(), 10.0)
    'no answer within 10 s'
    """
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        cause = error.certificate_error
        return f"its certificate did not verify ({getattr(cause, 'verify_message', cause)})"
    if (refused := _refused(error)) is not None:
        return refused
    if isinstance(error, aiohttp.ClientConnectorError):
        cause = error.os_error
        if isinstance(cause, socket.gaierror):
            # The OS's words differ by system ("Name or service not known", "nodename
            # nor servname provided, or not known"): the common cases are said one way.
            if cause.errno == socket.EAI_NONAME:
                return "name not known"
            if cause.errno in _NO_ADDRESS:
                return "name has no address"
            return f"name not looked up: {(cause.strerror or str(cause)).lower()}"
        if _closed_in_handshake(cause):
            return "it closed the connection during the TLS handshake"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({cause.reason or cause})"
        if cause.errno:
            return os.strerror(cause.errno).lower()
    if isinstance(error, TimeoutError):  # ours, or aiohttp's (a TimeoutError too)
        return f"no answer within {timeout_s:g} s" if timeout_s else "no answer in time"
    if isinstance(error, aiohttp.WSServerHandshakeError) \
            and error.message != "Invalid response status":
        # A status that took a websocket (101) with headers that do not: aiohttp's
        # words say which ("Invalid upgrade header"), the status alone reads as success.
        said = error.message[:1].lower() + error.message[1:]
        return f"it answered HTTP {error.status} but the websocket handshake failed ({said})"
    if isinstance(error, aiohttp.ClientResponseError):
        return f"it answered HTTP {error.status}"
    return str(error) or type(error).__name__


#: What may be wrong, and what to do, for the alerts a peer's TLS commonly refuses a
#: dial with that a user can act on. Most are of this node's certificate, as OpenSSL
#: tells why it did not verify one (``ssl_x509err2alert``): no CA the peer trusts
#: signed it; it, or a CA of its chain, expired (its own log says which,
#: ``node.peers.tls_expiry``); not valid yet, or of a key or signature too weak
#: (``bad certificate``); not for a client (its extended key usage lacks clientAuth).
_ALERT_HINTS = {
    "TLSV1_ALERT_UNKNOWN_CA": "this node's certificate may not be signed by a CA the peer "
                              "trusts",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "this node's certificate, or a CA of its chain, "
                                       "may have expired: its log says which (tls "
                                       "certificate expired)",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the peer wants a client certificate and this "
                                         "node sent none: give it one (--tls-cert, "
                                         "--tls-key)",
    # TLS 1.2 has no alert of its own for a client certificate missing.
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the peer may want a client certificate and this "
                                     "node sent none (--tls-cert, --tls-key), or accept "
                                     "none of the TLS versions and ciphers it offers",
    "SSLV3_ALERT_BAD_CERTIFICATE": "this node's certificate may not be valid yet (check "
                                   "the clocks of both machines), or its key or signature "
                                   "may be too weak for the peer",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "this node's certificate may not be for a "
                                           "client: its extended key usage must list "
                                           "clientAuth",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "this node's certificate was revoked: it needs a "
                                       "new one",
    "TLSV1_ALERT_PROTOCOL_VERSION": "the peer accepts none of the TLS versions this node "
                                    "offers",
    "TLSV1_UNRECOGNIZED_NAME": "the peer does not serve the name dialed: check the "
                               "address",
    # What OpenSSL sends of a certificate for a fault it has no alert of its own for.
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the peer refused this node's certificate without "
                                       "saying why (OpenSSL does so of an extension "
                                       "marked critical it does not know, for one): "
                                       "the peer's log says why (peer tls refused), if "
                                       "it is a clawsync node",
    # A signature that did not verify: of this node's certificate by the CA the peer
    # found of the name it names (another key, as of a CA made again under that name:
    # one with an authority key identifier finds no such CA, TLSV1_ALERT_UNKNOWN_CA),
    # or of the handshake's own CertificateVerify or Finished.
    "TLSV1_ALERT_DECRYPT_ERROR": "a signature did not verify with the key the peer "
                                 "holds: this node's certificate may be signed by "
                                 "another key than the peer's CA of that name (a CA "
                                 "made again under the same name, of certificates "
                                 "without an authority key identifier): the peer's log "
                                 "says why (peer tls refused), if it is a clawsync node",
    # A node offers no pre-shared key: a peer set up for them is none of a node's.
    "TLSV1_ALERT_UNKNOWN_PSK_IDENTITY": "the peer's TLS may expect pre-shared keys "
                                        "(TLS-PSK), which nodes do not use: check that "
                                        "the address is a node's",
}

def _refused(error: BaseException) -> str | None:
    """The words of a TLS alert the peer sent, refusing the connection (most often in
    its handshake, of this node's certificate: ``_ALERT_HINTS``), or None if ``error``
    is none. In TLS 1.2 it fails the connect (``ClientConnectorError``); in TLS 1.3 the
    peer judges our certificate after our side of the handshake ended, so the alert
    fails the first read (aiohttp's ``ClientOSError``, caused by it), as one of a
    connection the pool kept would. A peer that closes without an alert (aiohttp's
    "Server disconnected") is not one: it may have closed for any reason.

    >>> refused = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    >>> refused.reason = "TLSV1_ALERT_UNKNOWN_CA"
    >>> _refused(aiohttp.ClientOSError(*refused.args)) is None  # no cause
    True
    """
    cause = error.os_error if isinstance(error, aiohttp.ClientConnectorError) \
        else error.__cause__ if isinstance(error, aiohttp.ClientOSError) else None
    name = alert(cause)
    if name is None:
        if wordless_alert(cause):
            return "it refused the TLS connection with an alert OpenSSL has no name for " \
                   "(close_notify, or one no TLS version defines)"
        return None
    hint = _ALERT_HINTS.get(name)
    return f"it refused the TLS connection ({name})" + (f": {hint}" if hint else "")


def _closed_in_handshake(cause: OSError) -> bool:
    """Whether the connect's ``cause`` is a peer that closed the connection while its
    TLS handshake went on: without an alert, asyncio says so with a
    ``ConnectionResetError`` of no errno (a reset of the network has one; it never
    hands that end of file to OpenSSL, so no ``SSLEOFError`` comes of it); with TLS's
    own close (close_notify, as a warning), OpenSSL with ``SSLZeroReturnError``."""
    return (isinstance(cause, ConnectionResetError) and cause.errno is None) \
        or closed_in_tls(cause)


#: Most characters of a peer's refusal shown with its status (``refusal_text``), and
#: most bytes of its body read to find them: its operator's words help, a page of HTML
#: or a flood does not.
REFUSAL_CHARS_MAX = 200
REFUSAL_BYTES_MAX = 4096
#: Longest wait, in seconds, for those bytes once the status came; a dial's read also
#: ends ``REFUSAL_READ_MARGIN_S`` before the dial's own time-out. A body that stalls
#: (a proxy, a peer that stopped) is given up and the status is shown with what came of
#: it: the refusal is said at once, not taken, at the dial's time-out, for a peer that
#: did not answer.
REFUSAL_READ_S = 1.0
REFUSAL_READ_MARGIN_S = 0.1


def refusal_text(body: bytes, hide: Iterable[str | None] = (), *, whole: bool = True) -> str:
    """What a peer's refusal ``body`` says, for people and the log: the message of a
    node's JSON error (``error_body``), else its first line that says something; control
    characters removed (a peer's bytes must not forge log lines or move a terminal's
    cursor), at most ``REFUSAL_CHARS_MAX`` characters ("…" ends one cut short), of its
    first ``REFUSAL_BYTES_MAX`` bytes. The credentials ``hide`` (ours, which the request
    sent) are shown as ``HIDDEN_TEXT`` where it repeats them (``node.peers.hiding``: a
    proxy may echo our headers, as they are or encoded): in the body, where the message
    is read from it, and again in what is shown. A JSON body cut short shows the message
    it held where that came whole (``_cut_message``), else nothing (its raw first line
    would be braces and keys): the status is told alone.

    >>> from node.http.wire import error_body
    >>> refusal_text(error_body("unauthorized", "peer credentials missing or wrong"))
    'peer credentials missing or wrong'
    >>> refusal_text(b"\\r\\n  Forbidden by policy\\r\\n<p>details</p>")
    'Forbidden by policy'
    >>> refusal_text(b"no\\x1b[2Jpe\\x00"), refusal_text(b"\\xff\\xfe"), refusal_text(b"")
    ('no[2Jpe', '\ufffd\ufffd', '')
    >>> len(refusal_text(b"x" * 1000)), refusal_text(b"x" * 1000)[-1]
    (200, '…')
    >>> refusal_text(b"Authorization: Bearer s3cret-s3cret", hide=["s3cret-s3cret"])
    'Authorization: Bearer (hidden)'
    >>> refusal_text(b"Bearer s3cret-s3", hide=["s3cret-s3cret"], whole=False)
    'Bearer (hidden)'
    >>> secret = "jc9_uBIbfsRRiHpAjHJkV1yZlxAz3rcyv86AoxTcfaU"
    >>> refusal_text(f"Bearer {secret[:42]}".encode(), [secret], whole=False)
    'Bearer (hidden)'
    >>> refusal_text(b"see %", ["s3cr3t"], whole=False)
    'see %'
    >>> refusal_text(f"Bearer {secret[:30]}\\x0c{secret[30:]}".encode(), [secret])
    'Bearer (hidden)'
    >>> refusal_text(f"Bearer {secret[:3]}\\x00{secret[3:6]}".encode(), [secret])
    'Bearer (hidden)'
    >>> refusal_text(b"Bearer s3\\x00c", ["s3cr3t"], whole=False)
    'Bearer (hidden)'
    >>> refusal_text(b"&#X73;&#x33;&#X63;&#114;&#x33;&#0116;!", ["s3cr3t"])
    '(hidden)!'
    >>> refusal_text(b'{"error": {"code": "x", "message": "cut he', whole=False)
    ''
    >>> refusal_text(b'{"error": {"code": "x", "message": "said", "field": "a', whole=False)
    'said'
    >>> refusal_text(b'{"error": "Forbidden", "detail": "Bearer s3cr', whole=False)
    'Forbidden'
    >>> refusal_text(b"[" * 4096) == "[" * (REFUSAL_CHARS_MAX - 1) + "…"  # too deep for JSON
    True
    """
    hide = tuple(hide)
    cut, body = len(body) > REFUSAL_BYTES_MAX or not whole, body[:REFUSAL_BYTES_MAX]
    # Hidden in the body, escapes and all, where the message is read from it; and in
    # what is shown, where taking out control characters joined pieces of a secret.
    text = hidden(body.decode(errors="replace"), hide, cut)
    said = _cut_message(text) if cut else _message(text)
    if isinstance(said, str):
        text = said
    elif cut and text.lstrip().startswith("{"):
        return ""  # a JSON error cut short: its raw first line says nothing plain
    lines = [_printable(line) for line in text.splitlines()]
    at = next((at for at, kept in enumerate(lines) if kept), len(lines))
    # The body's last line, cut short: a start of a secret that taking out control
    # characters joined may end it.
    line = hidden(lines[at] if lines[at:] else "", hide,
                  cut and not isinstance(said, str) and at == len(lines) - 1)
    return line if len(line) <= REFUSAL_CHARS_MAX else line[:REFUSAL_CHARS_MAX - 1] + "…"


def _message(text: str) -> object:
    """The message of a node's JSON error (``error_body``: ``error.message``), or of
    another server's (``error`` a string), in the JSON ``text``; None if none."""
    try:
        error = json.loads(text)["error"]
        return error if isinstance(error, str) else error["message"]
    except (ValueError, TypeError, KeyError, RecursionError):  # nested too deep: no error
        return None


def _cut_message(text: str) -> str | None:
    """``_message`` of the JSON ``text`` cut short: read as far as it came whole, the
    string of ``error`` or of its ``message``, where that string ended before the cut.

    >>> _cut_message('{"error": {"code": "x", "message": "bad\\\\u0021"}, "more": [1, 2')
    'bad!'
    >>> _cut_message('{"id": [1, {"error": "no"}], "error": "yes", "x'), _cut_message('{"er')
    ('yes', None)
    >>> _cut_message('{"error": "first", "error": {"message": "a", "message": "last"}, "x')
    'last'
    """
    start = _blanks_end(text, 0)
    if not text.startswith("{", start):
        return None
    said = None
    for key, at in _keys(text, start):  # a key said twice: the last, as json.loads reads
        if key != "error":
            continue
        if text.startswith("{", at):
            at = _last_value(text, at, "message")
        found = _string_at(text, at)  # None: no string, or one cut short
        said = None if found is None else found[0]
    return said


def _last_value(text: str, start: int, name: str) -> int:
    """Where the value of the last ``name`` key of the JSON object that begins at
    ``text[start]`` begins, as far as it came whole; ``len(text)`` if none came."""
    at = len(text)
    for key, value_at in _keys(text, start):
        if key == name:
            at = value_at
    return at


_DECODER = json.JSONDecoder()


def _keys(text: str, start: int) -> Iterator[tuple[str, int]]:
    """The keys of the JSON object that begins at ``text[start]``, each with where its
    value begins, as far as the object came whole: a value, or the object, cut short
    (or malformed) ends it."""
    at = _blanks_end(text, start + 1)
    while (named := _string_at(text, at)) is not None:
        key, at = named
        at = _blanks_end(text, at)
        if not text.startswith(":", at):
            return
        at = _blanks_end(text, at + 1)
        yield key, at
        try:
            at = _DECODER.raw_decode(text, at)[1]
        except (ValueError, RecursionError):
            return
        at = _blanks_end(text, at)
        if not text.startswith(",", at):
            return
        at = _blanks_end(text, at + 1)


def _string_at(text: str, at: int) -> tuple[str, int] | None:
    """The JSON string that begins at ``text[at]`` and where it ends; None if none
    begins there or it is cut short."""
    if not text.startswith('"', at):
        return None
    try:
        said, end = _DECODER.raw_decode(text, at)
    except ValueError:
        return None
    return str(said), end


def _blanks_end(text: str, at: int) -> int:
    """Where the JSON white space at ``text[at:]`` ends."""
    while at < len(text) and text[at] in " \t\n\r":
        at += 1
    return at


def _printable(line: str) -> str:
    """``line`` without the control characters ``node.text.printable`` escapes (C0, C1,
    the bidirectional controls: the zero width joiner of an emoji is kept, as there),
    its ends' blanks stripped. A credential split by a character kept that shows as
    nothing (a format character, one of private use, an unassigned one) is still found
    (``node.peers.hiding.FORMAT_CHARACTERS``)."""
    return without_controls(line).strip()
