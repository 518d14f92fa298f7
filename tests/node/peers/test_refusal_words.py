"""What a dial refused by a server on loopback says of the refusal's body
(``node.peers.dial_words.refusal_text``, read by ``node.peers.refusals``): the message
of a JSON error cut short, where it came whole."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import web

from node.peers.dial_words import REFUSAL_BYTES_MAX
from node.peers.refusals import refusals_read
from node.peers.transport import LinkClosed, dial
from sync.peer.config import SyncConfig
from tests.node.peers.support import SECRET, serving, stalling


async def dial_refused(url: str) -> str:
    """What a dial of ``url`` that is refused says after the address."""
    async with aiohttp.ClientSession(trace_configs=[refusals_read()]) as http:
        with pytest.raises(LinkClosed) as raised:
            await dial(http, url, node_id="n" * 32, secret=SECRET, advertise=None, tls=None,
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
