"""A peer that attacks a node over the peer API, for the tests: the API's paths, the
headers it sends, valid events it seals as a peer would, and ``attack``, which sends
frames over the peer websocket and returns the node's answer."""

from __future__ import annotations

import aiohttp

from crdt.events import Event, parse_event
from sync.peer.messages import Events, Hello, parse
from tests.support.cluster import SECRET, all_events, appended_ids, message
from tests.support.processes import NodeProcess
from tests.support.raw_http import ANSWER_TIMEOUT_S

PEER_WS = "/peer/v1/ws"
MEMBERS = "/peer/v1/members"


def ids_of(node: NodeProcess) -> set[str]:
    return appended_ids(all_events(node))


def peer_headers(secret: str | None, name: str = "attacker") -> dict[str, str]:
    headers = {"X-Clawsync-Node": name}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return headers


def sealed(content: str, ms: int, key: str = "attack") -> Event:
    """A valid event with a fixed timestamp (as a peer would send it)."""
    event = parse_event(message(content, hlc=[ms, 0]), session_key=key)
    assert isinstance(event, Event)
    return event


# -- a misbehaving peer that holds the secret ------------------------------------------------


async def attack(url: str, *frames: bytes | str) -> aiohttp.WSMessage:
    """Connect as a peer, send ``frames``, and return the node's first answer that is not
    a hello or a batch (which it sends on its own): an ack, or the close of the link."""
    async with aiohttp.ClientSession() as http, http.ws_connect(
            url + PEER_WS, headers=peer_headers(SECRET), max_msg_size=0) as ws:
        for frame in frames:
            if isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_bytes(frame)
        while True:
            answer = await ws.receive(timeout=ANSWER_TIMEOUT_S)
            if answer.type != aiohttp.WSMsgType.BINARY or not isinstance(
                    parse(answer.data), Hello | Events):
                return answer
