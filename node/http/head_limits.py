"""The bounds on a request's head that aiohttp's parser keeps, given to its server
(``web.AppRunner``) so that they are the same whichever of its parsers runs: the compiled
one (llhttp), or the pure-Python one where aiohttp's wheel has no compiled extension (or
under ``AIOHTTP_NO_EXTENSIONS``). A head past them is refused 400 by the parser.

>>> head_limits(pure_python=False)["max_headers"]
128
>>> head_limits(pure_python=True)["max_headers"]
130
"""

from __future__ import annotations

from typing import TypedDict

import aiohttp.http_parser

#: Most header fields in a request (aiohttp's default).
HEADERS_MAX = 128
#: Longest header field (aiohttp's default, in bytes): the compiled parser bounds its name
#: and its value each; the pure-Python one the whole line, ``name: value``.
HEADER_BYTES_MAX = 8190
#: Longest request target (aiohttp's default, in bytes): the pure-Python parser bounds
#: the whole request line, method and version too.
TARGET_BYTES_MAX = 8190


class HeadLimits(TypedDict):
    """aiohttp's server's keyword arguments for them."""

    max_headers: int
    max_field_size: int
    max_line_size: int


def head_limits(pure_python: bool | None = None) -> HeadLimits:
    """The keyword arguments of aiohttp's server that bound a request's head, for the
    parser aiohttp uses (``pure_python``, found out if None)."""
    if pure_python is None:
        pure_python = (aiohttp.http_parser.HttpRequestParser
                       is aiohttp.http_parser.HttpRequestParserPy)
    # The pure-Python parser counts the request line and the empty line that ends the
    # head among the headers: without these two it would refuse 127 or 128 headers that
    # the compiled parser takes.
    return HeadLimits(max_headers=HEADERS_MAX + 2 if pure_python else HEADERS_MAX,
                      max_field_size=HEADER_BYTES_MAX, max_line_size=TARGET_BYTES_MAX)
