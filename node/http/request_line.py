"""The request line checks that aiohttp's compiled parser (llhttp) makes and its
pure-Python parser does not. The pure-Python one serves where aiohttp's wheel has no
compiled extension (or under ``AIOHTTP_NO_EXTENSIONS``); without these checks a node there
answers an ``HTTP/9.9`` request 200 in ``HTTP/9.9``, stores an append whose path holds raw
UTF-8 bytes, and answers 500, with a traceback in its log, a path whose bytes are not
UTF-8 (they reach the handlers as lone surrogates, which no answer can encode).

>>> from aiohttp.test_utils import make_mocked_request
>>> from aiohttp.http_writer import HttpVersion
>>> refuse_bad_request_line(make_mocked_request("GET", "/v1/sessions?limit=5"))
>>> refuse_bad_request_line(make_mocked_request("GET", "/", version=HttpVersion(9, 9)))
Traceback (most recent call last):
node.http.errors.HttpError: HTTP/9.9 is not a version this node speaks ...
>>> refuse_bad_request_line(make_mocked_request("GET", "/s/\\udcff"))
Traceback (most recent call last):
node.http.errors.HttpError: the request target must be ASCII (...): '/s/\\udcff'
"""

from __future__ import annotations

from aiohttp import web

from node.http.errors import HttpError

#: The HTTP versions the compiled parser lets through: HTTP/0.9 is a request line
#: without one, answered as HTTP/1.0 would be.
_VERSIONS = frozenset({(0, 9), (1, 0), (1, 1)})
#: Characters of a refused request target quoted in the answer.
_TARGET_CHARS_SHOWN = 64


def refuse_bad_request_line(request: web.BaseRequest) -> None:
    """400 ``invalid_request`` for a request line the compiled parser refuses: a version
    other than HTTP/1.0 or 1.1, or a target (path and query) with a byte that is not
    ASCII (HTTP wants them percent-encoded; ``node.http.params`` reads the encoding)."""
    major, minor = request.version
    if (major, minor) not in _VERSIONS:
        raise HttpError(400, "invalid_request",
                        f"HTTP/{major}.{minor} is not a version this node speaks (it "
                        "speaks HTTP/1.0 and HTTP/1.1)")
    target = request.raw_path
    if not target.isascii():
        # !a, not the target itself: a lone surrogate cannot be encoded in an answer.
        raise HttpError(400, "invalid_request",
                        "the request target must be ASCII (percent-encode other bytes): "
                        f"{target[:_TARGET_CHARS_SHOWN]!a}")
