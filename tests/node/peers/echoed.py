"""What a proxy's page may make of our credentials, shared by the tests of their hiding
(``node.peers.hiding``): the encodings a page may repeat the Authorization header in,
and the secrets drawn for the property tests."""

from __future__ import annotations

import base64
import html
import json
import re
import string
from collections.abc import Callable
from urllib.parse import quote, quote_plus

from hypothesis import strategies as st

from node.peers.hiding import HIDDEN_TEXT, SHOWN_IN_A_ROW_MAX


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda escape: escape[0].lower(), text)


def _hex_in_either_case(text: str) -> str:
    """``text``'s escapes with their hex in lower case, every other one in upper case."""
    escapes = iter(range(len(text)))
    return re.sub(r"(?<=%)[0-9A-Fa-f]{2}|(?<=\\u)[0-9A-Fa-f]{4}|(?<=&#x)[0-9A-Fa-f]+",
                  lambda hex_: hex_[0].upper() if next(escapes) % 2 else hex_[0].lower(), text)


def _html(escapes: dict[str, str]) -> Callable[[str], str]:
    table = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", **escapes})
    return lambda text: text.translate(table)


def _every_escaped(text: str) -> str:
    """``text`` with every character a JSON ``\\uXXXX`` escape: one beyond the BMP as
    its two UTF-16 halves, as JSON writes it."""
    units = text.encode("utf-16-be")
    return "".join(f"\\u{int.from_bytes(units[at:at + 2]):04x}"
                   for at in range(0, len(units), 2))


def _little_endian_words(text: str) -> str:
    """``text``'s UTF-8 bytes as ``hexdump`` and ``od -x`` show them: 16-bit words in
    little-endian order (the last byte alone in one, with a zero)."""
    raw = text.encode() + bytes(len(text.encode()) % 2)
    return " ".join(f"{int.from_bytes(raw[at:at + 2], 'little'):04x}"
                    for at in range(0, len(raw), 2))


ENCODINGS: dict[str, Callable[[str], str]] = {
    "url": lambda text: quote(text, safe=""),
    "url, lower-case hex": lambda text: _lower_hex(quote(text, safe="")),
    "url, hex in either case": lambda text: _hex_in_either_case(
        "".join(f"%{byte:02x}" for byte in text.encode())),
    "url, a form's": lambda text: quote_plus(text, safe=""),
    "base64": _b64,  # "Bearer " is 7 bytes: the secret begins a group's second byte
    "base64, after a byte": lambda text: _b64("x" + text),  # its third
    "base64, after two bytes": lambda text: _b64("xy" + text),  # its first
    "url-safe base64": lambda text: base64.urlsafe_b64encode(text.encode()).decode(),
    "html": html.escape,
    "html, Go's": _html({'"': "&#34;", "'": "&#39;", "+": "&#43;"}),
    "html, PHP's": _html({'"': "&quot;", "'": "&#039;"}),
    "html, numeric": lambda text: "".join(f"&#{ord(char)};" for char in text),
    "html, numeric hex in upper case": lambda text: "".join(f"&#x{ord(char):X};"
                                                            for char in text),
    "html, numeric hex after &#X": lambda text: "".join(f"&#X{ord(char):x};" for char in text),
    # HTML's parsers read a numeric reference without its ";" too.
    "html, numeric without ;": lambda text: "".join(f"&#{ord(char)}" for char in text),
    "html, numeric hex without ;": lambda text: "".join(f"&#x{ord(char):x}" for char in text),
    "json": lambda text: json.dumps(text)[1:-1],
    "json, / escaped": lambda text: json.dumps(text)[1:-1].replace("/", "\\/"),
    "json, every character escaped": lambda text: _every_escaped(text),
    "json, every character escaped, hex in either case": lambda text: _hex_in_either_case(
        _every_escaped(text)),
    "url, twice": lambda text: quote(quote(text, safe=""), safe=""),
    "javascript's \\u{...}": lambda text: "".join(f"\\u{{{ord(char):x}}}" for char in text),
    "\\x, its bytes": lambda text: "".join(f"\\x{byte:02x}" for byte in text.encode()),
    "%u, each UTF-16 unit (JavaScript's escape)": lambda text: _every_escaped(text)
    .replace("\\u", "%u"),
    "octal, its bytes": lambda text: "".join(f"\\{byte:o}" for byte in text.encode()),
    "base32": lambda text: base64.b32encode(text.encode()).decode(),
    "base32, after a byte": lambda text: base64.b32encode(b"x" + text.encode()).decode(),
    "base32, small letters": lambda text: base64.b32encode(text.encode()).decode().lower(),
    "base64 of its UTF-16 (LE)": lambda text: base64.b64encode(text.encode("utf-16-le"))
    .decode(),
    "base64 of its UTF-16 (BE), after a byte": lambda text: base64.b64encode(
        b"x" + text.encode("utf-16-be")).decode(),
    "hex": lambda text: text.encode().hex(),
    "hex, upper case, a space between bytes": lambda text: text.encode().hex(" ").upper(),
    "hex, : between bytes": lambda text: text.encode().hex(":"),
    "hex, - between bytes": lambda text: text.encode().hex("-"),
    "hex, xxd's groups of two bytes": lambda text: text.encode().hex(" ", 2),
    "hex, a C array's": lambda text: ", ".join(f"0x{byte:02x}" for byte in text.encode()),
    "hex, \\x escapes, a space between": lambda text: " ".join(
        f"\\x{byte:02x}" for byte in text.encode()),
    "hex, \\x escapes, a comma between": lambda text: ",".join(
        f"\\x{byte:02X}" for byte in text.encode()),
    "hex, hexdump's little-endian words": _little_endian_words,
    "hex, after a byte, hexdump's little-endian words": lambda text: _little_endian_words(
        "x" + text),
    "decimal bytes, a Buffer's JSON": lambda text: ",".join(map(str, text.encode())),
    "decimal bytes, a list's": lambda text: ", ".join(map(str, text.encode())),
}
#: The encodings of the bytes, in hex or decimal, whose runs are counted in hex digits.
HEX = frozenset(name for name in ENCODINGS if name.startswith(("hex", "decimal")))

#: The words the pages of these tests hold around the secret, and the words that hide it
#: (a secret ``IDDEN`` is found again in the ``(hidden)`` put in its place).
_PAGE_WORDS = ("echo Authorization: Bearer ".casefold(), HIDDEN_TEXT.casefold())


def _apart_from_the_page(secret: str) -> bool:
    """Whether no run the hiding would find of ``secret`` (as long as one hidden) is
    also in the pages' own words or the hiding's: a secret ``BEARE`` hides the ``Beare``
    of ``Bearer``, rightly, and the count of what is shown around it no longer means anything."""
    folded, run = secret.casefold(), SHOWN_IN_A_ROW_MAX + 1
    return not any(folded[at:at + run] in words for words in _PAGE_WORDS
                   for at in range(len(folded) - run + 1))


#: What a cluster secret may be: as ``secrets.token_urlsafe`` makes them, and with
#: characters each encoding writes otherwise; no shorter than a run hidden
#: (``node.peers.hiding.SHOWN_IN_A_ROW_MAX``), which is not found.
SECRETS = st.one_of(
    st.binary(min_size=4, max_size=40).map(
        lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")),
    # Escape-like text (%41, &amp;, \n) and characters beyond ASCII and the BMP too.
    st.text(string.ascii_letters + string.digits + "-_~+/=&<\"'> %\\#;äöé€\U0001F600",
            min_size=5, max_size=40)).filter(_apart_from_the_page)
