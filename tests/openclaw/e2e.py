"""Two devices, one OpenClaw history: the end-to-end run against a real OpenClaw.

    python -m tests.openclaw.e2e          (.ci/run runs it after the main suite)

1. ``tests/openclaw/install``: Node 26 and openclaw 2026.9.6 into ``.cache/openclaw/``
   (once; later runs reuse it);
2. the fake model server on loopback (it records every request);
3. device A: OpenClaw A (a gateway), clawsync node A and ``clawsync openclaw watch``;
   device B: OpenClaw B (set up, not running) and node B; the two nodes are peers;
4. two turns on A (the second with an ``exec`` tool call): B's node shows them; an
   export into A's state folder is refused while A's gateway runs;
5. ``clawsync openclaw export`` from node B into B's state folder, then ``openclaw doctor
   --session-sqlite import`` (no gateway runs on B meanwhile), then ``watch`` on B;
6. a turn on B: the model must receive the whole history (A's turns, the tool call and its
   result); the turn reaches node A, and both nodes hold each record once.

Prints how long each step took and what the model received on B. Exits 1 on any
failure; a missing prerequisite (npm) is a failure under ``CI=true``, else a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tests.openclaw.device import Device, installed
from tests.openclaw.fake_model import INTERNAL_MARKER, FakeModel, text_of
from tests.support.cluster import Cluster, all_events, serve_args, session_path, wait_until
from tests.support.processes import ROOT, LineReader, NodeProcess, free_port, run_cli, spawn_cli

T = TypeVar("T")

SESSION_ID = "s1"
#: OpenClaw's key for an explicit session id; clawsync keeps it as the session key.
SESSION_KEY = f"agent:main:explicit:{SESSION_ID}"
#: Seconds an event may take to reach the other node (import, then replication).
REACH_TIMEOUT_S = 60.0
#: Seconds ``watch`` gets to exit after SIGTERM.
WATCH_STOP_TIMEOUT_S = 30.0
TURNS_ON_A = ("hello from device A", "please use the tool")
TURN_ON_B = "hello from device B"


class Clock:
    """Durations of the run's steps, printed as they finish."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.steps: list[tuple[str, float]] = []

    def step(self, label: str, action: Callable[[], T]) -> T:
        began = time.monotonic()
        result = action()
        took = time.monotonic() - began
        self.steps.append((label, took))
        print(f"  {label}: {took:.1f} s", flush=True)
        return result

    def total(self) -> float:
        return time.monotonic() - self.start


def install(clock: Clock) -> None:
    """Run the installer, or say why it cannot run (a failure under CI=true)."""
    if not installed() and shutil.which("npm") is None:
        message = "npm is not installed: it is needed to install Node 26 and OpenClaw"
        if os.environ.get("CI") == "true":
            raise SystemExit(f"e2e: FAILED: {message}")
        print(f"e2e: skipped: {message}")
        raise SystemExit(0)
    clock.step("install (tests/openclaw/install)", lambda: subprocess.run(
        [str(ROOT / "tests" / "openclaw" / "install")], check=True))


def session_events(node: NodeProcess) -> list[dict[str, Any]]:
    return all_events(node, session_path(SESSION_KEY) + "/events")


def holds(node: NodeProcess, kind: str, content: str) -> bool:
    """Whether ``node`` has an event of ``kind`` with this ``content`` in the session."""
    try:
        found = session_events(node)
    except OSError:  # the session does not exist there yet (404)
        return False
    return any(e["kind"]["type"] == kind and e["kind"].get("content") == content
               for e in found)


