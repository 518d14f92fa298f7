"""What the bad-input tests share: the route they post to, its content types, the node's
small limits, and the checks that a request was refused with a status, a code, a field
and words."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

URL = "/v1/sessions/s1/events"
JSON = {"Content-Type": "application/json"}
CBOR = {"Content-Type": "application/cbor"}

#: Small limits make oversized input cheap to send.
BODY_BYTES_MAX = 64 * 1024
BATCH_EVENTS_MAX = 3


async def refused(resp: aiohttp.ClientResponse, status: int, code: str,
                  field: str | None, says: str) -> None:
    assert resp.status == status
    assert resp.content_type == "application/json"
    error = (await resp.json())["error"]
    assert error["code"] == code
    assert error["field"] == field
    assert says in error["message"]


async def post_bytes(client: aiohttp.ClientSession, body: bytes, headers: dict[str, str],
                     status: int, code: str, field: str | None, says: str) -> None:
    async with client.post(URL, data=body, headers=headers) as resp:
        await refused(resp, status, code, field, says)


async def post_json(client: aiohttp.ClientSession, value: Any, status: int, code: str,
                    field: str | None, says: str) -> None:
    await post_bytes(client, json.dumps(value).encode(), JSON, status, code, field, says)
