"""Our credentials in a peer's refusal (``node.peers.hiding``, through
``node.peers.dial_words.refusal_text``): never more than ``SHOWN_IN_A_ROW_MAX``
characters of them in a row, wherever line breaks and control characters are put; and
an ordinary refusal is shown as it is."""

from __future__ import annotations

import base64
import html
import json
import re
import sys
import unicodedata
from collections.abc import Callable
from urllib.parse import quote, quote_plus, unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.peers.dial_words import refusal_text
from node.peers.hiding import (
    BASE32_HIDDEN_IN_A_ROW,
    HEX_HIDDEN_IN_A_ROW,
    HIDDEN_TEXT,
    SHOWN_IN_A_ROW_MAX,
    UTF16_BASE64_HIDDEN_IN_A_ROW,
)
from node.text import printable
from tests.node.peers.echoed import ENCODINGS, HEX, SECRETS

_RUN = SHOWN_IN_A_ROW_MAX + 1
#: Where ``str.splitlines`` breaks a line, and characters of Unicode's category C (C0,
#: C1, format, private use, unassigned): what a shown line is cut at; what is taken out
#: of it (C0, C1, the bidirectional controls) or kept and read through (the others).
BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
CONTROLS = ("\x00\x01\x1b\x7f\x9b\u200b\u200d\u200e\u202e\u2066\ufeff\ue000\U000f0000"
            "\u0378\U000e0080")

#: The encodings that write each character of the secret alone (the test reads them
#: back, ``_readings``), and base64's and base32's, read by their characters.
CHARACTER_WISE = {name: encode for name, encode in ENCODINGS.items()
                  if "base" not in name and name not in HEX}
CHARACTER_WISE["as it is"] = lambda text: text
BASE64 = {name: encode for name, encode in ENCODINGS.items() if "base" in name}
BASE64["base64 in lines of 76 (MIME)"] = lambda text: base64.encodebytes(text.encode()).decode()


def _readings(text: str) -> list[str]:
    """``text`` with its escapes read: HTML references, URL's (once, and twice), JSON's,
    JavaScript's ``\\u{...}``, and ``\\x`` escapes of UTF-8 bytes; and again with
    ``%uXXXX`` and octal escapes of UTF-8 bytes read too (a reading of its own: a JSON
    ``\\\\`` before digits is no octal escape)."""
    text = re.sub(r"(?:\\x[0-9a-fA-F]{2})+", lambda escapes: bytes.fromhex(
        escapes[0].replace("\\x", "")).decode(errors="replace"), text)
    text = re.sub(r"\\u\{([0-9a-fA-F]+)\}", lambda escape: chr(int(escape[1], 16)), text)
    octal = re.sub(r"(?:\\[0-7]{1,3})+", lambda escapes: bytes(
        int(byte, 8) % 256 for byte in escapes[0].split("\\")[1:]).decode(errors="replace"),
        re.sub(r"%u([0-9a-fA-F]{4})", lambda escape: chr(int(escape[1], 16)), text))
    readings = []
    for read in (text, octal):
        once = unquote(html.unescape(read))
        # A ``\u`` that starts no escape (no four hex digits after it) is read as
        # nothing by JSON, JavaScript or Python (they refuse it), not as a "u".
        readings += [re.sub(r"\\u([0-9a-fA-F]{4})|\\([^u])", lambda escape: chr(int(escape[1], 16))
                            if escape[1] else {"n": "\n", "t": "\t"}.get(escape[2], escape[2]),
                            twice) for twice in (once, unquote(once))]
    return readings


def _seen(text: str) -> str:
    """``text`` as a reader sees it: without format characters (a zero width joiner),
    characters of private use and unassigned ones."""
    return "".join(char for char in text
                   if unicodedata.category(char) not in ("Cf", "Co", "Cn"))


def _runs(text: str, length: int = _RUN) -> set[str]:
    return {text[at:at + length].lower() for at in range(len(text) - length + 1)}


@st.composite
def _inserted(draw: st.DrawFn, text: str) -> str:
    """``text`` with a few line breaks and control characters put anywhere in it."""
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(BREAKS + CONTROLS)) + text[at:]
    return text


@settings(max_examples=300, deadline=None)
@given(secret=SECRETS, encoding=st.sampled_from(sorted(CHARACTER_WISE)), data=st.data(),
       whole=st.booleans())
def test_no_run_of_the_secret_is_shown_wherever_breaks_and_controls_are_put(
        secret: str, encoding: str, data: st.DataObject, whole: bool) -> None:
    """A page repeating the Authorization header, encoded, with line breaks and control
    characters anywhere (in escapes too), whole or cut short: what is shown, read back
    from its escapes, holds no run of more than ``SHOWN_IN_A_ROW_MAX`` characters of the
    secret (as a form's URL encoding writes it, too)."""
    page = data.draw(_inserted("echo " + CHARACTER_WISE[encoding](f"Bearer {secret}")))
    said = refusal_text(page.encode(), [secret], whole=whole)
    secret_runs = _runs(secret) | _runs(secret.replace(" ", "+"))
    for piece in said.split(HIDDEN_TEXT):
        for reading in _readings(_seen(piece)):
            assert not _runs(reading) & secret_runs, (page, said)


