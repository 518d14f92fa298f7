"""What a dial refused by a server on loopback says of the refusal's body
(``node.peers.dial_words.refusal_text``, read by ``node.peers.refusals``): the message
of a JSON error cut short, where it came whole; never the cluster secret, in whatever
form the refusal repeats it."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp import web
from hypothesis import assume, given, settings

from node.peers.dial_words import REFUSAL_BYTES_MAX, refusal_text
from node.peers.hiding import HIDDEN_TEXT, SHOWN_IN_A_ROW_MAX
from node.peers.link_errors import LinkClosed
from node.peers.refusals import refusals_read
from node.peers.transport import dial
from sync.peer.config import SyncConfig
from tests.node.peers.echoed import ENCODINGS, SECRETS
from tests.node.peers.support import SECRET, serving, stalling


async def dial_refused(url: str, secret: str = SECRET) -> str:
    """What a dial of ``url``, giving ``secret``, that is refused says after the address."""
    async with aiohttp.ClientSession(trace_configs=[refusals_read()]) as http:
        with pytest.raises(LinkClosed) as raised:
            await dial(http, url, node_id="n" * 32, secret=secret, advertise=None, tls=None,
                       config=SyncConfig())
    return str(raised.value).removeprefix(f"cannot link with {url}: ")


#: Past the bytes read of a refusal: what comes after is not read.
LONG = "x" * REFUSAL_BYTES_MAX


@pytest.mark.parametrize(("error", "shown"), [
    ({"code": "forbidden", "message": "Blocked by policy", "detail": LONG},
     ": Blocked by policy"),
    ({"message": "Blocked by \"policy\" \u00e9", "code": "forbidden"}, ": Blocked by \"policy\" é"),
    ("Blocked by policy", ": Blocked by policy"),
    ({"code": "forbidden", "message": "Blocked by policy " + LONG}, ""),  # the message cut
    ({"code": "forbidden", "detail": LONG, "message": "Blocked by policy"}, ""),  # not come
])
async def test_a_json_refusal_cut_short_says_its_message_if_it_came_whole(
        error: object, shown: str) -> None:
    """A 403 whose JSON error is longer than the bytes read: the message it holds where
    that came whole, else the status alone, never the raw first line of braces and keys."""
    body = json.dumps({"error": error, "padding": LONG}).encode()

    async def refuse(_request: web.Request) -> web.Response:
        return web.Response(status=403, body=body, content_type="application/json")

    async with serving(refuse) as url:
        assert await dial_refused(url) == "it answered HTTP 403" + shown


async def test_a_json_refusal_that_stalls_says_the_message_that_came() -> None:
    """A 403 whose JSON body stops after the message: that message, not ``{"error":``."""
    came = b'{"error": {"code": "forbidden", "message": "Blocked here", "field'
    answer = (b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n" + came)
    async with stalling(answer) as url:
        assert await dial_refused(url) == "it answered HTTP 403: Blocked here"


#: A cluster secret with characters that each encoding below writes otherwise.
ODD_SECRET = "k3y+/=&<\"'> ~" + "s" * 20


#: Where a refusal's body is cut (``REFUSAL_BYTES_MAX``), in characters of the encoded
#: secret that came before the cut; None: it came whole.
CUTS = [None, 1, 2, 3, 0.5, -1]


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_refusal_repeating_the_secret_encoded_does_not_show_it(
        encoding: str, cut: float | None) -> None:
    """A proxy refuses with a page that repeats the request's Authorization header
    encoded, whole or cut short inside the secret: the secret is shown as
    ``HIDDEN_TEXT``, in every encoding; at most two characters of it stay, a character at
    either end in base64, where one stands for the bytes around it too. A first line of
    NUL bytes, which says nothing, puts the cut where the test wants it."""
    encode = ENCODINGS[encoding]
    # Base64's padding left out: it stands for no byte.
    encoded = encode(f"Bearer {ODD_SECRET}").rstrip("=")
    before_secret = len(encode("Bearer ").rstrip("="))
    came = len(encoded) if cut is None else before_secret + round(
        cut * (len(encoded) - before_secret) if isinstance(cut, float) else cut) % (
        len(encoded) - before_secret)
    assert cut is None or came < len(encoded)

    async def echo(request: web.Request) -> web.Response:
        page = "echo " + encode(request.headers["Authorization"])
        assert page.startswith("echo " + encoded[:came])
        if cut is not None:
            page = "\0" * (REFUSAL_BYTES_MAX - len("\necho ") - came) + "\necho " + page[5:]
        return web.Response(status=403, text=page)

    async with serving(echo) as url:
        said = await dial_refused(url, ODD_SECRET)
    before, hidden, after = said.removeprefix("it answered HTTP 403: echo ").rstrip(
        "=").partition(HIDDEN_TEXT)
    assert encoded[:came].startswith(before) and encoded[:came].endswith(after)
    assert hidden or cut is not None
    # Shown: what stands for the text before the secret, and two characters of it at
    # most (a part of an escape tells none); after it, a base64 character at most.
    assert _shown(encode, ODD_SECRET, before) <= 2 and len(after) <= 1


ANY_ENCODING: dict[str, Callable[[str], str]] = {
    "as it is": lambda text: text,
    **ENCODINGS,
    "base64 in lines of 76 (MIME)": lambda text: base64.encodebytes(text.encode()).decode(),
}


def _shown(encode: Callable[[str], str], secret: str, text: str) -> int:
    """How many characters of ``secret`` a page's start ``text``, ``encode``'s of
    "Bearer " and the secret, tells: those whose encoding it holds whole."""
    padding = "\n" if encode("=") == "=" else "=\n"  # base64's: it stands for no byte

    def length(told: int) -> int:
        return len(encode("Bearer " + secret[:told]).rstrip(padding))
    return max((told for told in range(len(secret) + 1) if length(told) <= len(text)),
               default=0)


def _hidden_by_chance(page: str, lead: str, secret: str) -> bool:
    """Whether the hiding finds ``secret`` where ``page`` writes "echo Bearer " (``lead``)
    or straddles its end: in ``page`` up to ``SHOWN_IN_A_ROW_MAX`` characters past
    where the two part, which hold no run of the secret's own forms."""
    apart = next((at for at, (a, b) in enumerate(zip(page, lead, strict=False))
                  if a != b), len(lead))
    return HIDDEN_TEXT in refusal_text(page[:apart + SHOWN_IN_A_ROW_MAX].encode(), [secret])


@pytest.mark.parametrize("encoding", ANY_ENCODING)
@settings(max_examples=15, deadline=None)
@given(secret=SECRETS)
def test_a_refusal_cut_anywhere_shows_two_characters_of_the_secret_at_most(
        encoding: str, secret: str) -> None:
    """A page repeating the Authorization header, cut at every place: wherever the cut
    is, the secret's start that ends it, in whichever form, is hidden, unless it tells
    no more than two of its characters (a cut body that ends with ``%`` shows it)."""
    encode = ANY_ENCODING[encoding]
    page = "echo " + encode(f"Bearer {secret}")
    # Not a secret that the encoding of "Bearer " writes by chance ("061\\U" in the
    # "\\u0061\\u0072" of "ar"): hidden there too, before the cut this looks at.
    assume(not _hidden_by_chance(page, "echo " + encode("Bearer "), secret))
    for cut in range(len(page) + 1):
        said = refusal_text(page[:cut].encode(), [secret], whole=False).removesuffix("…")
        before, _hidden, after = said.partition(HIDDEN_TEXT)
        assert page.startswith(before) and len(after.rstrip("=")) <= 1, (cut, said)
        assert _shown(encode, secret, before.removeprefix("echo ")) <= 2, (cut, said)


def test_base64_in_lines_shows_no_more_of_the_secret_on_either_line() -> None:
    """MIME's base64 (``base64.encodebytes``) breaks its lines every 76 characters, in
    the secret too: a line's end that starts the secret and the next line's start that
    ends it are hidden; shown alone (the lines before it saying nothing), each tells two
    characters of it at most."""
    secret = "jc9_uBIbfsRRiHpAjHJkV1yZlxAz3rcyv86AoxTcfaU"
    lines = base64.encodebytes(("Authorization: Bearer " + secret).encode() * 3).decode() \
        .splitlines()
    coded = base64.b64encode(secret.encode()).decode()
    for shown in range(len(lines)):
        # The lines before it of as many NUL bytes, which say nothing.
        page = "\n".join(["\0" * len(line) for line in lines[:shown]] + lines[shown:])
        said = refusal_text(page.encode(), [secret])
        assert HIDDEN_TEXT in said
        for part in said.split(HIDDEN_TEXT):
            assert not any(coded[at:at + 4] in part for at in range(len(coded) - 3)), said


def test_a_cut_body_ending_in_an_escape_s_first_character_is_shown() -> None:
    """A cut body that ends with ``%``, ``&`` or a backslash, or with two characters of
    the secret, tells nothing of it: shown; three characters, or one escaped, are hidden,
    with an escape's start after them."""
    assert [refusal_text(f"see {end}".encode(), ["s3cret"], whole=False)
            for end in ("%", "&", "\\", "s", "s3", "s3c", "%73", "s3c%7", "&#x73;&#")] == \
        ["see %", "see &", "see \\", "see s", "see s3"] + ["see " + HIDDEN_TEXT] * 4


def test_a_cut_json_refusal_saying_error_twice_says_the_last() -> None:
    """A JSON error cut short that has ``error`` twice says the last, as the whole one."""
    body = b'{"error": "first", "error": {"code": "x", "message": "last"}'
    assert refusal_text(body + b', "more": "', whole=False) == refusal_text(body + b"}") \
        == "last"


#: A cluster secret as ``secrets.token_urlsafe(32)`` makes one.
MADE = "jc9_uBIbfsRRiHpAjHJkV1yZlxAz3rcyv86AoxTcfaU"


def _tells(said: str, secret: str = MADE, run: int = 5) -> bool:
    """Whether ``said`` shows ``run`` characters of ``secret`` in a row, in either case."""
    return any(secret[at:at + run].lower() in said.lower()
               for at in range(len(secret) - run + 1))


@pytest.mark.parametrize("separator", ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e",
                                       "\x85", "\u2028", "\u2029"])
