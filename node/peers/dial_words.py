"""The plain words of a peer's failures, for people and the log: why a dial, or a
request to a peer, failed (``why``: the operating system's reason, not aiohttp's text),
and what a peer's refusal says (``refusal_text``: a few words of its body, control
characters and our credentials taken out). Pure text: the bytes come from
``node.peers.transport``.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import socket
import ssl
import unicodedata
from collections.abc import Iterable, Iterator
from urllib.parse import quote, quote_plus

import aiohttp

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
    >>> why(TimeoutError(), 10.0)
    'no answer within 10 s'
    """
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        cause = error.certificate_error
        return f"its certificate did not verify ({getattr(cause, 'verify_message', cause)})"
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
#: What a credential of ours is shown as where a peer's refusal repeats it.
HIDDEN_TEXT = "(hidden)"


def refusal_text(body: bytes, hide: Iterable[str | None] = (), *, whole: bool = True) -> str:
    """What a peer's refusal ``body`` says, for people and the log: the message of a
    node's JSON error (``error_body``), else its first line that says something; control
    characters removed (a peer's bytes must not forge log lines or move a terminal's
    cursor), at most ``REFUSAL_CHARS_MAX`` characters ("…" ends one cut short), of its
    first ``REFUSAL_BYTES_MAX`` bytes. The credentials ``hide`` (ours, which the request
    sent) are shown as ``HIDDEN_TEXT``, as they are and in the forms a page may repeat
    them in (``secret_forms``): a proxy may repeat our headers in its page, or in a
    link, a JSON or HTML escape, base64; where ``body`` is not ``whole`` (the rest of it
    did not come), also a credential's first bytes that end it. A JSON body cut short
    shows the message it held where that came whole (``_cut_message``), else nothing
    (its raw first line would be braces and keys): the status is told alone.

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
    >>> refusal_text(b'{"error": {"code": "x", "message": "cut he', whole=False)
    ''
    >>> refusal_text(b'{"error": {"code": "x", "message": "said", "field": "a', whole=False)
    'said'
    >>> refusal_text(b'{"error": "Forbidden", "detail": "Bearer s3cr', whole=False)
    'Forbidden'
    >>> refusal_text(b"[" * 4096) == "[" * (REFUSAL_CHARS_MAX - 1) + "…"  # too deep for JSON
    True
    """
    # Each form once per refusal; the longest first, so that one holding another is
    # found whole.
    forms = sorted({form for secret in hide if secret for form in secret_forms(secret)},
                   key=len, reverse=True)
    cut, body = len(body) > REFUSAL_BYTES_MAX or not whole, body[:REFUSAL_BYTES_MAX]
    for form in forms:
        body = _masked(body, form.encode(), cut)
    text = body.decode(errors="replace")
    said = _cut_message(text) if cut else _message(text)
    if isinstance(said, str):
        text = said
    elif cut and text.lstrip().startswith("{"):
        return ""  # a JSON error cut short: its raw first line says nothing plain
    line = next((kept for kept in (_printable(line) for line in text.splitlines()) if kept),
                "")
    for form in forms:  # also as a JSON string held it, escaped; before any cut
        line = line.replace(form, HIDDEN_TEXT)
    return line if len(line) <= REFUSAL_CHARS_MAX else line[:REFUSAL_CHARS_MAX - 1] + "…"


