"""``PUT /v1/cursors/{name}`` with ``If-Match``: saved only if the cursor still has the
tag it was read with (``ETag``), else 412 and the cursor as it was; ``*`` saves over
any cursor saved but makes none (RFC 9110 13.1.1), ``If-None-Match: *`` makes one but
saves over none, no header saves whatever is there; a header that is no list of tags is
a 400."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from crdt.log.cursors import cursor_tag
from tests.node.server.bad_input.refusals import refused

PATH = "/v1/cursors/openclaw:ab:cd"


async def put(client: aiohttp.ClientSession, cursor: dict[str, int],
              if_match: str | None = None, **headers: str) -> aiohttp.ClientResponse:
    headers = {key.replace("_", "-"): value for key, value in headers.items()}
    if if_match is not None:
        headers["If-Match"] = if_match
    async with client.put(PATH, json={"cursor": cursor}, headers=headers) as resp:
        await resp.read()
        return resp


async def held(client: aiohttp.ClientSession) -> tuple[Any, str | None]:
    async with client.get(PATH) as resp:
        assert resp.status == 200
        return (await resp.json())["cursor"], resp.headers.get("ETag")


async def test_get_and_put_answer_the_tag_of_the_cursor(
        client: aiohttp.ClientSession) -> None:
    resp = await put(client, {"db:s": 3, "db:r": 1})
    assert resp.status == 200
    assert resp.headers["ETag"] == f'"{cursor_tag({"db:r": 1, "db:s": 3})}"'
    assert await held(client) == ({"db:s": 3, "db:r": 1}, resp.headers["ETag"])


async def test_a_save_with_the_tag_read_is_saved(client: aiohttp.ClientSession) -> None:
    tag = (await put(client, {"db:s": 3})).headers["ETag"]
    resp = await put(client, {"db:s": 5}, if_match=tag)
    assert resp.status == 200
    assert await held(client) == ({"db:s": 5}, resp.headers["ETag"])
    # One of several tags is enough, as If-Match lists them.
    resp = await put(client, {"db:s": 6}, if_match=f'"0000000000000000", {resp.headers["ETag"]}')
    assert resp.status == 200


@pytest.mark.parametrize("since", ["changed", "same value saved again", "none saved"])
async def test_a_save_with_another_tag_is_refused_and_changes_nothing(
        client: aiohttp.ClientSession, since: str) -> None:
    """Changed since it was read (a reset, another bridge): 412, the value kept. A tag
    names a value, so the same value saved again still matches; a tag never matches a
    cursor none saved."""
    read = f'"{cursor_tag({"db:s": 3})}"'
    if since != "none saved":
        await put(client, {"db:s": 3} if since == "same value saved again" else {})
    headers = {"If-Match": read}
    async with client.put(PATH, json={"cursor": {"db:s": 9}}, headers=headers) as resp:
        if since == "same value saved again":
            assert resp.status == 200
            return
        await refused(resp, 412, "cursor_changed", "If-Match",
                      "the cursor 'openclaw:ab:cd' is no longer as read")
    if since == "none saved":
        async with client.get(PATH) as resp:
            assert resp.status == 404
    else:
        assert (await held(client))[0] == {}


async def test_no_condition_saves_whatever_is_there(client: aiohttp.ClientSession) -> None:
    assert (await put(client, {"db:s": 1})).status == 200  # none saved
    assert (await put(client, {"db:s": 2})).status == 200
    assert (await held(client))[0] == {"db:s": 2}


async def test_none_match_any_makes_a_cursor_but_saves_over_none(
        client: aiohttp.ClientSession) -> None:
    """``If-None-Match: *``: a first save, of a cursor read as absent, that another save
    made meanwhile refuses (412), the cursor as that save left it."""
    assert (await put(client, {"db:s": 1}, If_None_Match="*")).status == 200
    async with client.put(PATH, json={"cursor": {"db:s": 2}},
                          headers={"If-None-Match": "*"}) as resp:
        await refused(resp, 412, "cursor_changed", "If-None-Match",
                      "the cursor 'openclaw:ab:cd' is no longer as read: none was saved")
    assert (await held(client))[0] == {"db:s": 1}


@pytest.mark.parametrize("headers", [{"If-None-Match": '"abc"'},
                                     {"If-None-Match": "*", "If-Match": "*"}])
async def test_none_match_other_than_any_or_with_if_match_saves_nothing(
        client: aiohttp.ClientSession, headers: dict[str, str]) -> None:
    """Only ``*`` is taken (400 otherwise); with ``If-Match`` too it holds for no
    cursor (412)."""
    async with client.put(PATH, json={"cursor": {"db:s": 1}}, headers=headers) as resp:
        if "If-Match" in headers:
            await refused(resp, 412, "cursor_changed", "If-None-Match", "together hold")
        else:
            await refused(resp, 400, "invalid_parameter", "If-None-Match", 'must be "*"')
    async with client.get(PATH) as resp:
        assert resp.status == 404


@pytest.mark.parametrize("if_match", ["*", " * "])
async def test_any_saves_over_a_cursor_saved_but_makes_none(
        client: aiohttp.ClientSession, if_match: str) -> None:
    """``*`` is false when there is no cursor (RFC 9110 13.1.1): a client that updates
    only a cursor already saved does not make one."""
    async with client.put(PATH, json={"cursor": {"db:s": 1}},
                          headers={"If-Match": if_match}) as resp:
        await refused(resp, 412, "cursor_changed", "If-Match",
                      "the cursor 'openclaw:ab:cd' is no longer as read: none is saved")
    async with client.get(PATH) as resp:
        assert resp.status == 404
    assert (await put(client, {"db:s": 1})).status == 200
    assert (await put(client, {"db:s": 2}, if_match=if_match)).status == 200
    assert (await held(client))[0] == {"db:s": 2}


async def test_a_weak_tag_never_matches(client: aiohttp.ClientSession) -> None:
    """If-Match compares strongly (RFC 9110): ``W/`` and the cursor's tag is not it."""
    tag = (await put(client, {"db:s": 3})).headers["ETag"]
    assert (await put(client, {"db:s": 4}, if_match=f"W/{tag}")).status == 412
    assert (await held(client))[0] == {"db:s": 3}


@pytest.mark.parametrize("if_match", [
    "abc", '"unclosed', '"a" "b"', '"a",, "b"', "**", '"a", *', '"with space"', ""])
async def test_an_if_match_that_is_no_list_of_tags_is_refused(
        client: aiohttp.ClientSession, if_match: str) -> None:
    tag = (await put(client, {"db:s": 3})).headers["ETag"]
    async with client.put(PATH, json={"cursor": {"db:s": 4}},
                          headers={"If-Match": if_match}) as resp:
        await refused(resp, 400, "invalid_parameter", "If-Match", 'must be "*" or tags')
    assert await held(client) == ({"db:s": 3}, tag)
