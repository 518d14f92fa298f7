"""Several real nodes wired together, and the checks that they hold the same history.

``Cluster`` starts ``clawsync serve`` processes that share a cluster secret and poll their
peers every ``PULL_INTERVAL_S``; links can run through a ``LinkProxy``, to cut them or
to slow them (so a transfer lasts long enough to interrupt). ``wait_converged`` polls
until every node holds the same events, then ``assert_same_state`` compares everything a
client can read: the event log (no duplicates, gap-free positions), every projection
(also against a rebuild from the events) and every Automerge document.

    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        ids = {e["id"] for e in append(a, "s1", [message("hi")])}
        assert_same_state([a, b], wait_converged([a, b], must_hold=ids))

Nothing here sleeps for correctness: waits poll with a deadline and fail with what they
last saw.
"""

from __future__ import annotations

import asyncio
import json
import random
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
from automerge.core import Document, extract

from crdt.events import Event, parse_event
from crdt.log.projection import rebuild
from node.cli.linkproxy import LinkProxy
from tests.support.processes import NodeProcess
from tests.support.waits import wait_until as wait_until  # the cluster tests take it here

#: The cluster secret every node of a test cluster shares.
SECRET = "integration-cluster-secret"
#: Seconds between repair rounds (``--pull-interval``): short, so repairs are quick.
PULL_INTERVAL_S = 0.2
#: Seconds nodes get to converge. Generous: a peer that was unreachable for a while
#: retries after an exponential back-off (``sync.peer.config``, up to 60 s in the worst case).
CONVERGE_TIMEOUT_S = 90.0
#: Events per page when reading a whole log (the node's maximum).
PAGE = 1000


# -- talking to one node -------------------------------------------------------------------


def request(node: NodeProcess, method: str, path: str, body: Any = None,
            timeout_s: float = 30.0) -> bytes:
    """One request to ``node`` with its token (and CA, over HTTPS); the raw answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(node.url + path, data=data, method=method,
                                 headers={"Accept": "application/json",
                                          "Content-Type": "application/json"})
    if node.token is not None:
        req.add_header("Authorization", f"Bearer {node.token}")
    with urllib.request.urlopen(req, timeout=timeout_s,
                                context=node.ssl_context()) as response:
        raw: bytes = response.read()
    return raw


def session_path(key: str) -> str:
    return f"/v1/sessions/{quote(key, safe='')}"


def append(node: NodeProcess, key: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append ``events`` to session ``key`` on ``node``; the stored events it answers."""
    answer = json.loads(request(node, "POST", session_path(key) + "/events", events))
    stored: list[dict[str, Any]] = answer["events"]
    return stored


def message(content: str, agent: str = "main", **extra: Any) -> dict[str, Any]:
    """A ``message_received`` event (``extra`` adds top-level fields such as ``hlc``)."""
    return {"agent_id": agent, "kind": {"type": "message_received", "content": content},
            **extra}


def head(node: NodeProcess) -> int:
    return int(node.get("/healthz", timeout_s=5.0)["head"])


def all_events(node: NodeProcess, path: str = "/v1/events") -> list[dict[str, Any]]:
    """Every event behind a paged endpoint, in position order."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = node.get(f"{path}?after={after}&limit={PAGE}")
        events += page["events"]
        after = page["next"]
        if not page["more"]:
            return events


def session_keys(node: NodeProcess) -> set[str]:
    keys: set[str] = set()
    after = 0
    while True:
        # Every session the events name, the cluster's own ones too.
        page = node.get(f"/v1/sessions?after={after}&limit={PAGE}&include_cluster=1")
        keys |= {ref["session_key"] for ref in page["sessions"]}
        after = page["next"]
        if not page["more"]:
            return keys


def projection(node: NodeProcess, key: str) -> dict[str, Any]:
    """The session's projection, without what the node serves beside it: its
    ``automerge_url`` (the same everywhere) and ``forgotten`` (``forgotten``)."""
    view = node.get(session_path(key))
    view.pop("automerge_url")
    view.pop("forgotten", None)  # an older node's has none
    return view


def forgotten(node: NodeProcess, key: str) -> bool | None:
    """Whether the node says every event of the session was forgotten (None: an older
    node, which does not say)."""
    said = node.get(session_path(key)).get("forgotten")
    assert said is None or isinstance(said, bool), said
    return said


def automerge_content(node: NodeProcess, key: str) -> Any:
    """The session's Automerge document as the node serves it, loaded and extracted."""
    return extract(Document.load(request(node, "GET", session_path(key) + "/automerge")))


