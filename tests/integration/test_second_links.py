"""A real node whose dial a peer closed as a second link, and the link that peer kept
ended before its hello was taken in: the close was of that link's time, and the peer's
next link does not count the dialed address as reaching it (``node.peers.pairing``).

The peer is played at the protocol level (this project's transport and messages, with
a device key of its own, or with none as a node of 0.2): a real node does each step
too, but not in an order a test can set, since the race is between two of its own
links."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from crdt.device import private_key_from_seed
from node.device import DeviceKey
from node.peers.handshake import claimed_device
from node.peers.members_fetch import MEMBERS_PATH
from node.peers.transport import DUPLICATE_LINK, PEER_PATH, Link, accept, dial
from sync.peer.config import SyncConfig
from sync.peer.messages import Hello, encode
from tests.support.cluster import SECRET
from tests.support.processes import NodeProcess, free_port
from tests.support.waits import POLL_S, PROCESS_DEADLINE_S, until

#: The node id the played peer names in its hellos (bound to no key: any may be named).
PEER_NODE = "b0b0b0b0b0b0b0b0"
CONFIG = SyncConfig()


class PlayedPeer:
    """A peer at ``url`` that the node dials: each link it accepts sends its hello and
    waits until ``close_accepted`` closes it as a second link; ``dial`` opens a link to
    the node, with the cluster secret and its key (``keyed``; else it proves none, as a
    node of 0.2)."""

    def __init__(self, tmp_path: Path, *, keyed: bool = True) -> None:
        self.device = DeviceKey(private_key_from_seed(bytes([9]) * 32), tmp_path / "peer.key") \
            if keyed else None
        self.url = ""
        self._accepted: asyncio.Queue[tuple[Link, asyncio.Event]] = asyncio.Queue()

    async def _link(self, request: web.Request) -> web.StreamResponse:
        link = await accept(request, CONFIG, device=self.device,
                            claimed=claimed_device(request) if self.device else None)
        await link.send(encode(Hello(node=PEER_NODE, version={})))
        done = asyncio.Event()
        await self._accepted.put((link, done))
        await done.wait()
        return link._ws  # the handler answers with the websocket it prepared

    async def close_accepted(self) -> None:
        """Close the link the node dialed as a second link to this peer."""
        link, done = await asyncio.wait_for(self._accepted.get(), PROCESS_DEADLINE_S)
        await link.close(DUPLICATE_LINK)
        done.set()

    async def dial(self, http: aiohttp.ClientSession, node: NodeProcess) -> Link:
        """A link to ``node``, up once the node's hello on it came (the node's runner for
        it is there)."""
        link = await dial(http, node.url, node_id=PEER_NODE, secret=SECRET, advertise=None,
                          tls=None, config=CONFIG, device=self.device)
        await asyncio.wait_for(link.receive(), PROCESS_DEADLINE_S)
        return link

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[PlayedPeer]:
        app = web.Application()
        app.router.add_get(PEER_PATH, self._link)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            await runner.cleanup()


async def poll(http: aiohttp.ClientSession, url: str, check: Any, what: str,
               headers: dict[str, str] | None = None) -> Any:
    """GET ``url`` until ``check(body)`` is truthy; its value. Failing, it names the bound,
    ``what`` was waited for and the last body (until's own message would name ``look``
    and the last value of ``check``, not the body)."""
    last = None

    async def look() -> Any:
        nonlocal last
        async with http.get(url, headers=headers or {}) as reply:
            last = await reply.json()
        return check(last)

    try:
        return await until(look, within_s=PROCESS_DEADLINE_S, poll_s=POLL_S)
    except AssertionError:
        raise AssertionError(f"not within {PROCESS_DEADLINE_S} s: {what} "
                             f"(last: {last})") from None


def dial_row(body: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((row for row in body["peers"] if row["url"] == url
                 and row["direction"] == "out"), None)


@contextlib.asynccontextmanager
async def closed_dial(tmp_path: Path, *, keyed: bool
                      ) -> AsyncIterator[tuple[aiohttp.ClientSession, NodeProcess, PlayedPeer,
                                                Link]]:
    """A node whose dial of the played peer was up and named, then closed by the peer as
    a second link, while the peer's own link to the node (yielded, the one it kept) is up
    with its hello not sent yet."""
    played = PlayedPeer(tmp_path, keyed=keyed)
    config = tmp_path / "node.toml"
    # The dial closed waits out its back-off without redialing while the test runs.
    config.write_text("[sync]\nbackoff_base_s = 600.0\nbackoff_max_s = 600.0\n")
    async with played.serving(), aiohttp.ClientSession() as http:
        with NodeProcess(tmp_path, extra_args=["--cluster-secret", SECRET, "--peer",
                                               played.url, "--config", str(config)]) as node:
            peers = node.url + "/v1/peers"
            await poll(http, peers, lambda body: (row := dial_row(body, played.url))
                       and row["state"] == "up" and row["node_id"] == PEER_NODE,
                       "the dial is up and named")
            kept = await played.dial(http, node)
            await played.close_accepted()
            await poll(http, peers, lambda body: (row := dial_row(body, played.url))
                       and row["state"] == "backoff", "the dial closed")
            yield http, node, played, kept


@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "keyless"])
async def test_a_dial_closed_as_a_second_link_counts_once_the_kept_link_is_named(
        tmp_path: Path, keyed: bool) -> None:
    """The peer closed the node's dial as a second link before its own link's hello was
    taken in; once it is, the dialed address counts as reaching the peer: the node's
    member list says linked there. A peer that proved no key too: its kept link, up but
    not named yet, was not counted as kept (the close cleared when the dial's end was
    handled, or when any other link ended)."""
    async with closed_dial(tmp_path, keyed=keyed) as (http, node, played, kept):
        await kept.send(encode(Hello(node=PEER_NODE, version={})))
        auth = {"Authorization": f"Bearer {SECRET}"}
        row = await poll(http, node.url + MEMBERS_PATH, lambda body: next(
            (row for row in body["peers"] if row["url"] == played.url
             and row["node_linked"]), None), "the kept link is named", auth)
        assert (row["node_id"], row["linked"]) == (PEER_NODE, True)
        await kept.close()


@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "keyless"])
async def test_a_dial_closed_as_a_second_link_is_not_counted_after_the_kept_link_ended(
        tmp_path: Path, keyed: bool) -> None:
    """The node dials the peer and names it; the peer dials the node, which has its key
    (if any) proven but not its hello; the peer closes the node's dial as a second link,
    then its own link ends, never named. Its next link, named, does not count the dialed
    address as reaching it: the node's member list says not linked there."""
    async with closed_dial(tmp_path, keyed=keyed) as (http, node, played, kept):
        peers, members = node.url + "/v1/peers", node.url + MEMBERS_PATH
        await kept.close()
        await poll(http, peers, lambda body: len(body["peers"]) == 1,
                   "the link kept is gone")
        again = await played.dial(http, node)
        await again.send(encode(Hello(node=PEER_NODE, version={})))
        auth = {"Authorization": f"Bearer {SECRET}"}
        row = await poll(http, members, lambda body: next(
            (row for row in body["peers"] if row["url"] == played.url
             and row["node_linked"]), None), "the next link is named", auth)
        assert (row["node_id"], row["linked"]) == (PEER_NODE, False)
        await again.close()
