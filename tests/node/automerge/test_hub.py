"""The /automerge websocket over real sockets, with a Python automerge-repo client
(tests/support/automerge.py) against in-process nodes. No sleeps: every wait is for a frame,
with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crdt.automerge.documents import Documents
from crdt.clock import Hlc
from crdt.events import parse_event
from crdt.log import forget
from crdt.log.records import key
from crdt.log.store import EventStore
from node.http.errors import STOPPING_RETRY_AFTER_S
from node.server.run import RunningNode
from sync.repo.config import Access, RepoConfig, RepoLimits
from sync.repo.host import (
    CLOSE_GOING_AWAY,
    CLOSE_INVALID,
    CLOSE_POLICY,
    CLOSE_PROTOCOL,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED,
)
from tests.support.automerge import App, set_custom, set_state, text_id
from tests.support.nodes import (
    S1,
    WsApp,
    connect,
    contents,
    events,
    has_messages,
    post,
    stop_held,
)
from tests.support.waits import DEADLINE_S, POLL_S, until

NodeFactory = Callable[..., Awaitable[RunningNode]]
EventFactory = Callable[..., dict[str, Any]]


async def test_find_live_and_edit(make_node: NodeFactory, event_body: EventFactory,
                                  clients: list[Any]) -> None:
    node = await make_node()
    await post(node, "s1", event_body(1), event_body(2))
    session, client = await connect(node)
    clients.append(session)
    await client.open()
    assert contents(client.app) == ["message 1", "message 2"]
    await post(node, "s1", event_body(3, content="live"))
    await client.pump(lambda: has_messages(client.app, S1, 3))
    assert contents(client.app)[-1] == "live"
    client.app.change(S1, set_custom("mood", "happy"))
    await client.send(client.app.sync(S1))
    await client.pump(lambda: client.app.view(S1)["event_count"] == 4)
    kinds = [e["kind"]["type"] for e in await events(node, "s1")]
    assert kinds[-1] == "state_changed"
    assert client.app.view(S1)["custom_state"] == {"mood": "happy"}


async def test_an_edit_reaches_other_clients(make_node: NodeFactory, event_body: EventFactory,
                                             clients: list[Any]) -> None:
    node = await make_node()
    await post(node, "s1", event_body(1))
    watchers = []
    for name in ("one", "two"):
        session, client = await connect(node, App(peer=name, actor=name.encode() * 4))
        clients.append(session)
        await client.open()
        watchers.append(client)
    one, two = watchers
    one.app.change(S1, set_state("ended"))
    await one.send(one.app.sync(S1))
    # Two sees the change at once (relayed), then the event it became.
    await two.pump_beside(lambda: two.app.view(S1)["event_count"] == 2, one)
    assert two.app.view(S1)["state"] == "ended"


async def test_unavailable_then_available(make_node: NodeFactory, event_body: EventFactory,
                                          clients: list[Any]) -> None:
    node = await make_node()
    session, client = await connect(node)
    clients.append(session)
    await client.open(text_id("later"))
    assert client.app.unavailable == [text_id("later")]
    await post(node, "later", event_body(1))
    await client.pump(lambda: has_messages(client.app, text_id("later")))
    assert client.app.unavailable == []


async def test_tokens(make_node: NodeFactory, event_body: EventFactory,
                      clients: list[Any]) -> None:
    tokens = {"tg-reader-token": Access(("tg:*",), read_only=True)}
    node = await make_node(token="node-token", automerge=RepoConfig(tokens=tokens))
    await post(node, "tg:a", event_body(1), token="node-token")
    await post(node, "web:b", event_body(1), token="node-token")
    async with aiohttp.ClientSession() as session:
        for url in ("/automerge", "/automerge?token=wrong-token"):
            async with session.get(node.url + url) as response:
                assert response.status == 401
    for token, header in (("node-token", None), (None, "node-token")):
        session, full = await connect(node, token=token, header=header)
        clients.append(session)
        await full.open(text_id("web:b"))
        assert has_messages(full.app, text_id("web:b"))
    session, reader = await connect(node, token="tg-reader-token")
    clients.append(session)
    await reader.open(text_id("web:b"))
    assert reader.app.unavailable == [text_id("web:b")]
    await reader.send(reader.app.request(text_id("tg:a")))
    await reader.pump(lambda: has_messages(reader.app, text_id("tg:a")))
    reader.app.change(text_id("tg:a"), set_custom("mood", "x"))
    await reader.send(reader.app.sync(text_id("tg:a")))
    assert await reader.closed() == CLOSE_POLICY
    assert reader.app.errors == ["this token is read-only: document changes are refused"]
    stored = await events(node, "tg:a", token="node-token")
    assert [e["kind"]["type"] for e in stored] == ["message_received"]


@pytest.mark.parametrize(("frame", "code"), [
    (b"\x00garbage", CLOSE_INVALID),
    ("text frame", CLOSE_UNSUPPORTED),
    (b"\x00" * 5_000, CLOSE_TOO_BIG),
])
async def test_hostile_frames_close_only_their_connection(
        make_node: NodeFactory, event_body: EventFactory, clients: list[Any],
        frame: bytes | str, code: int) -> None:
    node = await make_node(automerge=RepoConfig(limits=RepoLimits(frame_bytes_max=4_096)))
    honest, hostile = await honest_and_hostile(node, event_body, clients)
    await hostile.send(hostile.app.join())
    await hostile.pump(lambda: hostile.app.server is not None)
    if isinstance(frame, str):
        await hostile.ws.send_str(frame)
    else:
        await hostile.send(frame)
    assert await hostile.closed() == code
    await still_served(node, honest, event_body)


async def honest_and_hostile(node: RunningNode, event_body: EventFactory,
                             clients: list[Any]) -> tuple[WsApp, WsApp]:
    """A client with session s1 open, and another just connected to the same node."""
    await post(node, "s1", event_body(1))
    session, honest = await connect(node, App(peer="honest"))
    clients.append(session)
    await honest.open()
    session, hostile = await connect(node, App(peer="hostile"))
    clients.append(session)
    return honest, hostile


async def still_served(node: RunningNode, honest: WsApp, event_body: EventFactory) -> None:
    """The honest client still hears of new events."""
    await post(node, "s1", event_body(2))
    await honest.pump(lambda: has_messages(honest.app, S1, 2))


async def test_a_deflate_bomb_closes_only_its_connection(
        make_node: NodeFactory, event_body: EventFactory, clients: list[Any]) -> None:
    from crdt.automerge.binreader import uleb
    from tests.support.automerge import chunk, deflate

    node = await make_node()
    honest, hostile = await honest_and_hostile(node, event_body, clients)
    await hostile.open()
    bomb = chunk(2, deflate(bytes(256 * 1024 * 1024)))  # 256 MiB of zeros in 256 KiB
    message = b"\x42" + uleb(0) * 3 + uleb(1) + uleb(len(bomb)) + bomb
    await hostile.send(hostile.app.frame(type="sync", targetId=hostile.app.server,
                                         documentId=S1, data=message))
    assert await hostile.closed() == CLOSE_TOO_BIG
    assert "unpack to more than" in hostile.app.errors[0]
    await still_served(node, honest, event_body)


async def test_wrong_sender_and_flood_close(make_node: NodeFactory, event_body: EventFactory,
                                            clients: list[Any]) -> None:
    limits = RepoLimits(frames_burst=30, frames_per_s=1)
    node = await make_node(automerge=RepoConfig(limits=limits))
    await post(node, "s1", event_body(1))
    session, liar = await connect(node, App(peer="liar"))
    clients.append(session)
    await liar.open()
    impostor = App(peer="somebody-else")
    impostor.server = liar.app.server
    await liar.send(impostor.request(S1))
    assert await liar.closed() == CLOSE_POLICY
    session, flood = await connect(node, App(peer="flood"))
    clients.append(session)
    await flood.send(flood.app.join())
    await flood.pump(lambda: flood.app.server is not None)
    for i in range(40):
        await flood.send(flood.app.request(text_id(f"doc{i}")))
    assert await flood.closed() == CLOSE_POLICY
    assert any("frames per second" in error for error in flood.app.errors)


async def test_no_join_closes(make_node: NodeFactory, clients: list[Any]) -> None:
    node = await make_node(automerge=RepoConfig(limits=RepoLimits(join_s=0.2)))
    session, silent = await connect(node)
    clients.append(session)
    assert await silent.closed() == CLOSE_PROTOCOL


async def test_ephemeral_messages_reach_the_other_clients(
        make_node: NodeFactory, event_body: EventFactory, clients: list[Any]) -> None:
    node = await make_node()
    await post(node, "s1", event_body(1))
    peers = []
    for name in ("one", "two", "elsewhere"):
        session, client = await connect(node, App(peer=name))
        clients.append(session)
        await client.open(S1 if name != "elsewhere" else text_id("other"))
        peers.append(client)
    one, two, elsewhere = peers
    await one.send(one.app.frame(type="ephemeral", targetId=one.app.server, documentId=S1,
                                 count=1, sessionId="s", data=b"\xa1ax\x01"))
    await two.pump(lambda: bool(two.app.ephemeral))
    [message] = two.app.ephemeral
    assert message["senderId"] == "one" and message["targetId"] == "two"
    assert message["data"] == b"\xa1ax\x01"
    assert one.app.ephemeral == [] and elsewhere.app.ephemeral == []


async def test_stopping_the_node_says_going_away(make_node: NodeFactory,
                                                 event_body: EventFactory,
                                                 clients: list[Any]) -> None:
    node = await make_node()
    await post(node, "s1", event_body(1))
    session, client = await connect(node)
    clients.append(session)
    await client.open()
    stopping = asyncio.create_task(node.stop())
    assert await client.closed() == CLOSE_GOING_AWAY
    await stopping


async def test_an_event_stored_while_the_node_stops_reaches_its_clients(
        make_node: NodeFactory, event_body: EventFactory, clients: list[Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A stopping node serves its Automerge clients until its site stops: an event
    stored while its peer links close (held here) reaches the clients still connected,
    not only those that connect again after a restart."""
    node = await make_node()
    await post(node, "s1", event_body(1))
    session, client = await connect(node)
    clients.append(session)
    await client.open()
    async with stop_held(node, monkeypatch):
        # With nothing new it waits, not reads the log at each turn of the loop (as a
        # wait that a stop ends at once would have it do, for the whole stop).
        reads = 0
        events_after = node.astore.events_after

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal reads
            reads += 1
            return await events_after(*args, **kwargs)

        monkeypatch.setattr(node.astore, "events_after", counted)
        for _ in range(200):
            await asyncio.sleep(0)
        assert reads == 0
        await post(node, "s1", event_body(2, content="while stopping"))
        await client.pump(lambda: has_messages(client.app, S1, 2))
        assert contents(client.app) == ["message 1", "while stopping"]


