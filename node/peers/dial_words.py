"""The plain words of a peer's failures, for people and the log: why a dial, or a
request to a peer, failed (``why``: the operating system's reason, not aiohttp's text),
and what a peer's refusal says (``refusal_text``: a few words of its body, control
characters and our credentials taken out). Pure text: the bytes come from
``node.peers.transport``.
"""

from __future__ import annotations

import base64
import bisect
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
    them in (``secret_forms``, the hex of an escape in either case): a proxy may repeat
    our headers in its page, or in a link, a JSON or HTML escape, base64; also a
    credential's start that ends a line (the last one too where ``body`` is not
    ``whole``: the rest of it did not come) and its end that begins the next (``_hidden``),
    where that tells two characters of it or an escape of one. A JSON body cut short
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
    >>> secret = "jc9_uBIbfsRRiHpAjHJkV1yZlxAz3rcyv86AoxTcfaU"
    >>> refusal_text(f"Bearer {secret[:42]}".encode(), [secret], whole=False)
    'Bearer (hidden)'
    >>> refusal_text(b"see %", ["s3c"], whole=False), refusal_text(b"&#X73;&#x33;&#X63;!", ["s3c"])
    ('see %', '(hidden)!')
    >>> refusal_text(b'{"error": {"code": "x", "message": "cut he', whole=False)
    ''
    >>> refusal_text(b'{"error": {"code": "x", "message": "said", "field": "a', whole=False)
    'said'
    >>> refusal_text(b'{"error": "Forbidden", "detail": "Bearer s3cr', whole=False)
    'Forbidden'
    >>> refusal_text(b"[" * 4096) == "[" * (REFUSAL_CHARS_MAX - 1) + "…"  # too deep for JSON
    True
    """
    forms = _forms(hide)
    cut, body = len(body) > REFUSAL_BYTES_MAX or not whole, body[:REFUSAL_BYTES_MAX]
    body = _hidden(body, forms, cut)
    text = body.decode(errors="replace")
    said = _cut_message(text) if cut else _message(text)
    if isinstance(said, str):
        text = said
    elif cut and text.lstrip().startswith("{"):
        return ""  # a JSON error cut short: its raw first line says nothing plain
    line = next((kept for kept in (_printable(line) for line in text.splitlines()) if kept),
                "")
    # Also as a JSON string held it, escaped; before any cut.
    line = _hidden(line.encode(), forms, cut=False).decode()
    return line if len(line) <= REFUSAL_CHARS_MAX else line[:REFUSAL_CHARS_MAX - 1] + "…"


def secret_forms(secret: str) -> set[str]:
    """The forms a page may repeat ``secret`` in: as it is; URL-encoded (``%XX``; ``+``
    for a space in a form's encoding; ``/`` kept as in a path); base64 and URL-safe
    base64 (``_base64_cores``); HTML-escaped (where HTML needs it, as Python, Go's
    html/template or PHP write it, or every character a numeric reference); a JSON
    string's insides (escaped where JSON needs it, ASCII only or not, ``<>&`` escaped
    as Go does, ``/`` as PHP does, or every character a ``\\uXXXX`` escape). None empty.
    The case of hex digits is not told apart: ``_hidden`` matches them folded.

    >>> sorted(form for form in secret_forms("a&b") if "&" in form or "%" in form)
    ['%61%26%62', '&#97;&#38;&#98;', '&#x61;&#x26;&#x62;', 'a%26b', 'a&amp;b', 'a&b']
    >>> print(*sorted(form for form in secret_forms("a<b") if "u00" in form))
    \\u0061\\u003c\\u0062 a\\u003cb
    """
    units = secret.encode("utf-16-be")  # a JSON escape names UTF-16 code units
    as_json = json.dumps(secret)[1:-1]
    forms = {
        secret,
        quote(secret, safe=""), quote(secret), quote_plus(secret, safe=""),
        "".join(f"%{byte:02x}" for byte in secret.encode()),
        *(secret.translate(escapes) for escapes in _HTML_ESCAPES),
        "".join(f"&#{ord(char)};" for char in secret),
        "".join(f"&#x{ord(char):x};" for char in secret),
        as_json, json.dumps(secret, ensure_ascii=False)[1:-1], as_json.replace("/", "\\/"),
        as_json.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),
        "".join(f"\\u{int.from_bytes(units[n:n + 2], 'big'):04x}"
                for n in range(0, len(units), 2)),
        *_base64_cores(secret.encode()),
    }
    return {form for form in forms if form}


#: How pages escape HTML's special characters: Python's ``html.escape`` (and with
#: ``quote=False``), Go's html/template, PHP's ``htmlspecialchars``.
_HTML_ESCAPES = [str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", **quotes})
                 for quotes in ({'"': "&quot;", "'": "&#x27;"}, {},
                                {'"': "&#34;", "'": "&#39;", "+": "&#43;"},
                                {'"': "&quot;", "'": "&#039;"})]


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


#: A form of a credential (``secret_forms``), its case folded, with where its escapes
#: are (``_ESCAPE``): a part of it is hidden where it tells something (``_telling``).
_Form = tuple[bytes, list[tuple[int, int]]]
#: One escaped character, its case folded: URL, HTML, JSON.
_ESCAPE = re.compile(rb"%[0-9a-f]{2}|&#x[0-9a-f]+;|&#[0-9]+;|&[a-z]+;|\\u[0-9a-f]{4}|\\.")
_LINE = re.compile(rb"[^\r\n]+")


def _forms(hide: Iterable[str | None]) -> list[_Form]:
    """The forms of the credentials ``hide`` (``secret_forms``), each once, folded."""
    folded = {form.encode().lower() for secret in hide if secret
              for form in secret_forms(secret)}
    return [(form, [escape.span() for escape in _ESCAPE.finditer(form)])
            for form in sorted(folded)]


def _hidden(body: bytes, forms: list[_Form], cut: bool) -> bytes:
    """``body`` with the ``forms`` of our credentials shown as ``HIDDEN_TEXT``, each
    stretch of them once: found with the case folded (a page may write the hex of an
    escape in either case, ``&#X``); also where a line of ``body`` that another follows
    (or the last line, where ``body`` was ``cut`` short) ends with a form's start, or a
    line after another begins with a form's end (a form wrapped, as MIME base64 is).
    Hidden first, then shown: one form's match never keeps another's from being found.

    >>> forms = _forms(["KEY-abc"])
    >>> _hidden(b"a key-abc b KEY-a", forms, cut=True), _hidden(b"a KEY-a", forms, cut=False)
    (b'a (hidden) b (hidden)', b'a KEY-a')
    >>> _hidden(b"see %", forms, cut=True), _hidden(b"Bearer KEY\\n-abc!", forms, cut=False)
    (b'see %', b'Bearer (hidden)\\n(hidden)!')
    """
    folded = body.lower()  # of the same length: what is found there is hidden in body
    spans = []
    for form, _escapes in forms:
        at = folded.find(form)
        while at >= 0:
            spans.append((at, at + len(form)))
            at = folded.find(form, at + 1)
    for line in _LINE.finditer(folded):
        start, end = line.span()
        if end < len(folded) or cut:
            spans.append((min((_start_ending(folded, start, end, form) for form in forms),
                              default=end), end))
        if start > 0:
            spans.append((start, max((_end_starting(folded, start, end, form)
                                      for form in forms), default=start)))
    merged: list[list[int]] = []
    for start, end in sorted(span for span in spans if span[0] < span[1]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts, shown = [], 0
    for start, end in merged:
        parts += [body[shown:start], HIDDEN_TEXT.encode()]
        shown = end
    return b"".join(parts) + body[shown:]


def _start_ending(folded: bytes, start: int, end: int, form: _Form) -> int:
    """Where the longest start of ``form`` that ends ``folded[start:end]`` begins, if it
    tells something (``_telling``); else ``end``. Only where its first two bytes are is
    it compared, without a copy, in the line only: about linear in the line's length."""
    text, escapes = form
    at = folded.find(text[:2], max(start, end - len(text) + 1), end)
    while at >= 0 and not text.startswith(memoryview(folded)[at:end]):  # no copy
        at = folded.find(text[:2], at + 1, end)
    return at if at >= 0 and _telling(escapes, 0, end - at) else end


def _end_starting(folded: bytes, start: int, end: int, form: _Form) -> int:
    """Where the longest end of ``form`` that begins ``folded[start:end]`` ends, if it
    tells something (``_telling``); else ``start``."""
    text, escapes = form
    head = folded[start:start + 2]
    at = text.find(head, max(1, len(text) - (end - start))) if len(head) == 2 else -1
    while at >= 0 and not folded.startswith(memoryview(text)[at:], start):
        at = text.find(head, at + 1)
    return start + len(text) - at if at >= 0 and _telling(escapes, at, len(text)) else start


def _telling(escapes: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether ``form[start:end]`` tells something of the credential: an escape of it
    whole, or two characters that are no part of an escape. Less is hidden only where it
    is whole: a character tells little, and a cut body often ends with ``%``, ``&``."""
    # The escapes it touches, if none is whole in it: one its start cuts, one its end
    # cuts. Only those are looked at: a long form has many.
    first = bisect.bisect_right(escapes, start, key=lambda span: span[1])
    near = escapes[first:first + 2]
    if any(start <= escape_start and escape_end <= end for escape_start, escape_end in near):
        return True
    inside = sum(max(0, min(escape_end, end) - max(escape_start, start))
                 for escape_start, escape_end in near)
    return end - start - inside >= 2


def _printable(line: str) -> str:
    """``line`` without control characters (Unicode's category C: C0, C1, format
    characters such as a direction override), its ends' blanks stripped."""
    return "".join(char for char in line if not unicodedata.category(char).startswith("C")) \
        .strip()
