"""A real node on a small file system that fills up while clients append: full-disk
errors are answered 503 with Retry-After (never 500), nothing is acknowledged that was
not committed, and appends work again, without a restart, once space comes back."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import all_events
from tests.support.processes import NodeProcess
from tests.support.storage import tmpfs

#: Size of the file system under the node's data folder.
DISK_BYTES = 8 * 1024 * 1024
#: Clients appending at once, and the content size of each of their events.
CLIENTS = 4
CONTENT_CHARS = 2_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of ``DISK_BYTES`` mounted for the test."""
    with tmpfs(tmp_path / "small", f"size={DISK_BYTES}") as mount:
        yield mount


def append(node: NodeProcess, n: int) -> tuple[int, dict[str, object]]:
    """POST one event numbered ``n``; the status and the answer's JSON."""
    body = json.dumps({"agent_id": "main", "hlc": [1_700_000_000_000 + n, 0],
                       "kind": {"type": "message_received",
                                "content": f"event {n} " + "x" * CONTENT_CHARS}}).encode()
    request = urllib.request.Request(f"{node.url}/v1/sessions/s{n % 7}/events", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        answer = json.loads(error.read())
        answer["retry_after"] = error.headers.get("Retry-After")
        return error.code, answer


class Clients:
    """``CLIENTS`` threads appending distinct events until told to stop."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self.acknowledged: dict[str, int] = {}  # event id -> number
        self.statuses: dict[int, int] = {}
        self.codes: set[str] = set()
        self.retry_after: set[str | None] = set()
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def sent(self) -> int:
        return self._next

    def run_until(self, enough: threading.Event | None, count: int | None = None) -> None:
        self._stop.clear()
        threads = [threading.Thread(target=self._work, args=(count,)) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        if enough is not None:
            enough.wait(120)
            self._stop.set()
        for thread in threads:
            thread.join()

    def _work(self, count: int | None) -> None:
        while not self._stop.is_set():
            with self._lock:
                if count is not None and self._next >= count:
                    return
                n = self._next = self._next + 1
            status, answer = append(self.node, n)
            with self._lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status in (200, 201):
                    events = answer["events"]
                    assert isinstance(events, list)
                    self.acknowledged[str(events[0]["id"])] = n
                else:
                    error = answer["error"]
                    assert isinstance(error, dict)
                    self.codes.add(str(error["code"]))
                    self.retry_after.add(answer.get("retry_after"))  # type: ignore[arg-type]


def test_a_full_disk_is_503_acknowledges_only_what_was_committed_and_recovers(
        tmp_path: Path, small_disk: Path) -> None:
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (DISK_BYTES // 4))  # freed later: "space comes back"
    node = NodeProcess(tmp_path)  # its log stays off the small disk
    node.data_dir = small_disk / "data"
    with node:
        clients = Clients(node)
        full = threading.Event()
        watcher = threading.Thread(target=_watch_for_503, args=(clients, full))
        watcher.start()
        clients.run_until(full)
        watcher.join()
        filled = dict(clients.statuses)
        assert filled.get(503, 0) >= 1, filled
        assert set(filled) <= {200, 201, 503}, filled  # never a 500
        assert clients.codes == {"storage_full"}
        assert clients.retry_after == {"30"}
        assert node.get("/healthz")["status"] == "ok"  # reads still work
        before = len(clients.acknowledged)

        ballast.unlink()  # space comes back; no restart
        clients.statuses.clear()
        clients.run_until(None, count=clients.sent + 40)
        assert clients.statuses.get(201, 0) >= 1, clients.statuses
        assert len(clients.acknowledged) > before

        node.restart()  # what is on disk, read by a new process
        stored = {event["id"] for event in all_events(node)}
        assert set(clients.acknowledged) <= stored  # every acknowledged event is there
        print(f"full disk: statuses while filling {filled}; acknowledged {before} before "
              f"and {len(clients.acknowledged) - before} after space came back; "
              f"{len(stored)} events on disk, {len(stored - set(clients.acknowledged))} "
              "of them never acknowledged")


def _watch_for_503(clients: Clients, full: threading.Event) -> None:
    """Let the clients go on for a little while after the first 503, then stop them."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and clients.statuses.get(503, 0) < 20:
        time.sleep(0.05)
    full.set()