def test_a_secret_split_by_any_line_break_is_hidden_on_either_side(separator: str) -> None:
    """``str.splitlines`` breaks lines at more than CR and LF: either side of a secret
    split by any of them is hidden, in a page and in a JSON error's message."""
    page = f"Bearer {MADE[:30]}{separator}{MADE[30:]}"
    assert refusal_text(page.encode(), [MADE]) == f"Bearer {HIDDEN_TEXT}"
    assert refusal_text(json.dumps({"error": "bad " + page}).encode(), [MADE]) \
        == f"bad Bearer {HIDDEN_TEXT}"


@pytest.mark.parametrize("between", ["\x00", "\x1b", "\u200b", "\u202e", "\ufeff"])
def test_a_secret_split_by_a_control_character_is_hidden_once_it_is_taken_out(
        between: str) -> None:
    """Control characters are taken out of what is shown, joining what was around them,
    and format characters kept (a zero width space) are unseen: pieces of a secret so
    joined are hidden, in a body cut short too."""
    cut = f"Bearer {MADE[:20]}{between}{MADE[20:35]}".encode()
    said = refusal_text(cut, [MADE], whole=False)
    assert said.startswith(f"Bearer {HIDDEN_TEXT}") and not _tells(said), said
    # Pieces shorter than a run hidden, each shown alone: joined, they are one.
    pieces = between.join(MADE[at:at + 2] for at in range(0, len(MADE), 2))
    assert refusal_text(f"Bearer {pieces}!".encode(), [MADE]) == f"Bearer {HIDDEN_TEXT}!"
    assert refusal_text(json.dumps({"error": f"Bearer {pieces}!"}).encode(), [MADE]) \
        == f"Bearer {HIDDEN_TEXT}!"