@settings(max_examples=150, deadline=None)
@given(secret=SECRETS, encoding=st.sampled_from(sorted(BASE64)), data=st.data(),
       whole=st.booleans())
def test_no_run_of_the_secret_s_base64_is_shown_wherever_breaks_and_controls_are_put(
        secret: str, encoding: str, data: st.DataObject, whole: bool) -> None:
    """As above, for base64 and base32: no run of more than ``SHOWN_IN_A_ROW_MAX`` of the
    characters that stand for the secret's bytes alone; of base32, no run of
    ``BASE32_HIDDEN_IN_A_ROW``; of the base64 of its UTF-16, no run of
    ``UTF16_BASE64_HIDDEN_IN_A_ROW``."""
    encode: Callable[[str], str] = BASE64[encoding]
    run = UTF16_BASE64_HIDDEN_IN_A_ROW if "UTF-16" in encoding \
        else BASE32_HIDDEN_IN_A_ROW if "base32" in encoding else _RUN
    coded = encode(f"Bearer {secret}").replace("\n", "").rstrip("=")
    # The characters that stand for the secret's bytes alone, with none of "Bearer ".
    alone = coded[len(encode("Bearer ").replace("\n", "").rstrip("=")) + 1:len(coded) - 1]
    page = data.draw(_inserted("echo " + encode(f"Bearer {secret}")))
    said = refusal_text(page.encode(), [secret], whole=whole)
    for piece in said.split(HIDDEN_TEXT):
        assert not _runs(_seen(piece), run) & _runs(alone, run), (page, said)


@pytest.mark.parametrize("secret", [
    "%41%42%43%44%45%46%47%48", "deadbeef%c0%ffee%ab12", "Tr0&amp;b4dor&lt;x&gt;z",
    "line\\nbreak\\u0041more", "p\u00e4ssw\u00f6rd-p\u00e4ssw\u00f6rd",
    "key-\U0001F600-\U0001F511-s3cr3t"])
@pytest.mark.parametrize("encoding", ["as it is", "url", "url, a form's", "json"])
def test_a_secret_holding_escape_like_or_non_ascii_text_is_hidden(
        secret: str, encoding: str) -> None:
    """A secret that holds escape-like text itself, or characters beyond ASCII (read
    byte by byte from ``%XX``, or as JSON's surrogate pairs), echoed: no run of it is
    shown."""
    encode = {"as it is": lambda text: text, "url": lambda text: quote(text, safe=""),
              "url, a form's": lambda text: quote_plus(text, safe=""),
              "json": lambda text: json.dumps(text)[1:-1]}[encoding]
    page = f"echo Bearer {encode(secret)} here"
    assert refusal_text(page.encode(), [secret]) == "echo Bearer (hidden) here"


def _hex_read(text: str, encoding: str) -> str:
    """The hex digits of the bytes ``text`` shows in ``encoding`` (``HEX``): its hex
    digits, whatever is between them; of little-endian words, each group of four
    digits with its two bytes swapped; of decimal, each number's byte in hex."""
    if encoding.startswith("decimal"):
        return "".join(f"{int(number):02x}" if int(number) < 256 else ".."
                       for number in re.findall(r"[0-9]+", text))
    if "little-endian" in encoding:
        return "".join(word[2:] + word[:2] for word in re.findall(r"[0-9a-f]{4}", text.lower()))
    return re.sub(r"[^0-9a-f]", "", text.lower())


@settings(max_examples=300, deadline=None)
@given(secret=SECRETS, encoding=st.sampled_from(sorted(HEX)), data=st.data(),
       whole=st.booleans())
def test_no_run_of_the_secret_s_hex_is_shown_wherever_breaks_and_controls_are_put(
        secret: str, encoding: str, data: st.DataObject, whole: bool) -> None:
    """A dump of the Authorization header's bytes, in hex (in either case, with
    separators between bytes or groups of them, or none, in little-endian words) or
    decimal, with line breaks and control characters anywhere: read back, no run of
    ``HEX_HIDDEN_IN_A_ROW`` digits of the secret's bytes is shown, so no more than
    ``SHOWN_IN_A_ROW_MAX`` of its bytes."""
    page = data.draw(_inserted("echo " + ENCODINGS[encoding](f"Bearer {secret}")))
    said = refusal_text(page.encode(), [secret], whole=whole)
    secret_runs = _runs(secret.encode().hex(), HEX_HIDDEN_IN_A_ROW)
    for piece in said.split(HIDDEN_TEXT):
        assert not _runs(_hex_read(_seen(piece), encoding), HEX_HIDDEN_IN_A_ROW) \
            & secret_runs, (page, said)


