"""A bridge's cursor as large as the node keeps goes through, whatever its names: the
client sends it as CBOR, the form the node measures it in (``node.client.api``)."""

from __future__ import annotations

import json
from itertools import product

from crdt import codec
from crdt.keys import NAME_BYTES_MAX
from crdt.log.cursors import CURSOR_BYTES_MAX, CURSOR_ENTRIES_MAX, check_cursor
from node.client.api import Client
from node.server.cursors import BODY_BYTES_MAX
from node.server.run import RunningNode


def quoted_names(length: int) -> list[str]:
    """Every name of ``length`` characters, each ``"`` or ``\\``: two bytes each in JSON."""
    return ["".join(chars) for chars in product('"\\', repeat=length)]


def cursor_near_the_limit() -> dict[str, int]:
    """Names of ``"`` and ``\\``, as many and as large as the limits let: short ones
    (JSON's quotes, colon and comma around each weigh more than CBOR's head), then long
    ones up to the size limit."""
    cursor = dict.fromkeys(quoted_names(15)[:CURSOR_ENTRIES_MAX - 3000], 10)
    size = len(codec.encode_fast(cursor))  # its map's head no longer grows past 256
    for name in quoted_names(12):
        entry = name + '"' * (NAME_BYTES_MAX - 1 - len(name))
        size += len(codec.encode_fast(entry)) + len(codec.encode_fast(10))
        if size > CURSOR_BYTES_MAX:
            return cursor
        cursor[entry] = 10
    raise AssertionError("the limit was not reached")


async def test_a_cursor_of_quotes_and_backslashes_near_the_limit_is_saved(
        node: RunningNode) -> None:
    """As JSON, such a cursor would be over the node's body limit (2 MiB) though within
    its cursor limit (1 MiB, as CBOR): refused. As CBOR, its body is its size and a few
    bytes."""
    cursor = check_cursor(cursor_near_the_limit())
    assert len(codec.encode_fast(cursor)) > CURSOR_BYTES_MAX - NAME_BYTES_MAX - 4
    as_json = json.dumps({"cursor": cursor}, ensure_ascii=False, separators=(",", ":"))
    assert len(as_json.encode()) > BODY_BYTES_MAX
    async with Client(node.url) as client:
        await client.save_cursor("openclaw:ab12:cd34", cursor)
        assert await client.cursor("openclaw:ab12:cd34") == cursor