def automerge_history(node: NodeProcess, key: str) -> list[bytes]:
    """The uncompressed bytes of every change in the node's document of ``key``."""
    saved = Document.load(request(node, "GET", session_path(key) + "/automerge"))
    return [change.raw_bytes for change in saved.get_changes([])]


def peer_rows(node: NodeProcess) -> list[dict[str, Any]]:
    """``GET /v1/peers``: one row per link."""
    rows: list[dict[str, Any]] = node.get("/v1/peers")["peers"]
    return rows


def sort_key(event: dict[str, Any]) -> tuple[int, int, str]:
    """The total order of a session's events: ``(timestamp, id)``."""
    ms, counter = event["hlc"]
    return ms, counter, event["id"]


# -- convergence ---------------------------------------------------------------------------


#: The session of the records nodes write themselves (a device's key as the first event
#: of each of its origins, membership): beside the events a test appends.
RECORDS_SESSION = "clawsync:devices"


def appended_ids(events: Iterable[dict[str, Any]]) -> set[str]:
    """Ids of ``events`` but the nodes' own records (``RECORDS_SESSION``)."""
    return {event["id"] for event in events if event["session_key"] != RECORDS_SESSION}


def wait_converged(nodes: Sequence[NodeProcess], must_hold: Iterable[str] = (),
                   timeout_s: float = CONVERGE_TIMEOUT_S) -> set[str]:
    """Poll until every node holds the same set of event ids, including ``must_hold``;
    returns that set, the nodes' own records left out (``appended_ids``). Heads are
    compared first (cheap), whole logs only when they agree."""
    wanted = set(must_hold)

    def converged() -> set[str] | None:
        heads = [head(node) for node in nodes]
        if len(set(heads)) != 1 or heads[0] < len(wanted):
            return None
        logs = [all_events(node) for node in nodes]
        sets = [{event["id"] for event in log} for log in logs]
        if any(ids != sets[0] for ids in sets) or not wanted <= sets[0]:
            return None
        return appended_ids(logs[0])

    def describe() -> str:
        return ", ".join(f"{n.name} head {head(n)}" for n in nodes if n.running)

    try:
        return wait_until(converged, timeout_s, "nodes hold the same events",
                          poll_s=0.1)
    except AssertionError as error:
        raise AssertionError(f"{error}; {describe()}; wanted {len(wanted)}") from None


def check_log(node: NodeProcess) -> list[dict[str, Any]]:
    """The node's whole log, checked: gap-free positions, each id once, ids that match
    the events' content."""
    events = all_events(node)
    assert [e["position"] for e in events] == list(range(1, len(events) + 1)), \
        f"{node.name}: positions have gaps"
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids), f"{node.name}: an event is stored twice"
    for event in events:
        sealed = parse_event(event, records_ok=True)  # the node's own records too
        assert isinstance(sealed, Event) and sealed.id.hex() == event["id"], \
            f"{node.name}: event {event['id']} no longer hashes to its id"
    return events