def test_a_hex_run_one_digit_short_is_shown() -> None:
    """The limit: ``SHOWN_IN_A_ROW_MAX`` bytes' digits of a secret's hex are shown, as
    ordinary ids and numbers may hold them; one digit more is hidden."""
    secret_hex = b"s3cret-s3cret".hex()
    shown = secret_hex[:HEX_HIDDEN_IN_A_ROW - 1]
    assert refusal_text(f"at {shown}".encode(), ["s3cret-s3cret"]) == f"at {shown}"
    longer = secret_hex[1:HEX_HIDDEN_IN_A_ROW + 1].upper()
    assert refusal_text(f"at {longer}".encode(), ["s3cret-s3cret"]) == "at (hidden)"


def test_base64_runs_are_matched_in_their_own_case() -> None:
    """Base64 tells its letters apart by case: a run of a secret's base64 in another
    case is ordinary text, shown (a secret's base64 holds words such as "reset" in
    some case); in its own, hidden."""
    secret = "s3cret-s3cret"
    assert "MzY3JldC1zM2NyZX" in base64.b64encode(f"Bearer {secret}".encode()).decode()
    assert refusal_text(b"see mzy3jldc or MZY3JLDC", [secret]) == "see mzy3jldc or MZY3JLDC"
    assert refusal_text(b"see MzY3JldC", [secret]) == "see (hidden)"


#: Refusals as servers and proxies write them, and words.
ORDINARY = [
    "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 "
    "Forbidden</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>",
    "Service unavailable\r\n<p>details</p>",
    "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>401 "
    "Unauthorized</title>\n</head><body>\n<h1>Unauthorized</h1>\n<p>This server could not "
    "verify that you\nare authorized to access the document\nrequested.</p>\n</body></html>",
    '{"error": {"code": "forbidden", "message": "peer credentials missing or wrong"}}',
    '{"message":"expected \\u003cname\\u003e \\u0026 a value","code":403}',
    "Too Many Requests: retry after 30 seconds &amp; slow down",
    "502 Bad Gateway: request 7f3a9c2e4b1d8a6f5e0c3b2a1d9e8f7c at 1733480000123 &#169 2026",
    "upstream connect error or disconnect/reset before headers. reset reason: overflow",
]
WORDS = ["access", "denied", "forbidden", "unauthorized", "request", "rejected", "by",
         "policy", "gateway", "proxy", "server", "error", "timeout", "bad", "token",
         "missing", "wrong", "credentials", "service", "unavailable", "please", "try",
         "again", "later", "the", "this", "node", "cluster", "secret", "bearer", "header"]


#: Secrets as they are made (``secrets.token_urlsafe``, 16 bytes or more): a short or
#: word-like one may share a run with ordinary words, and those are hidden (documented).
MADE_SECRETS = st.binary(min_size=16, max_size=32).map(
    lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("="))


@settings(max_examples=400, deadline=None)
@given(secret=MADE_SECRETS,
       body=st.one_of(st.sampled_from(ORDINARY),
                      st.lists(st.sampled_from(WORDS), min_size=1, max_size=40).map(" ".join)),
       whole=st.booleans())
def test_an_ordinary_refusal_is_shown_as_it_is(secret: str, body: str, whole: bool) -> None:
    """A refusal that does not repeat the secret is shown as it would be with nothing
    to hide: a run of five characters of a secret is not found in ordinary words."""
    assert refusal_text(body.encode(), [secret], whole=whole) \
        == refusal_text(body.encode(), whole=whole)


#: Unicode's format characters (category Cf), as this Python knows them.
FORMATS = [chr(code) for code in range(sys.maxunicode + 1)
           if unicodedata.category(chr(code)) == "Cf"]


def test_a_refusal_takes_out_the_characters_printable_escapes_and_only_those() -> None:
    """What a refusal's line shown takes out is what ``node.text.printable`` escapes
    (C0, C1, the bidirectional controls): one rule, not two. The zero width joiner of
    an emoji is kept; line breaks end the line shown, and are not asked."""
    emoji = "\U0001f469\u200d\U0001f4bb"
    assert refusal_text(f"{emoji} says no".encode()) == f"{emoji} says no"
    for char in [chr(code) for code in range(0xa0)] + FORMATS:
        if char in BREAKS:
            continue
        kept = char in refusal_text(f"a{char}b".encode())
        assert kept == (printable(char) == char), hex(ord(char))


