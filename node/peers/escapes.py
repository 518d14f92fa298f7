"""Escapes a page may write a character in, read as that character: what
``node.peers.hiding`` counts runs of a credential in, each escape as one character."""

from __future__ import annotations

import functools
import re

#: One escaped character, in either case: URL (``%XX``, and ``%25XX``: done twice;
#: ``%uXXXX``, JavaScript's ``escape``), an HTML numeric reference (zero-padded or not,
#: its ``;`` left out or not, as HTML's parsers read it: up to the last digit) or named
#: one, a JSON ``\\uXXXX`` or short escape, JavaScript's ``\\u{X...}``, ``\\xXX`` and
#: the octal ``\\ooo`` of C, Python and Git's quoted paths (a byte, as ``%XX``; one to
#: three digits, as C reads them). Each stands for one character when runs are counted
#: (``decoded``). ASCII's case only: Unicode's would take the long s of "&apo\u017f;"
#: for an "s".
ESCAPE = re.compile(r"%(?:25)?[0-9a-f]{2}|%u[0-9a-f]{4}|&#x0*[0-9a-f]{1,6}(?:;|(?![0-9a-f]))"
                    r"|&#0*[0-9]{1,7}(?:;|(?![0-9]))|&(?:amp|lt|gt|quot|apos);"
                    r"|\\u[0-9a-f]{4}|\\u\{0*[0-9a-f]{1,6}\}|\\x[0-9a-f]{2}"
                    r"|\\[0-7]{1,3}|\\[\"\\/bfnrt]", re.IGNORECASE | re.ASCII)
#: The start of an escape that a cut body ends with: the rest of it did not come.
ESCAPE_START = re.compile(r"(?:%(?:25)?[0-9a-f]?|%u[0-9a-f]{0,3}|&#?x?[0-9a-f]*|&[a-z]*"
                          r"|\\(?:u[0-9a-f]{0,3}|u\{[0-9a-f]*|x[0-9a-f]?|[0-7]{1,2})?)\Z",
                          re.ASCII)
_NAMED = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'"}
_SHORT = {'\\"': '"', "\\\\": "\\", "\\/": "/", "\\b": "\b", "\\f": "\f", "\\n": "\n",
          "\\r": "\r", "\\t": "\t"}
#: ASCII's capital letters folded, each to one character: where the folded text holds a
#: run, the text holds it (``str.lower`` may make two characters of one).
FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def decoded(text: str) -> tuple[str, list[int], list[int]]:
    """``text`` with each escape (``ESCAPE``) read as the character it stands for,
    and where in ``text`` each character of it begins and ends: a run found there is
    hidden whole, escapes and all, and a JSON string stays one.

    >>> decoded("a%41&#066;&AMP;")
    ('aAB&', [0, 1, 4, 10], [1, 4, 10, 15])
    >>> decoded("%u0061%U20AC \\141\\142")[0]
    'a€ ab'
    """
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    shown = 0
    for escape in ESCAPE.finditer(text):
        start, end = escape.span()
        char = _character(escape[0])
        if char is None:
            continue
        chars.append(text[shown:start])
        starts += range(shown, start)
        ends += range(shown + 1, start + 1)
        chars.append(char)
        starts.append(start)
        ends.append(end)
        shown = end
    chars.append(text[shown:])
    starts += range(shown, len(text))
    ends += range(shown + 1, len(text) + 1)
    return "".join(chars), starts, ends


@functools.lru_cache(maxsize=1024)  # a page repeats its escapes: read each once
def _character(escape: str) -> str | None:
    """The character ``escape`` stands for; None if it stands for none."""
    escape = escape.translate(FOLD)
    if escape in _NAMED:
        return _NAMED[escape]
    if escape in _SHORT:
        return _SHORT[escape]
    if escape.startswith("&#x"):
        code = int(escape[3:].removesuffix(";"), 16)
    elif escape.startswith("&#"):
        code = int(escape[2:].removesuffix(";"))
    elif escape.startswith("%u"):
        code = int(escape[2:], 16)
    elif escape[0] == "%":  # %XX, %25XX (URL encoding done twice)
        code = int(escape[-2:], 16)
    elif escape[1].isdigit():  # \ooo
        code = int(escape[1:], 8)
    else:  # \uXXXX, \u{X...}, \xXX
        code = int(escape[2:].strip("{}"), 16)
    return chr(code) if code <= 0x10FFFF else None
