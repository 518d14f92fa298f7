"""A SESSION the node does not hold, as a typo makes one: the error names the node's
sessions whose keys are close to it, or says how to list them."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from node.cli.common import SESSIONS_COMPARED_MAX, SESSIONS_HINT_TIMEOUT_S
from node.limits import ClientLimits
from tests.support.metrics import samples, scrape
from tests.support.processes import LineReader, NodeProcess, run_cli, spawn_cli
from tests.support.stand_in import Quiet, serving


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(tmp_path_factory.mktemp("node")) as started:
        for key in ("tg:alice", "tg:bob"):
            appended = run_cli(started, "append", key, "message_received", "content=hi")
            assert appended.returncode == 0, appended.stderr
        yield started


@pytest.mark.parametrize("command", [("events",), ("projection",), ("forget",)])
def test_a_mistyped_session_names_the_close_one(node: NodeProcess,
                                                command: tuple[str, ...]) -> None:
    done = run_cli(node, *command, "tg:alise")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == ("Error: there is no session 'tg:alise' on the node; "
                                   "did you mean 'tg:alice'?"), done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def forgotten(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node holding tg:alice with its every event forgotten, and tg:alicia."""
    with NodeProcess(tmp_path_factory.mktemp("forgotten")) as started:
        for key in ("tg:alice", "tg:alicia"):
            appended = run_cli(started, "append", key, "message_received", "content=hi")
            assert appended.returncode == 0, appended.stderr
        gone = run_cli(started, "forget", "tg:alice")
        assert gone.returncode == 0, gone.stderr
        yield started


@pytest.mark.parametrize("command", [("events",), ("projection",), ("forget",)])
def test_a_session_forgotten_whole_is_not_named(forgotten: NodeProcess,
                                               command: tuple[str, ...]) -> None:
    """`clawsync sessions` hides a session whose every event was forgotten: the hint
    names only the close ones it shows."""
    done = run_cli(forgotten, *command, "tg:alise")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == ("Error: there is no session 'tg:alise' on the node; "
                                   "did you mean 'tg:alicia'?"), done.stderr


def test_a_session_typed_in_capitals_names_the_one_meant(node: NodeProcess) -> None:
    done = run_cli(node, "projection", "TG:ALICE")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == ("Error: there is no session 'TG:ALICE' on the node; "
                                   "did you mean 'tg:alice'?"), done.stderr


def test_tail_of_a_mistyped_session_names_the_close_one_and_keeps_following(
        node: NodeProcess) -> None:
    """The session may yet begin, so tail waits for it: saying the close key at once
    spares waiting for a session that never comes."""
    tail = spawn_cli(node, "tail", "--session", "tg:alise")
    try:
        assert tail.stderr is not None
        line = LineReader(tail.stderr).wait_for("tg:alise")
        assert line.strip() == ("there is no session 'tg:alise' on the node yet: waiting "
                                "for its first event; did you mean 'tg:alice'?"), line
        assert tail.poll() is None
    finally:
        tail.kill()
        tail.wait()


def test_a_session_like_none_says_how_to_list_them(node: NodeProcess) -> None:
    done = run_cli(node, "events", "weather")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == ("Error: there is no session 'weather' on the node; "
                                   "`clawsync sessions` lists them"), done.stderr
    # Nothing was forgotten on the way: the sessions are all there.
    assert run_cli(node, "events", "tg:alice").returncode == 0


def test_a_node_that_lists_fewer_sessions_a_page_still_says_how_to_list_them(
        tmp_path: Path) -> None:
    """One page of ``SESSIONS_COMPARED_MAX`` is more than this node's page_max: it
    refuses that page, and the error is the node's "no such session" all the same."""
    config = tmp_path / "clawsync.toml"
    config.write_text(f"[limits]\npage_default = 10\npage_max = {SESSIONS_COMPARED_MAX - 1}\n")
    (tmp_path / "node").mkdir()
    with NodeProcess(tmp_path / "node", extra_args=["--config", str(config)]) as node:
        appended = run_cli(node, "append", "tg:alice", "message_received", "content=hi")
        assert appended.returncode == 0, appended.stderr
        done = run_cli(node, "events", "tg:alise")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == ("Error: there is no session 'tg:alise' on the node; "
                                   "`clawsync sessions` lists them"), done.stderr


def test_forget_asks_the_sessions_own_route_only_past_a_first_page_without_it(
        tmp_path: Path) -> None:
    """Whether the session is forgotten already is read from the list by prefix. For a
    session the node does not hold, past a first page without it, its own route's 404
    says so at once, where the list would be paged through first (here a page per
    session whose key starts with it: in a large store, all of them); the other list
    requests are the hint's: its page, and the row of each close session (tg:al1,
    tg:al2, tg:al3), which the first page by its key holds. A session the first page
    holds costs no more: its own route, which sends its first event whole, is not
    asked."""
    config = tmp_path / "clawsync.toml"
    config.write_text("[limits]\npage_default = 1\n")
    (tmp_path / "node").mkdir()
    with NodeProcess(tmp_path / "node", extra_args=["--config", str(config)]) as node:
        for key in ("tg:al1", "tg:al2", "tg:al3"):
            appended = run_cli(node, "append", key, "message_received", "content=hi")
            assert appended.returncode == 0, appended.stderr
        forgot = run_cli(node, "forget", "tg:al2")
        after_forgot = asyncio.run(scrape(node.url))
        missing = run_cli(node, "forget", "tg:al")
        after_missing = asyncio.run(scrape(node.url))
    assert forgot.returncode == 0, forgot.stderr
    assert _gets(after_forgot) == {"/v1/sessions": 1, "/v1/sessions/{key}/events": 0}
    assert missing.returncode == 1, missing.stderr
    assert missing.stderr.startswith("Error: there is no session 'tg:al' on the node"), \
        missing.stderr
    assert _gets(after_missing) == {"/v1/sessions": 6, "/v1/sessions/{key}/events": 1}