def test_a_secret_s_start_inside_a_line_is_hidden() -> None:
    """A proxy that cuts the header it echoes short, in the middle of a line."""
    assert refusal_text(f"Authorization: Bearer {MADE[:24]}... (truncated)".encode(), [MADE]) \
        == f"Authorization: Bearer {HIDDEN_TEXT}... (truncated)"
    assert refusal_text(f"Bearer {MADE[:30]}\u2026 <br>".encode(), [MADE]) \
        == f"Bearer {HIDDEN_TEXT}\u2026 <br>"


def test_a_middle_line_of_base64_inside_a_long_secret_is_hidden() -> None:
    """MIME base64 of a long secret: a line wholly inside it is hidden whole."""
    secret = hashlib.sha256(b"one").hexdigest() + hashlib.sha256(b"two").hexdigest()
    lines = base64.encodebytes(f"Authorization: Bearer {secret}".encode()).decode() \
        .splitlines()
    inside = lines[1]
    assert any(inside in base64.b64encode(bytes(lead) + secret.encode()).decode()
               for lead in range(3))  # the secret's alone
    page = "\n".join(["\0" * len(lines[0]), *lines[1:]])
    assert refusal_text(page.encode(), [secret]) == HIDDEN_TEXT


@pytest.mark.parametrize("reference", ["&#{:04d};", "&#{:08d};", "&#x{:04x};", "&#X{:06X};"])
def test_zero_padded_html_references_of_the_secret_are_hidden(reference: str) -> None:
    """An HTML numeric reference may have zeros before its number."""
    page = "".join(reference.format(ord(char)) for char in f"Bearer {MADE}")
    said = refusal_text(page.encode(), [MADE])
    assert said.endswith(HIDDEN_TEXT) and said.count(";") <= len("Bearer ") + 4, said