@contextmanager
def watching(node: NodeProcess, device: Device) -> Iterator[LineReader]:
    """``clawsync openclaw watch`` of the device's state folder into ``node``."""
    watch = spawn_cli(node, "openclaw", "watch", "--state-dir", str(device.state_dir))
    said = LineReader(watch.stderr)  # type: ignore[arg-type]
    LineReader(watch.stdout)  # type: ignore[arg-type]  # drained, so it never blocks
    try:
        yield said
    finally:
        watch.terminate()
        try:
            watch.wait(WATCH_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            watch.kill()
            watch.wait()
        if watch.returncode not in (0, -15):
            print(f"  watch of {device.root.name} exited {watch.returncode}: "
                  f"{said.seen[-10:]}", flush=True)


def peers(tmp: Path) -> tuple[NodeProcess, NodeProcess]:
    """Nodes A and B, each the other's peer."""
    port_a, port_b = free_port(), free_port()
    a = NodeProcess(tmp, port=port_a, name="node-a")
    b = NodeProcess(tmp, port=port_b, name="node-b")
    a.extra_args = serve_args([b.url])
    b.extra_args = serve_args([a.url])
    return a, b


def show_request(body: dict[str, Any]) -> list[str]:
    """One line per message the model received (the system prompt by its size)."""
    lines = []
    for message in body["messages"]:
        role = message["role"]
        text = text_of(message.get("content"))
        if role == "system":
            lines.append(f"system: ({len(text)} characters)")
        elif text.lstrip().startswith(INTERNAL_MARKER):
            lines.append(f"{role}: (OpenClaw's internal context, {len(text)} characters)")
        else:
            calls = [f"{c['function']['name']}({c['function']['arguments']})"
                     for c in message.get("tool_calls") or []]
            first = text.strip().split("\n", 1)[0][:100]
            lines.append(f"{role}: {first}{' '.join(calls)}")
    return lines


def check_history(body: dict[str, Any]) -> None:
    """The request of B's turn carries A's turns, the tool call and its result."""
    messages = body["messages"]
    texts = [text_of(m.get("content")) for m in messages]
    wanted = [*TURNS_ON_A, "reply 1: hello from device A", "the tool said: hi", TURN_ON_B]
    missing = [w for w in wanted if not any(w in t for t in texts)]
    calls = [c["function"] for m in messages for c in m.get("tool_calls") or []]
    results = [text_of(m.get("content")).strip() for m in messages if m["role"] == "tool"]
    if missing or not any(c["name"] == "exec" and json.loads(c["arguments"]) ==
                          {"command": "echo hi"} for c in calls) or results != ["hi"]:
        raise AssertionError(f"the model on B did not receive the whole history: missing "
                             f"{missing}, tool calls {calls}, tool results {results}")


def counted_once(node: NodeProcess) -> None:
    """Each user message is one event on ``node``: the records that went A -> B ->
    OpenClaw B -> B's watch are the same events, not copies."""
    found = [e["kind"].get("content") for e in session_events(node)
             if e["kind"]["type"] == "message_received"]
    wanted = [*TURNS_ON_A, TURN_ON_B]
    if sorted(found) != sorted(wanted):
        raise AssertionError(f"{node.name} holds user messages {found}, not {wanted}")


def refused_while_running(node: NodeProcess, device: Device) -> None:
    """The gateway's lock tells export that OpenClaw runs on the folder: nothing written."""
    done = run_cli(node, "openclaw", "export", SESSION_KEY,
                   "--state-dir", str(device.state_dir))
    if done.returncode != 2 or "an OpenClaw gateway is running" not in done.stderr:
        raise AssertionError(f"export beside a running gateway exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    if (device.sessions_dir / f"{SESSION_ID}.jsonl").exists():
        raise AssertionError("export beside a running gateway wrote the transcript")


def run(tmp: Path, clock: Clock) -> list[str]:
    with FakeModel(tmp / "model-requests.jsonl") as model, Cluster(tmp) as cluster:
        device_a = Device(tmp / "device-a", model.base_url)
        device_b = Device(tmp / "device-b", model.base_url)
        node_a, node_b = peers(tmp)

        def start_a() -> None:
            device_a.setup()
            device_a.start_gateway()

        with ThreadPoolExecutor(2) as pool:
            clock.step("OpenClaw A and B set up, A's gateway started, nodes A and B", lambda: [
                f.result() for f in [pool.submit(start_a), pool.submit(device_b.setup),
                                     pool.submit(cluster.add, node_a),
                                     pool.submit(cluster.add, node_b)]])
        try:
            with watching(node_a, device_a):
                for number, text in enumerate(TURNS_ON_A, 1):
                    clock.step(f"turn {number} on A ({text!r})",
                               lambda text=text: device_a.turn(SESSION_ID, text))
                clock.step("A's turns on node B", lambda: wait_until(
                    lambda: holds(node_b, "agent_response", "the tool said: hi"),
                    REACH_TIMEOUT_S, "A's tool-call turn on node B"))
                clock.step("export into A's state folder refused while A's gateway runs",
                           lambda: refused_while_running(node_a, device_a))
        finally:
            device_a.stop_gateway()

        def export_into_b() -> None:
            done = run_cli(node_b, "openclaw", "export", SESSION_KEY,
                           "--state-dir", str(device_b.state_dir))
            if done.returncode != 0:
                raise AssertionError(f"clawsync openclaw export exited {done.returncode}:\n"
                                     f"{done.stdout}\n{done.stderr}")
            device_b.run("doctor", "--session-sqlite", "import")

        clock.step("export from node B into OpenClaw B, and its import", export_into_b)
        before = len(model.requests())
        with watching(node_b, device_b):
            clock.step(f"turn on B ({TURN_ON_B!r}, embedded)",
                       lambda: device_b.turn(SESSION_ID, TURN_ON_B, local=True))
            clock.step("B's turn on node A", lambda: wait_until(
                lambda: holds(node_a, "agent_response", f"reply 3: {TURN_ON_B}"),
                REACH_TIMEOUT_S, "B's turn on node A"))
            received = model.requests()[before:]
            if not received:
                raise AssertionError("the model received nothing from B")
            check_history(received[0])
            wait_until(lambda: {e["id"] for e in session_events(node_a)}
                       == {e["id"] for e in session_events(node_b)},
                       REACH_TIMEOUT_S, "nodes A and B hold the same events")
        counted_once(node_a)
        counted_once(node_b)
        held = len(session_events(node_a))
        print(f"  nodes A and B hold the same {held} events of {SESSION_KEY}, each user "
              "message once", flush=True)
        return show_request(received[0])


def main() -> None:
    clock = Clock()
    print("== OpenClaw end to end: two devices, one history", flush=True)
    install(clock)
    tmp = Path(tempfile.mkdtemp(prefix="openclaw-e2e-"))
    try:
        received = run(tmp, clock)
    except BaseException as error:
        print(f"e2e: FAILED after {clock.total():.0f} s: {error}", flush=True)
        print(f"  (work folder kept: {tmp})", flush=True)
        sys.exit(1)
    shutil.rmtree(tmp, ignore_errors=True)
    print("  what the model received for the turn on B:", flush=True)
    for line in received:
        print(f"    {line}")
    print(f"e2e: passed in {clock.total():.0f} s", flush=True)


if __name__ == "__main__":
    main()