def secret_forms(secret: str) -> set[str]:
    """The forms a page may repeat ``secret`` in: as it is; URL-encoded (``%XX``, its
    hex in either case; ``+`` for a space in a form's encoding; ``/`` kept as in a
    path); base64 and URL-safe base64 (``_base64_cores``); HTML-escaped (where HTML
    needs it, or every character a numeric reference); a JSON string's insides (escaped
    where JSON needs it, ASCII only or not, ``<>&`` escaped as Go does, or every
    character a ``\\uXXXX`` escape, in either case). None empty.

    >>> sorted(form for form in secret_forms("a&b") if "&" in form or "%" in form)
    ['%61%26%62', '&#97;&#38;&#98;', '&#x61;&#x26;&#x62;', 'a%26b', 'a&amp;b', 'a&b']
    >>> print(*sorted(form for form in secret_forms("a<b") if "u00" in form))
    \\u0061\\u003C\\u0062 \\u0061\\u003c\\u0062 a\\u003cb
    """
    units = secret.encode("utf-16-be")  # a JSON escape names UTF-16 code units
    escaped = [f"\\u{int.from_bytes(units[n:n + 2], 'big'):04x}"
               for n in range(0, len(units), 2)]
    as_json = json.dumps(secret)[1:-1]
    forms = {
        secret,
        quote(secret, safe=""), quote(secret), quote_plus(secret, safe=""),
        "".join(f"%{byte:02X}" for byte in secret.encode()),
        html.escape(secret), html.escape(secret, quote=False),
        "".join(f"&#{ord(char)};" for char in secret),
        "".join(f"&#x{ord(char):x};" for char in secret),
        as_json, json.dumps(secret, ensure_ascii=False)[1:-1],
        as_json.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),
        "".join(escaped), "".join(escaped).upper().replace("\\U", "\\u"),
        *_base64_cores(secret.encode()),
    }
    forms |= {_lower_hex(form) for form in forms if "%" in form}
    return {form for form in forms if form}


def _lower_hex(form: str) -> str:
    """``form`` with the hex of its ``%XX`` escapes in lower case."""
    return re.sub(r"%[0-9A-F]{2}", lambda escape: escape[0].lower(), form)


def _base64_cores(secret: bytes) -> list[str]:
    """What base64 (and URL-safe base64) of a text holding ``secret`` shows of it,
    wherever in a group of three bytes it begins: only the characters that stand for
    ``secret``'s bytes alone. A character at either end that stands for a byte around
    it too stays shown: it tells a few bits, not the secret.

    >>> import base64
    >>> page = base64.b64encode(b"Authorization: Bearer s3cret-s3cret").decode()
    >>> {core for core in _base64_cores(b"s3cret-s3cret") if core in page}
    {'MzY3JldC1zM2NyZX'}
    """
    cores = []
    for lead in range(3):  # the bytes of the group before the secret's first
        coded = base64.b64encode(bytes(lead) + secret).decode().rstrip("=")
        # A character holds 6 bits: the first ones hold those lead bytes' bits too, and
        # in a last group short of three bytes, the last one the next bytes' bits.
        start, end = (0, 2, 3)[lead], len(coded) - ((lead + len(secret)) % 3 != 0)
        cores.append(coded[start:end])
    return cores + [core.replace("+", "-").replace("/", "_") for core in cores]


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
    """
    start = _blanks_end(text, 0)
    if not text.startswith("{", start):
        return None
    for key, at in _keys(text, start):
        if key != "error":
            continue
        if text.startswith("{", at):
            at = next((inner_at for inner, inner_at in _keys(text, at) if inner == "message"),
                      len(text))
        said = _string_at(text, at)  # None: no string, or one cut short
        return None if said is None else said[0]
    return None


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


def _masked(body: bytes, secret: bytes, cut: bool) -> bytes:
    """``body`` with ``secret`` shown as ``HIDDEN_TEXT``; also its first bytes, where a
    body ``cut`` short ends with them (the rest of it was not read).

    >>> _masked(b"a KEY b KE", b"KEY", cut=True), _masked(b"a KE", b"KEY", cut=False)
    (b'a (hidden) b (hidden)', b'a KE')
    """
    body = body.replace(secret, HIDDEN_TEXT.encode())
    if cut:
        for size in range(len(secret) - 1, 0, -1):
            if body.endswith(secret[:size]):
                return body[:-size] + HIDDEN_TEXT.encode()
    return body


def _printable(line: str) -> str:
    """``line`` without control characters (Unicode's category C: C0, C1, format
    characters such as a direction override), its ends' blanks stripped."""
    return "".join(char for char in line if not unicodedata.category(char).startswith("C")) \
        .strip()
