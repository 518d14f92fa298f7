"""Who asked for a forget, as its record's ``by`` says, for each kind of token that may
forget: the node's own, an Automerge token of the configuration, one the device issued.
The answer is kept on the request without aiohttp warning about its key."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from node.server.run import RunningNode
from sync.repo.config import Access, RepoConfig
from tests.support.nodes import post

NodeFactory = Callable[..., Awaitable[RunningNode]]
EventFactory = Callable[..., dict[str, Any]]
NODE_TOKEN = "node-token"
APP_TOKEN = "app-token-of-the-file"


async def forget(node: RunningNode, key: str, token: str) -> Any:
    async with aiohttp.ClientSession() as session, session.delete(
            f"{node.url}/v1/sessions/{key}",
            headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_each_forget_names_who_asked(make_node: NodeFactory,
                                           event_body: EventFactory) -> None:
    node = await make_node(token=NODE_TOKEN,
                           automerge=RepoConfig(tokens={APP_TOKEN: Access(("tg:*",))}))
    for key in ("tg:a", "tg:b", "tg:c"):
        await post(node, key, event_body(1), token=NODE_TOKEN)
    async with aiohttp.ClientSession() as session, session.post(
            f"{node.url}/v1/tokens", json={"sessions": ["tg:*"]},
            headers={"Authorization": f"Bearer {NODE_TOKEN}"}) as response:
        issued = await response.json()
    fingerprint = hashlib.blake2b(APP_TOKEN.encode(), digest_size=4).hexdigest()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        by = [(await forget(node, key, token))["forget"]["kind"]["by"]
              for key, token in (("tg:a", NODE_TOKEN), ("tg:b", APP_TOKEN),
                                 ("tg:c", issued["token"]))]
    origin = node.astore.node_id
    assert by == [f"client@{origin}", f"app:{fingerprint}@{origin}",
                  f"app:{issued['id']}@{origin}"]
    # aiohttp 3.14's NotAppKeyWarning, named so: older versions have no such class.
    assert [str(w.message) for w in caught if w.category.__name__ == "NotAppKeyWarning"] == []