def assert_same_state(nodes: Sequence[NodeProcess], ids: set[str],
                      automerge: bool = True) -> None:
    """Every node holds exactly ``ids`` (and the nodes' own records), once each, and serves
    the same projections (equal to a rebuild from the events) and the same Automerge
    documents."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for node in nodes:
        events = check_log(node)
        assert appended_ids(events) == ids, f"{node.name}: other events"
        for event in events:
            by_key.setdefault(event["session_key"], [])
        if node is nodes[0]:
            for event in events:
                by_key[event["session_key"]].append(event)
    for node in nodes:
        assert session_keys(node) == set(by_key), f"{node.name}: other sessions"
    for key, events in by_key.items():
        sealed = [parse_event(event, records_ok=True) for event in events]
        expected = rebuild(key, [e for e in sealed if isinstance(e, Event)]).to_json()
        for node in nodes:
            assert projection(node, key) == expected, f"{node.name}: projection of {key}"
        said = {forgotten(node, key) for node in nodes} - {None}
        assert len(said) <= 1, f"nodes differ on whether {key} is forgotten"
        if automerge:
            documents = [automerge_content(node, key) for node in nodes]
            assert all(doc == documents[0] for doc in documents), \
                f"Automerge documents of {key} differ"
            assert len(documents[0]["messages"]) == len(expected["messages"])


# -- load ----------------------------------------------------------------------------------


def event_batch(rng: random.Random, tag: str) -> list[dict[str, Any]]:
    """One to five events of assorted kinds, so projections have something to fold."""
    events = []
    for i in range(rng.randint(1, 5)):
        kind: dict[str, Any] = rng.choice([
            {"type": "message_received", "content": f"{tag}.{i} in"},
            {"type": "agent_response", "content": f"{tag}.{i} out", "model": "m"},
            {"type": "tool_result", "tool_name": "t", "result": {"n": i}, "success": True},
            {"type": "state_changed", "key": f"k{rng.randint(0, 3)}", "value": tag},
            {"type": "session_started", "channel": f"c{rng.randint(0, 2)}", "peer_id": "p"},
            {"type": "session_ended", "reason": tag},
        ])
        events.append({"agent_id": f"agent{rng.randint(0, 2)}", "kind": kind})
    return events


async def _writer(http: aiohttp.ClientSession, node: NodeProcess, keys: Sequence[str],
                  requests: int, rng: random.Random, name: str,
                  acknowledged: dict[str, str]) -> None:
    for n in range(requests):
        key = rng.choice(keys)
        async with http.post(node.url + session_path(key) + "/events",
                             json=event_batch(rng, f"{name}.{n}")) as response:
            assert response.status in (200, 201), await response.text()
            body = await response.json()
        for stored in body["events"]:
            acknowledged[stored["id"]] = node.name


async def write_concurrently(nodes: Sequence[NodeProcess], keys: Sequence[str], *,
                             writers_per_node: int, requests: int,
                             seed: int) -> dict[str, str]:
    """Append from ``writers_per_node`` concurrent clients per node, each sending
    ``requests`` small batches to random sessions of ``keys``; returns the id of every
    acknowledged event with the node that acknowledged it."""
    acknowledged: dict[str, str] = {}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(
            _writer(http, node, keys, requests, random.Random(f"{seed}.{node.name}.{w}"),
                    f"{node.name}.w{w}", acknowledged)
            for node in nodes for w in range(writers_per_node)))
    return acknowledged


def backlog(node: NodeProcess, key_prefix: str, events: int, sessions: int = 4) -> set[str]:
    """Append ``events`` messages to ``node`` in requests of 1,000; their ids."""
    ids: set[str] = set()
    for start in range(0, events, PAGE):
        key = f"{key_prefix}:{(start // PAGE) % sessions}"
        batch = [message(f"{key_prefix} #{n} " + "x" * 40)
                 for n in range(start, min(events, start + PAGE))]
        ids |= {stored["id"] for stored in append(node, key, batch)}
    return ids


# -- the cluster ---------------------------------------------------------------------------


def serve_args(peers: Sequence[str] = (), secret: str | None = SECRET,
               advertise_url: str | None = None) -> list[str]:
    """``clawsync serve`` options for a cluster member."""
    args = ["--pull-interval", str(PULL_INTERVAL_S)]
    if secret is not None:
        args += ["--cluster-secret", secret]
    for url in peers:
        args += ["--peer", url]
    if advertise_url is not None:
        args += ["--advertise-url", advertise_url]
    return args


class Cluster:
    """Nodes and proxies of one test; stops them all, and prints every node's log tail
    when the test fails (pytest shows it beside the failure)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.nodes: dict[str, NodeProcess] = {}
        self.links: list[LinkProxy] = []

    def node(self, name: str, *, peers: Sequence[str] = (), secret: str | None = SECRET,
             advertise: bool = False, extra_args: Sequence[str] = (),
             start: bool = True, token: str | None = None,
             program: str = "node.main") -> NodeProcess:
        """A member; ``advertise`` tells peers its own URL so they can pass it on;
        ``program`` is the module it runs (a build that knows more, say)."""
        process = NodeProcess(self.tmp_path, name=name, token=token, program=program)
        process.extra_args = [
            *serve_args(peers, secret, process.url if advertise else None), *extra_args]
        return self.add(process, start)

    def add(self, process: NodeProcess, start: bool = True) -> NodeProcess:
        """Take charge of a node built elsewhere (stopped, and its log shown, with the
        others)."""
        self.nodes[process.name] = process
        return process.start() if start else process

    def proxy(self, target: NodeProcess) -> LinkProxy:
        """A cut-able link to ``target``: peers dial ``proxy_url(link)``."""
        link = LinkProxy(target_port=target.port).start()
        self.links.append(link)
        return link

    def slow_link(self, target: NodeProcess, bytes_per_s: int) -> LinkProxy:
        link = LinkProxy(target.port, bytes_per_s).start()
        self.links.append(link)
        return link

    def stop(self) -> None:
        # Dialers first (they were started after the nodes they dial): a node that still
        # has accepted peer links takes long to stop on SIGTERM (see test_replication).
        for node in reversed(self.nodes.values()):
            node.stop()
        for link in self.links:
            link.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
        if error is not None:
            for node in self.nodes.values():
                print(f"===== {node.name} log =====\n{node.log_tail(60)}")


def proxy_url(link: LinkProxy) -> str:
    return f"http://127.0.0.1:{link.port}"

