"""Resource exhaustion by clients, against real node processes: idle connection floods,
live stream floods, and pages of large, heavily escaped events.

Distinct loopback addresses (127.0.0.2, 127.0.0.3, ...) stand for distinct client hosts:
a client socket bound to one reaches the node from that address.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest

from crdt.membership import DEVICES_SESSION
from node.limits import Limits
from tests.support.events import event_body
from tests.support.processes import NodeProcess

TOKEN = "exhaustion-test-token"
LIMITS = Limits()
#: Content escaped by JSON as six bytes per character (``\\u0001``), in an event just
#: under the 128 KiB event limit: the costliest event to serve as JSON.
BIG_CONTENT_CHARS = 110_000
BIG_EVENTS = 300
BIG_EVENTS_PER_REQUEST = 30
#: What the node may hold at its peak (VmHWM) while three clients read every page of
#: the big events and a projection of half of them, and STALLED_STREAMS live streams
#: are not read (README, "Floods"). Measured: about 450 MiB, of which about 230 MiB
#: are the SQLite file mapped into memory (diskcache maps up to 64 MiB of it per
#: connection), and about 175 MiB the peak of the appends before.
RSS_BYTES_MAX = 640 * 1024 * 1024
STALLED_STREAMS = 32


def request(node: NodeProcess, path: str, *, source: str = "127.0.0.1",
            token: str | None = TOKEN, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout_s: float = 10.0
            ) -> tuple[int, dict[str, str], bytes]:
    """One request from ``source``: status, headers, body."""
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout_s,
                                      source_address=(source, 0))
    try:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=body, headers=sent)
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def connect(node: NodeProcess, source: str = "127.0.0.1", rcvbuf: int | None = None,
            timeout_s: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connecting, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout_s)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", node.port))
    return sock


def open_stream(node: NodeProcess, source: str, rcvbuf: int | None = None
                ) -> tuple[socket.socket, int, bytes]:
    """A live stream from the start of the log: the socket, the status and the head of
    the answer (as far as the first read went)."""
    sock = connect(node, source, rcvbuf)
    sock.sendall(b"GET /v1/events?after=0 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                 b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "the node closed the stream before answering"
        head += chunk
    return sock, int(head.split(b" ", 2)[1]), head


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the node closed ``sock`` (read until end of file or a reset)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


@pytest.mark.parametrize("sources", [["127.0.0.1"], [f"127.0.1.{n}" for n in range(1, 6)]],
                         ids=["one address", "five addresses"])
def test_an_idle_flood_leaves_others_served(tmp_path: Path, sources: list[str]) -> None:
    """1,100 silent sockets from one address (past its share), or 1,250 from five (past
    every slot)."""
    with NodeProcess(tmp_path, token=TOKEN) as node:
        flood = []
        for source in sources:
            for _ in range(1100 if len(sources) == 1 else 250):  # no token, not a byte
                try:
                    flood.append(connect(node, source, timeout_s=2.0))
                except OSError:
                    break  # the kernel's queue is full: the flood already is
        try:
            # Another host, and a client with a token from a third, are served at once
            # (the idle sockets would otherwise hold every slot for 30 s); so is a client
            # of a flooding address itself (every local client shares 127.0.0.1), in the
            # place of one of its idle sockets.
            assert request(node, "/healthz", source=sources[-1], token=None,
                           timeout_s=5.0)[0] == 200
            assert request(node, "/healthz", source="127.0.0.2", token=None,
                           timeout_s=5.0)[0] == 200
            assert request(node, "/v1/sessions", source="127.0.0.3", timeout_s=5.0)[0] == 200
            # The idle sockets themselves are closed within the first-byte limit.
            for sock in flood:
                sock.settimeout(LIMITS.first_byte_timeout_s + 10)
                assert closed_by_peer(sock)
        finally:
            for sock in flood:
                sock.close()


def test_a_stream_flood_is_refused_beyond_the_caps(tmp_path: Path) -> None:
    with NodeProcess(tmp_path, token=TOKEN) as node:
        streams: list[socket.socket] = []
        try:
            sources = [f"127.0.0.{2 + i}" for i in
                       range(LIMITS.streams_max // LIMITS.streams_per_address_max)]
            for n, source in enumerate(sources):
                for _ in range(LIMITS.streams_per_address_max):
                    sock, status, _ = open_stream(node, source)
                    streams.append(sock)
                    assert status == 200
                if n == 0:  # one address over its share: 429, saying when to come back
                    sock, status, head = open_stream(node, source)
                    sock.close()
                    assert status == 429
                    assert b"\r\nretry-after: 10\r\n" in head.lower()
            # Every slot taken: 503, from any address.
            sock, status, head = open_stream(node, "127.0.0.100")
            sock.close()
            assert status == 503
            assert b"\r\nretry-after: 10\r\n" in head.lower()
            # Ordinary requests still get through.
            assert request(node, "/v1/sessions", source="127.0.0.100")[0] == 200
            assert request(node, "/healthz", source=sources[0], token=None)[0] == 200
        finally:
            for sock in streams:
                sock.close()


@pytest.fixture(scope="module")
def big_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess,
                                                                        list[str]]]:
    """A node holding BIG_EVENTS of the costliest events to serve as JSON, in two
    sessions (each projection about 100 MB as JSON); with the ids of all it holds in
    position order: first the device key record written before the first event."""
    with NodeProcess(tmp_path_factory.mktemp("big"), token=TOKEN) as node:
        ids: list[str] = []
        for first in range(0, BIG_EVENTS, BIG_EVENTS_PER_REQUEST):
            key = f"s{(first // BIG_EVENTS_PER_REQUEST) % 2}"
            bodies = [event_body(n, content="\x01" * BIG_CONTENT_CHARS + str(n),
                                 session_key=key)
                      for n in range(first, first + BIG_EVENTS_PER_REQUEST)]
            status, _, answer = request(
                node, f"/v1/sessions/{key}/events", method="POST", timeout_s=60.0,
                body=cbor2.dumps(bodies), headers={"Content-Type": "application/cbor"})
            assert status == 201, answer[:300]
            ids += [stored["id"] for stored in json.loads(answer)["events"]]
        status, _, answer = request(node, f"/v1/sessions/{DEVICES_SESSION}/events")
        assert status == 200
        [record] = json.loads(answer)["events"]
        assert (record["position"], record["kind"]["type"]) == (1, "device_key")
        yield node, [record["id"], *ids]


def read_pages(node: NodeProcess, path: str, cbor: bool = False
               ) -> tuple[list[str], int]:
    """Every event id of a paged read from its start, and the largest page in bytes."""
    ids: list[str] = []
    after, largest = 0, 0
    accept = "application/cbor" if cbor else "application/json"
    while True:
        status, _, body = request(node, f"{path}?limit=1000&after={after}", timeout_s=60.0,
                                  headers={"Accept": accept})
        assert status == 200
        largest = max(largest, len(body))
        page: dict[str, Any] = cbor2.loads(body) if cbor else json.loads(body)
        ids += [stored["id"] for stored in page["events"]]
        if not page["more"]:
            return ids, largest
        assert page["next"] > after
        after = page["next"]


#: A page's events end once they reach ``page_bytes_max``: with the one event that
#: crosses it and the page's framing, no page is larger than this.
PAGE_BYTES_MAX = LIMITS.page_bytes_max + 6 * BIG_CONTENT_CHARS + 4096


def test_pages_of_big_events_are_bounded_in_bytes_and_miss_nothing(
        big_node: tuple[NodeProcess, list[str]]) -> None:
    node, ids = big_node
    everything, largest = read_pages(node, "/v1/events")
    assert everything == ids  # each once, in position order
    assert largest <= PAGE_BYTES_MAX
    as_cbor, largest = read_pages(node, "/v1/events", cbor=True)
    assert as_cbor == ids
    assert largest <= PAGE_BYTES_MAX
    session, largest = read_pages(node, "/v1/sessions/s0/events")
    appended = ids[1:]  # without the device key record
    assert session == [i for n, i in enumerate(appended)
                       if (n // BIG_EVENTS_PER_REQUEST) % 2 == 0]
    assert largest <= PAGE_BYTES_MAX


def proc_status(node: NodeProcess) -> dict[str, int]:
    """The node's memory figures from /proc (``VmHWM``, ``RssAnon``, ...) in bytes."""
    assert node.process is not None
    status = Path(f"/proc/{node.process.pid}/status").read_text()
    return {line.split(":")[0]: int(line.split()[1]) * 1024
            for line in status.splitlines() if line.endswith(" kB")}


