"""What a dial refused by a server on loopback says of the refusal's body
(``node.peers.dial_words.refusal_text``, read by ``node.peers.refusals``): the message
of a JSON error cut short, where it came whole; never the cluster secret, in whatever
form the refusal repeats it."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
from aiohttp import web

from node.peers.dial_words import HIDDEN_TEXT, REFUSAL_BYTES_MAX
from node.peers.refusals import refusals_read
from node.peers.transport import LinkClosed, dial
from sync.peer.config import SyncConfig
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


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda escape: escape[0].lower(), text)


ENCODINGS: dict[str, Callable[[str], str]] = {
    "url": lambda text: quote(text, safe=""),
    "url, lower-case hex": lambda text: _lower_hex(quote(text, safe="")),
    "url, a form's": lambda text: quote_plus(text, safe=""),
    "base64": _b64,  # "Bearer " is 7 bytes: the secret begins a group's second byte
    "base64, after a byte": lambda text: _b64("x" + text),  # its third
    "base64, after two bytes": lambda text: _b64("xy" + text),  # its first
    "url-safe base64": lambda text: base64.urlsafe_b64encode(text.encode()).decode(),
    "html": html.escape,
    "html, numeric": lambda text: "".join(f"&#{ord(char)};" for char in text),
    "json": lambda text: json.dumps(text)[1:-1],
    "json, every character escaped": lambda text: "".join(f"\\u{ord(char):04x}"
                                                          for char in text),
}


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_refusal_repeating_the_secret_encoded_does_not_show_it(encoding: str) -> None:
    """A proxy refuses with a page that repeats the request's Authorization header
    encoded: the secret is shown as ``HIDDEN_TEXT``, in every encoding; at most a
    character at either end of it stays, in base64, where one stands for the bytes
    around it too."""
    encode = ENCODINGS[encoding]

    async def echo(request: web.Request) -> web.Response:
        return web.Response(status=403, text="echo " + encode(request.headers["Authorization"]))

    async with serving(echo) as url:
        said = await dial_refused(url, ODD_SECRET)
    # Base64's padding left out: it stands for no byte.
    encoded = encode(f"Bearer {ODD_SECRET}").rstrip("=")
    before, hidden, after = said.removeprefix("it answered HTTP 403: echo ").rstrip(
        "=").partition(HIDDEN_TEXT)
    assert hidden and encoded.startswith(before) and encoded.endswith(after)
    # Shown: what stands for the text before the secret, and two characters more at most.
    assert len(before) + len(after) <= len(encode("Bearer ").rstrip("=")) + 2