def test_a_cut_body_s_end_read_as_an_escape_s_start_hides_as_much_as_read_whole() -> None:
    """A cut body whose end reads two ways: ``%25`` (a ``%``, or the start of
    ``%252F``, done twice): whichever reading tells more of the secret's start is
    hidden."""
    said = refusal_text(b"see 0%252500%25", ["0%00/"], whole=False)
    assert said == f"see {HIDDEN_TEXT}", said
    # "&#8" is a whole reference (a backspace, as the secret's "\\b" reads) or the start
    # of "&#80;" ("P"): "\\B00" before it is hidden.
    said = refusal_text(b"see &#92;&#66;&#48;&#48;&#8", ["\\B00P"], whole=False)
    assert said == f"see {HIDDEN_TEXT}", said


def test_a_start_of_the_secret_begun_in_a_hidden_run_goes_with_it() -> None:
    """``Bearer 0er 0`` in UTF-16's base64, cut after the secret's ``0e``: ``er 0`` of
    ``Bearer 0`` is a run of the secret, hidden, and ends in the secret's first character;
    the start that follows it goes with it, nothing shown after ``(hidden)``."""
    page = "echo " + base64.b64encode("Bearer 0er 0".encode("utf-16-le")).decode()
    assert page[:28] == "echo QgBlAGEAcgBlAHIAIAAwAGU"
    assert [refusal_text(page[:cut].encode(), ["0er 0"], whole=False)
            for cut in (27, 28, 30)] == ["echo QgBlAGEAcg" + HIDDEN_TEXT] * 3
