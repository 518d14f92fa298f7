"""The request line checks that aiohttp's compiled parser (llhttp) makes and its
pure-Python parser does not. The pure-Python one serves where aiohttp's wheel has no
compiled extension (or under ``AIOHTTP_NO_EXTENSIONS``); without these checks a node there
answers an ``HTTP/9.9`` request 200 in ``HTTP/9.9``, serves a made-up method (``BREW``,
``get``: each a new series of ``clawsync_http_requests_total``, without bound), stores an
append whose path holds raw UTF-8 bytes, and answers 500, with a traceback in its log, a
path whose bytes are not UTF-8 (they reach the handlers as lone surrogates, which no
answer can encode).

>>> from aiohttp.test_utils import make_mocked_request
>>> from aiohttp.http_writer import HttpVersion
>>> refuse_bad_request_line(make_mocked_request("GET", "/v1/sessions?limit=5"))
>>> refuse_bad_request_line(make_mocked_request("GET", "/", version=HttpVersion(9, 9)))
Traceback (most recent call last):
node.http.errors.HttpError: HTTP/9.9 is not a version this node speaks ...
>>> refuse_bad_request_line(make_mocked_request("BREW", "/"))
Traceback (most recent call last):
node.http.errors.HttpError: 'BREW' is not an HTTP method ...
>>> refuse_bad_request_line(make_mocked_request("GET", "/s/\\udcff"))
Traceback (most recent call last):
node.http.errors.HttpError: the request target must be ASCII (...): '/s/\\udcff'
"""

from __future__ import annotations

from aiohttp import web

from node.http.errors import HttpError

#: The HTTP versions the compiled parser lets through (llhttp reads 0.9, 1.0, 1.1 and
#: 2.0 in a request line; a 2.0 request is answered as 1.1 would be).
_VERSIONS = frozenset({(0, 9), (1, 0), (1, 1), (2, 0)})
#: The methods the compiled parser lets through in an HTTP request: llhttp's
#: ``METHODS_HTTP`` (its src/llhttp/constants.ts; aiohttp's compiled parser is llhttp),
#: less ``PRI``, which llhttp takes only as HTTP/2's connection preface. Case counts:
#: ``get`` is not ``GET``.
METHODS = frozenset({
    "DELETE", "GET", "HEAD", "POST", "PUT", "CONNECT", "OPTIONS", "TRACE",
    # WebDAV
    "COPY", "LOCK", "MKCOL", "MOVE", "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK", "BIND",
    "REBIND", "UNBIND", "ACL",
    # Subversion
    "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE",
    # UPnP
    "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE",
    # RFC 5789, CalDAV, RFC 2068, Icecast, the QUERY draft
    "PATCH", "PURGE", "MKCALENDAR", "LINK", "UNLINK", "SOURCE", "QUERY",
})
#: Characters of a refused request target quoted in the answer.
_TARGET_CHARS_SHOWN = 64


def refuse_bad_request_line(request: web.BaseRequest) -> None:
    """400 ``invalid_request`` for a request line the compiled parser refuses: a version
    other than HTTP/0.9, 1.0, 1.1 or 2.0, a method not in ``METHODS``, or a target (path
    and query) with a byte that is not ASCII (HTTP wants them percent-encoded;
    ``node.http.params`` reads the encoding)."""
    major, minor = request.version
    if (major, minor) not in _VERSIONS:
        raise HttpError(400, "invalid_request",
                        f"HTTP/{major}.{minor} is not a version this node speaks (it "
                        "reads HTTP/1.0 and 1.1, and 0.9 and 2.0 as they do)")
    if request.method not in METHODS:
        # !a: the method is any token the pure-Python parser read, shown as sent.
        raise HttpError(400, "invalid_request",
                        f"{request.method[:_TARGET_CHARS_SHOWN]!a} is not an HTTP method "
                        "(a method's name is upper case: GET, POST, ...)")
    target = request.raw_path
    if not target.isascii():
        # !a, not the target itself: a lone surrogate cannot be encoded in an answer.
        raise HttpError(400, "invalid_request",
                        "the request target must be ASCII (percent-encode other bytes): "
                        f"{target[:_TARGET_CHARS_SHOWN]!a}")