def _gets(metrics: str) -> dict[str, int]:
    """The GET requests a node answered on the routes a forget reads, by route."""
    return {route: int(sum(count for _labels, count in samples(
        metrics, "clawsync_http_requests", "_total", route=route, method="GET")))
        for route in ("/v1/sessions", "/v1/sessions/{key}/events")}


class _Lister(Quiet):
    """A node without the session asked for, whose list of sessions is ``listed``: a
    body, or None for a list it is slow to give (held till ``release`` is set)."""

    listed: object = None
    release = threading.Event()

    def do_GET(self) -> None:
        if not self.path.startswith("/v1/sessions?"):
            self.answer(404, {"error": {"code": "not_found", "message": "no such session"}})
        elif self.listed is None:
            self.release.wait(SLOW_LIST_S)  # then hangs up: the command is gone
        else:
            self.answer(200, self.listed)


#: How long the stand-in holds a slow list: longer than the command's own run may take.
SLOW_LIST_S = 120.0


def lister(listed: object) -> type[_Lister]:
    return type("Listing", (_Lister,), {"listed": listed, "release": threading.Event()})


@pytest.mark.parametrize("listed", [{"sessions": 5}, {"sessions": "tg:alice"},
                                    {"sessions": None}, [{"session_key": "tg:alice"}],
                                    {"sessions": [5, {"session_key": 7}, {"key": "tg:alice"}]}])
def test_a_session_list_that_is_no_list_leaves_the_plain_hint(listed: object) -> None:
    """The hint is the node's answer read as it comes: anything but a list of rows gives
    the plain one, never a traceback."""
    with serving(lister(listed)) as url:
        done = run_cli(url, "events", "tg:alise")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().endswith("; `clawsync sessions` lists them"), done.stderr


def test_a_node_slow_to_list_its_sessions_leaves_the_plain_hint() -> None:
    """The node has answered "no such session" already: its list is waited for a few
    seconds (SESSIONS_HINT_TIMEOUT_S), not the whole request timeout, and the command
    ends well within that timeout."""
    handler = lister(None)
    try:
        with serving(handler) as url:
            done = run_cli(url, "events", "tg:alise",
                           timeout_s=ClientLimits().request_timeout_s - 5)
    finally:
        handler.release.set()
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().endswith("; `clawsync sessions` lists them"), done.stderr
    assert ClientLimits().request_timeout_s / 3 > SESSIONS_HINT_TIMEOUT_S


def test_a_token_that_may_not_list_sessions_is_not_told_to_list_them(
        tmp_path: Path) -> None:
    """An app token may forget its sessions but not list the node's (403): the command that
    lists them would be refused to it too."""
    with NodeProcess(tmp_path, token="node-token-for-the-test") as node:
        made = run_cli(node, "tokens", "create", "--sessions", "tg:*", "--json")
        assert made.returncode == 0, made.stderr
        app_token = json.loads(made.stdout)["token"]
        done = run_cli(node, "forget", "tg:alise", token=app_token)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == "Error: there is no session 'tg:alise' on the node", \
        done.stderr


def test_openclaw_export_of_a_mistyped_session_names_the_close_one(
        node: NodeProcess, tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()  # an OpenClaw state folder, with no agent yet
    done = run_cli(node, "openclaw", "export", "tg:alise", "--state-dir", str(tmp_path))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        "Error: there is no session 'tg:alise' nor 'agent:main:tg:alise' on the node; "
        "did you mean 'tg:alice'?"), done.stderr


class _Detailed(Quiet):
    """A node without the session asked for, whose first page of sessions is full
    (``SESSIONS_COMPARED_MAX`` rows) and whose tg:alice is forgotten; the target of each
    list request in ``asked``."""

    asked: list[str] = []

    def do_GET(self) -> None:
        if not self.path.startswith("/v1/sessions?"):
            self.answer(404, {"error": {"code": "not_found", "message": "no such session"}})
            return
        self.asked.append(self.path)
        keys = ["tg:alice", "tg:alicia",
                *(f"web:visitor{index:04}" for index in range(SESSIONS_COMPARED_MAX - 2))]
        query = parse_qs(urlsplit(self.path).query)
        prefix = query.get("prefix", [""])[0]
        self.answer(200, {"sessions": [
            {"index": index, "session_key": key,
             **({"forgotten": key == "tg:alice"} if "detail" in query else {})}
            for index, key in enumerate(keys) if key.startswith(prefix)], "more": False})


def test_the_hint_reads_the_sessions_in_detail_only_for_the_close_ones() -> None:
    """Only a detailed row says a session is forgotten, and a page of them is 4.5 times
    the size of the plain one (a slow link takes longer than SESSIONS_HINT_TIMEOUT_S):
    the page is read plain, and only the close sessions in detail, each by its key."""
    handler = type("Detailed", (_Detailed,), {"asked": []})
    with serving(handler) as url:
        done = run_cli(url, "events", "tg:alise")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == ("Error: there is no session 'tg:alise' on the node; "
                                   "did you mean 'tg:alicia'?"), done.stderr
    queries = [parse_qs(urlsplit(target).query) for target in handler.asked]
    assert [query for query in queries if "detail" not in query] == [
        {"limit": [str(SESSIONS_COMPARED_MAX)]}], handler.asked
    assert sorted(query["prefix"][0] for query in queries if "detail" in query) == [
        "tg:alice", "tg:alicia"], handler.asked
