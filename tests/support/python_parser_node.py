"""A build of clawsync that says, first thing on its output, which HTTP request parser
its aiohttp server builds: ``PARSER_LINE`` and the class's name. Run under
``AIOHTTP_NO_EXTENSIONS=1`` it serves through aiohttp's pure-Python parser, as a node on
a platform without aiohttp's compiled extension does; a test reads the line to know it
does (the variable is read once, when aiohttp is first imported). Run it as the
``clawsync`` command: ``python -m tests.support.python_parser_node serve ...``."""

from __future__ import annotations

import aiohttp.http_parser
import aiohttp.web_protocol

from node.http.head_limits import pure_python_parser
from node.main import main

#: What the line naming the parser begins with.
PARSER_LINE = "http request parser:"


def parser_line() -> str:
    """The line: the class aiohttp names ``HttpRequestParser`` and the one its server
    (``web_protocol``, which took the name at import) builds, and whether that is the
    pure-Python parser."""
    named = aiohttp.http_parser.HttpRequestParser
    built = vars(aiohttp.web_protocol)["HttpRequestParser"]  # imported, not exported
    pure = pure_python_parser() and built is named
    return f"{PARSER_LINE} {built.__module__}.{built.__name__} pure_python={pure}"


if __name__ == "__main__":
    print(parser_line(), flush=True)
    main(prog_name="clawsync")
