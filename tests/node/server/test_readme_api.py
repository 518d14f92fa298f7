"""The README's HTTP API table names every field of the answers it spells out."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.server.run import RunningNode

NodeFactory = Callable[..., Awaitable[RunningNode]]
README = Path(__file__).parents[3] / "README.md"


def table_row(method_and_path: str) -> str:
    """The README's API table row that starts with ``method_and_path``."""
    [row] = [line for line in README.read_text().splitlines()
             if line.startswith(f"| `{method_and_path}")]
    return row


def top_level_fields(row: str) -> set[str]:
    """The quoted names at the first level of the row's first ``{...}`` answer (not
    values: a quoted word after a colon).

    >>> sorted(top_level_fields('x `{"a" (one), "b": [{"c"}], "d": {"e"}, "f": "v"}` y'))
    ['a', 'b', 'd', 'f']
    """
    text = row[row.index("`{") + 1:]
    depth, names = 0, set()
    for match in re.finditer(r'(?<!: )"([a-z_]+)"|[\[\]{}]', text):
        token = match.group(0)
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                return names
        elif depth == 1:
            names.add(match.group(1))
    raise AssertionError(f"no closed answer in {row}")


@pytest.mark.parametrize(("path", "row"), [
    (path, f"GET {path}") for path in ("/v1/devices", "/v1/node", "/healthz", "/v1/peers",
                                       "/v1/origins")] + [("/v1/tokens", "GET`/`POST /v1/tokens")])
async def test_the_table_names_every_field_of_the_answer(make_node: NodeFactory,
                                                         path: str, row: str) -> None:
    node = await make_node()
    async with aiohttp.ClientSession() as session, \
            session.get(node.url + path) as response:
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
    assert top_level_fields(table_row(row)) == set(answer)