async def test_idle_documents_leave_memory(make_node: NodeFactory, event_body: EventFactory,
                                           clients: list[Any]) -> None:
    limits = RepoLimits(documents_idle_s=0.05)
    node = await make_node(automerge=RepoConfig(limits=limits))
    await post(node, "s1", event_body(1))
    session, client = await connect(node)
    clients.append(session)
    await client.open()

    async def none_in_memory() -> bool:
        return not (await node.astore.stats())["documents_in_memory"]

    await until(none_in_memory, poll_s=POLL_S)  # each look a read on a reader thread
    await post(node, "s1", event_body(2))  # reloads on demand
    await client.pump(lambda: has_messages(client.app, S1, 2))


async def test_a_client_that_never_answers_pings_is_dropped(make_node: NodeFactory,
                                                            clients: list[Any]) -> None:
    node = await make_node(automerge=RepoConfig(limits=RepoLimits(ping_interval_s=0.2)))
    session = aiohttp.ClientSession()
    clients.append(session)
    ws = await session.ws_connect(node.url + "/automerge", autoping=False)
    client = WsApp(ws, App())
    await client.send(client.app.join())
    pings = 0
    async with asyncio.timeout(DEADLINE_S):  # the node gives up well before the deadline
        while (message := await ws.receive()).type not in (
                aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            pings += message.type == aiohttp.WSMsgType.PING  # never answered
    assert pings >= 1


async def test_documents_a_forget_replaced_while_stopped_are_deleted_at_start(
        make_node: NodeFactory, tmp_path: Path) -> None:
    """The sweep at start walks the sessions that have a stored document."""
    folder = tmp_path / "stopped"
    with EventStore.open(folder) as store:
        for session in ("s1", "s2", "s3"):
            store.append(parse_event({"agent_id": "main", "kind": {
                "type": "message_received", "content": "hi"}}, session_key=session))
        documents = Documents(store)
        for session in ("s1", "s2"):
            documents.saved(session)
        store.erased_listeners.clear()  # stopped before the old document was deleted
        store.append(forget.forget("s1").seal(Hlc(3_000, 0)))
        assert store.log.storage.get(key("ds", "s1")) is not None
    node = await make_node(data_dir=folder)

    def stored(session: str) -> Callable[[EventStore], bytes | None]:
        return lambda store: store.log.storage.get(key("ds", session))

    async def s1_deleted() -> bool:
        return await node.astore.read(stored("s1")) is None

    await until(s1_deleted, poll_s=POLL_S)
    assert await node.astore.read(stored("s2")) is not None


async def test_a_plain_get_is_told_this_is_a_websocket(make_node: NodeFactory) -> None:
    """A browser or curl at /automerge: a 400 that says what goes there, not "Bad
    Request"."""
    node = await make_node()
    async with aiohttp.ClientSession() as http, http.get(node.url + "/automerge") as r:
        assert r.status == 400
        error = (await r.json())["error"]
    assert error["code"] == "websocket_required" and "automerge-repo" in error["message"]


async def test_a_client_come_while_the_node_stops_is_told_so(make_node: NodeFactory,
                                                             clients: list[Any]) -> None:
    """Between the hub's shutdown and the listener's close, a new client gets the
    node's JSON error, its words kept (not aiohttp's bare "Service Unavailable")."""
    node = await make_node()
    await node.runner.app.shutdown()  # as a stop does before it closes the listener
    session = aiohttp.ClientSession()
    clients.append(session)
    async with session.get(node.url + "/automerge") as answer:
        assert answer.status == 503
        assert answer.headers["Retry-After"] == str(STOPPING_RETRY_AFTER_S)
        assert await answer.json() == {"error": {
            "code": "unavailable", "message": "the node is stopping", "field": None}}
