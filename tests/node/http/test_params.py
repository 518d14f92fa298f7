"""node.http.params.path_session_key on a path as aiohttp's parsers hand it over: as it
came, percent-encoded (a path with a byte that is not ASCII is refused before, by
``node.http.request_line``)."""

from __future__ import annotations

import pytest
import yarl
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiohttp.web_urldispatcher import UrlDispatcher

from crdt.errors import InvalidInput
from node.http.params import path_session_key


async def _key(raw_path: str) -> str:
    async def handler(request: web.Request) -> web.Response:
        raise AssertionError("not called")

    router = UrlDispatcher()
    router.add_get("/s/{key}/e", handler)
    # As the parsers build it: yarl.URL(path, encoded=True).
    request = make_mocked_request("GET", "/").clone(rel_url=yarl.URL(raw_path, encoded=True))
    request._match_info = await router.resolve(request)  # type: ignore[attr-defined]
    return path_session_key(request)


async def test_a_key_in_percent_encoded_utf8_is_the_key() -> None:
    assert await _key("/s/%C3%A9%41/e") == "\u00e9A"


@pytest.mark.parametrize("raw", ["/s/%ff/e", "/s/%C3%A9%ff%41/e", "/s/%ED%A0%80/e"])
async def test_a_percent_encoded_byte_that_is_not_utf8_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput, match="must be percent-encoded UTF-8") as error:
        await _key(raw)
    assert error.value.field == "session_key"
