"""The bounds on a request's head that aiohttp's parser keeps, given to its server
(``web.AppRunner``) so that they are the same whichever of its parsers runs: the compiled
one (llhttp), or the pure-Python one where aiohttp's wheel has no compiled extension (or
under ``AIOHTTP_NO_EXTENSIONS``). A head past them is refused 400 by the parser.

>>> head_limits(pure_python=False)
{'max_headers': 128, 'max_field_size': 8190, 'max_line_size': 8190}
>>> head_limits(pure_python=True)
{'max_headers': 130, 'max_field_size': 8192, 'max_line_size': 8192}
"""

from __future__ import annotations

from typing import TypedDict

import aiohttp.http_parser

#: Most header fields in a request (aiohttp's default).
HEADERS_MAX = 128
#: Longest header field (aiohttp's default, in bytes): its name and its value together,
#: as the compiled parser counts; the pure-Python one counts the whole line, so it is
#: given the ``: `` between them too (``head_limits``).
HEADER_BYTES_MAX = 8190
#: Longest request target (aiohttp's default, in bytes). The pure-Python parser bounds
#: the whole request line, method and version too, so there a target is refused a few
#: bytes shorter (11 or more: no constant makes up for a method's length).
TARGET_BYTES_MAX = 8190
#: What the pure-Python parser counts in a header line that the compiled one does not.
_NAME_VALUE_SEPARATOR = len(": ")


class HeadLimits(TypedDict):
    """aiohttp's server's keyword arguments for them."""

    max_headers: int
    max_field_size: int
    max_line_size: int


def pure_python_parser() -> bool:
    """Whether aiohttp parses requests with its pure-Python parser (decided once, when
    aiohttp is first imported)."""
    return aiohttp.http_parser.HttpRequestParser is aiohttp.http_parser.HttpRequestParserPy


def head_limits(pure_python: bool | None = None) -> HeadLimits:
    """The keyword arguments of aiohttp's server that bound a request's head, for the
    parser aiohttp uses (``pure_python``, found out if None)."""
    if pure_python is None:
        pure_python = pure_python_parser()
    if not pure_python:
        return HeadLimits(max_headers=HEADERS_MAX, max_field_size=HEADER_BYTES_MAX,
                          max_line_size=TARGET_BYTES_MAX)
    # The pure-Python parser counts the request line and the empty line that ends the
    # head among the headers: without these two it would refuse 127 or 128 headers that
    # the compiled parser takes. A header line written ``name:value`` (no space) gets one
    # byte more than on the compiled parser, one with more spaces fewer. It holds a header
    # line to max_line_size, not max_field_size, when the line begins in a later read than
    # the request line or is split between reads (it starts each read with the request
    # line's bound): as the network splits a head, so the same header is taken in one
    # read and refused over two, unless both bounds are the same. The request line is
    # then bounded at 8,192 bytes, still short of a target of TARGET_BYTES_MAX.
    header_line_max = HEADER_BYTES_MAX + _NAME_VALUE_SEPARATOR
    return HeadLimits(max_headers=HEADERS_MAX + 2, max_field_size=header_line_max,
                      max_line_size=header_line_max)