def test_a_secret_split_by_format_characters_is_hidden() -> None:
    """A format character kept in a line shown (a zero width joiner) is unseen: a
    secret with one between every two of its characters is hidden, as it would be
    without them."""
    secret = "jc9_uBIbfsRRiHpAjHJkV1yZlxAz3rcyv86AoxTcfaU"
    for char in FORMATS:
        pieces = char.join(secret[at:at + 2] for at in range(0, len(secret), 2))
        assert refusal_text(f"Bearer {pieces}!".encode(), [secret]) == f"Bearer {HIDDEN_TEXT}!", \
            hex(ord(char))


@pytest.mark.parametrize("char", ["\ue000", "\U000f0000", "\u0378", "\U000e0080"])
def test_a_secret_split_by_private_use_or_unassigned_characters_is_hidden(char: str) -> None:
    """Characters of private use (category Co) and unassigned ones (Cn) are kept in a
    line shown, and most fonts show them as nothing or a box: a secret with one between
    each of its characters is hidden, as it would be without them."""
    secret = "jc9_uBIbfsRRiHpAjHJkV1yZlxAz3rcyv86AoxTcfaU"
    assert refusal_text(f"Bearer {char.join(secret)}!".encode(), [secret]) \
        == f"Bearer {HIDDEN_TEXT}!"


def test_a_page_in_capitals_is_not_taken_for_base32() -> None:
    """A run of ``BASE32_HIDDEN_IN_A_ROW`` characters of a secret's base32 is hidden, not
    a shorter one: this secret's base32 holds "QUEST", which a page in capitals says."""
    secret = "V-NU1ZFfy9z_t9mNlycYKXpU2vaBJb0-mm-ZnD085qY"
    page = "403 FORBIDDEN: REQUEST BLOCKED BY SECURITY POLICY. REFERENCE ID 7F3A9C2E"
    assert refusal_text(page.encode(), [secret]) == page
    coded = base64.b32encode(f"Bearer {secret}".encode()).decode()
    run = coded[20:20 + BASE32_HIDDEN_IN_A_ROW]
    assert refusal_text(f"see {run[:-1]}".encode(), [secret]) == f"see {run[:-1]}"
    assert refusal_text(f"see {run}".encode(), [secret]) == f"see {HIDDEN_TEXT}"


def test_a_letter_that_folds_to_ascii_is_no_escape() -> None:
    """Unicode folds "\u017f" (long s) to "s": in "&apos;"'s place it is ordinary text:
    shown as it is, the page read without error."""
    page = "x &apo\u017f; y"
    assert refusal_text(page.encode(), ["s3cret-s3cret"]) == page


@pytest.mark.parametrize("lead", range(5))
@pytest.mark.parametrize("case", [str.upper, str.lower])
def test_the_base32_of_a_five_byte_secret_is_hidden(lead: int, case: Callable[[str], str]) -> None:
    """A secret of 5 bytes holds a run of ``BASE32_HIDDEN_IN_A_ROW`` characters of its
    base32 only where it begins a group of 5 bytes: wherever it begins, the characters
    that stand for its bytes alone (7 of them elsewhere) are hidden, in either case."""
    secret = "k9Xq2"
    before = "Bearer "[:3 + lead]  # the secret begins at byte (3 + lead) % 5 of a group
    coded = case(base64.b32encode(f"{before}{secret}".encode()).decode())
    said = refusal_text(f"echo {coded}".encode(), [secret])
    alone = coded[-(-8 * len(before) // 5):(8 * len(before + secret)) // 5]
    assert HIDDEN_TEXT in said and alone not in said, (coded, said)


@pytest.mark.parametrize(("page", "secret", "said"), [
    ("token: \\1234567 end", "1234567", f"token: {HIDDEN_TEXT} end"),
    ("x \\73cret y", "s3cret-s3cret", f"x {HIDDEN_TEXT} y")])
def test_a_run_read_into_an_escape_by_a_stray_backslash_is_hidden(
        page: str, secret: str, said: str) -> None:
    """A backslash before digits makes an octal escape of them ("\\123"): a run of the
    secret in the page as written is hidden all the same, with the escape it begins in."""
    assert refusal_text(page.encode(), [secret]) == said


@pytest.mark.parametrize("page", ["echo 22222222zzlbyte", "echo abcdefg2ZZLBYTE"])
def test_base32_after_a_run_in_the_other_case_is_hidden(page: str) -> None:
    """Digits are base32's in capitals and in small letters: a run in the one case that
    ends with them takes none from a run in the other that begins with them. "2ZZLBYT"
    stands for the bytes of "k9Xq2" alone (after "Bea")."""
    assert "2zzlbyt" in base64.b32encode(b"Beak9Xq2").decode().lower()
    said = refusal_text(page.encode(), ["k9Xq2"])
    assert "zzlbyt" not in said.lower()
    assert HIDDEN_TEXT in said