def peak_rss_bytes(node: NodeProcess) -> int:
    return proc_status(node)["VmHWM"]


def memory_now(node: NodeProcess) -> str:
    status = proc_status(node)
    return ", ".join(f"{name} {status[name] / 2**20:.0f} MiB" for name in ("RssAnon", "RssFile"))


def test_memory_stays_bounded_under_big_reads_and_stalled_streams(
        big_node: tuple[NodeProcess, list[str]]) -> None:
    node, ids = big_node
    # Readers that never read, with a tiny receive window: what they do not take the
    # node must not hold without bound.
    stalled = [open_stream(node, "127.0.0.50", rcvbuf=4096)[0] for _ in range(STALLED_STREAMS)]
    try:
        results: list[list[str]] = []
        projections: list[int] = []

        def read_everything() -> None:
            results.append(read_pages(node, "/v1/events")[0])
            status, _, body = request(node, "/v1/sessions/s0", timeout_s=120.0)
            assert status == 200
            projections.append(len(json.loads(body)["messages"]))

        readers = [threading.Thread(target=read_everything) for _ in range(3)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        assert results == [ids] * 3
        assert projections == [BIG_EVENTS // 2] * 3
        peak = peak_rss_bytes(node)
        print(f"node peak RSS (VmHWM): {peak / 2**20:.0f} MiB; {memory_now(node)}")
        assert peak < RSS_BYTES_MAX
        assert request(node, "/healthz", token=None)[0] == 200
    finally:
        for sock in stalled:
            sock.close()
