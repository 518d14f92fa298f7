"""The console's sessions, in a real headless Chromium against real node processes: a
session written on node B that shows and updates live in node A's console, a forget that
takes content off an open page, sessions a browser cannot ask for, and a live stream that
is lost, starts at the head the page loaded, or finds the node's log gone back. Each view
is saved as a picture: in the test's temporary folder, or with ``--screenshots DIR`` in
DIR (``tests/screenshots`` holds the README's).

Nothing sleeps: Playwright's ``expect`` waits for each condition, with a generous
deadline, and fails with what the page last showed.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from crdt.membership import DEVICES_SESSION
from tests.support.cluster import (
    append,
    head,
    message,
    request,
    session_path,
)
from tests.support.console import expect, open_console
from tests.support.processes import NodeProcess

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

#: A key that needs escaping in the URL (``#/session/<encodeURIComponent(key)>``).
KEY = "telegram:chat/42 ü"

def test_a_session_written_on_b_appears_and_updates_live_on_a(
        pair: tuple[NodeProcess, NodeProcess], page: Page,
        screenshot: Callable[[str], None]) -> None:
    a, b = pair
    open_console(page, a, "#/sessions")
    append(b, KEY, [message("hello from the phone")])
    row = page.locator("[data-testid=session-row]").filter(has_text="telegram:chat/42")
    expect(row).to_have_attribute("data-key", KEY)
    append(b, "cron:nightly", [message("unrelated")])
    expect(page.locator('[data-testid=session-row][data-key="cron:nightly"]')).to_be_visible()
    # The cluster's own session (B's and A's device key records) is not the user's: it
    # is not listed, yet its page still shows it.
    expect(page.get_by_test_id("session-row")).to_have_count(2)
    expect(page.locator(f'[data-testid=session-row][data-key="{DEVICES_SESSION}"]')) \
        .to_have_count(0)
    screenshot("sessions")

    page.get_by_test_id("session-filter").fill("telegram")
    expect(page.get_by_test_id("session-row")).to_have_count(1)
    row.click()
    expect(page).to_have_url(re.compile(re.escape("#/session/" + quote(KEY, safe=""))))
    transcript = page.get_by_test_id("transcript")
    expect(transcript.get_by_test_id("message")).to_have_count(1)
    expect(page.locator(".summary")).to_contain_text(" · 1 message received · 1 event · ")
    expect(page.get_by_test_id("automerge-url")).to_contain_text("automerge:")

    # Marks this document: a reload would drop the mark.
    page.evaluate("window.stillTheSamePage = true")
    append(b, KEY, [
        {"agent_id": "main", "kind": {"type": "agent_response", "content": "on it",
                                      "model": "m"}},
        {"agent_id": "main", "kind": {"type": "tool_called", "tool_name": "weather",
                                      "params": {"city": "Oslo"}}},
        {"agent_id": "main", "kind": {"type": "tool_result", "tool_name": "weather",
                                      "result": {"celsius": -3}, "success": True}},
        {"agent_id": "main", "kind": {"type": "tool_called", "tool_name": "search",
                                      "params": {"q": "x"}}},
        {"agent_id": "main", "kind": {"type": "tool_result", "tool_name": "search",
                                      "result": "found", "success": True}},
        message("and one more thing"),
    ])
    last = transcript.get_by_test_id("message").filter(has_text="and one more thing")
    expect(last).to_have_attribute("data-direction", "inbound")
    expect(transcript.get_by_test_id("message").filter(has_text="on it")) \
        .to_have_attribute("data-direction", "outbound")
    call = transcript.get_by_test_id("tool-call").filter(has_text="weather")
    expect(call.get_by_test_id("tool-result")).to_contain_text("-3")
    # A text result (an OpenClaw result's text blocks) reads as its text, not in quotes.
    search = transcript.get_by_test_id("tool-call").filter(has_text="search")
    expect(search.get_by_test_id("tool-result").locator("pre")).to_have_text("found")
    assert page.evaluate("window.stillTheSamePage") is True
    screenshot("session")


def test_a_lost_event_stream_shows_and_recovers_by_itself(node: NodeProcess,
                                                          page: Page) -> None:
    open_console(page, node, "#/sessions")
    node.stop()
    expect(page.get_by_test_id("live-status")).to_have_text("reconnecting…")
    node.start()
    expect(page.get_by_test_id("live-status")).to_have_text("live")
    append(node, "after-the-restart", [message("still watching")])
    expect(page.locator('[data-testid=session-row][data-key="after-the-restart"]')) \
        .to_be_visible()


def test_a_forget_on_another_node_takes_the_content_off_an_open_session(
        pair: tuple[NodeProcess, NodeProcess], page: Page) -> None:
    a, b = pair
    said = append(b, KEY, [message("my pin is 4711"), message("see you")])
    open_console(page, a, "#/session/" + quote(KEY, safe=""))
    transcript = page.get_by_test_id("transcript")
    expect(transcript.get_by_test_id("message")).to_have_count(2)
    old_url = page.get_by_test_id("automerge-url").text_content()
    page.evaluate("window.stillTheSamePage = true")
    request(b, "POST", session_path(KEY) + "/forget", {"events": [said[0]["id"]]})
    # The page, open all along, drops what was forgotten and names the new document.
    expect(transcript.get_by_test_id("message")).to_have_count(1)
    expect(transcript).not_to_contain_text("4711")
    expect(transcript).to_contain_text("see you")
    expect(page.get_by_test_id("automerge-url")).not_to_have_text(old_url or "")
    assert page.evaluate("window.stillTheSamePage") is True
    request(b, "DELETE", session_path(KEY))
    expect(transcript.get_by_test_id("message")).to_have_count(0)
    expect(transcript).not_to_contain_text("see you")


def test_a_session_forgotten_whole_says_so_not_active(node: NodeProcess, page: Page) -> None:
    """Its header is that of no event ("active", no activity): the page says what the
    list and ``clawsync projection`` say, and no time for an activity there is none of."""
    append(node, "gone", [message("hello")])
    request(node, "DELETE", session_path("gone"))
    open_console(page, node, "#/session/gone")
    expect(page.locator(".summary")).to_have_text(
        "forgotten · unknown · 0 messages received · 0 events · last activity \u2013")


def test_a_session_not_on_the_node_says_so_in_place_of_its_automerge_url(
        node: NodeProcess, page: Page) -> None:
    """No empty URL with a Copy button beside it: the line says there is none here,
    until the session's first event brings it."""
    open_console(page, node, "#/session/later")
    expect(page.locator(".summary")).to_contain_text("Not on this node (yet)")
    expect(page.get_by_test_id("automerge-none")).to_have_text(
        "No Automerge URL: the session is not on this node.")
    expect(page.get_by_test_id("automerge-url")).to_have_count(0)
    expect(page.get_by_role("button", name="Copy")).to_have_count(0)
    append(node, "later", [message("here now")])
    expect(page.get_by_test_id("automerge-url")).to_contain_text("automerge:")
    expect(page.get_by_test_id("automerge-none")).to_have_count(0)


def test_the_cluster_sessions_are_not_listed_but_open_by_key(node: NodeProcess,
                                                              page: Page) -> None:
    append(node, "chat", [message("hello")])
    open_console(page, node, "#/sessions")
    expect(page.locator('[data-testid=session-row][data-key="chat"]')).to_be_visible()
    expect(page.get_by_test_id("session-row")).to_have_count(1)
    page.goto(f"{node.url}/#/session/{quote(DEVICES_SESSION, safe='')}")
    expect(page.locator(".summary")).to_contain_text("events")
    expect(page.get_by_test_id("automerge-url")).to_contain_text("automerge:")


def test_the_node_shows_every_session_listed_and_how_many_were_forgotten(
        node: NodeProcess, page: Page) -> None:
    for key in ("kept", "gone"):
        append(node, key, [message("hello")])
    request(node, "DELETE", session_path("gone"))
    open_console(page, node)
    expect(page.get_by_test_id("node-sessions")).to_have_text("2 (1 forgotten)")


@pytest.mark.parametrize("name", [".", ".."])
def test_a_session_named_dot_or_dot_dot_is_named_not_asked_for(node: NodeProcess, page: Page,
                                                               name: str) -> None:
    """A browser folds ``/v1/sessions/..`` (escaped or not) into ``/v1/``: the page said
    the session was not on the node and, at its next event, asked again without pause."""
    append(node, name, [message("first")])
    asked: list[str] = []
    page.on("request", lambda sent: asked.append(sent.url))
    open_console(page, node, "#/session/" + "%2E" * len(name))
    expect(page.locator(".summary")).to_contain_text(
        f'A browser cannot ask for a session named "{name}"')
    assert not any("/v1/sessions" in url for url in asked), asked
    before = len(asked)
    append(node, name, [message("second")])
    # What the page does with the event is asked in vain: none of it may be a request.
    # It would be hundreds a second, so a short look is enough to see them.
    page.wait_for_timeout(1500)
    assert asked[before:] == []
    page.goto(f"{node.url}/#/session/")  # no key at all: the list to pick one from
    expect(page.get_by_test_id("session-filter")).to_be_visible()
    assert page.evaluate("location.hash") == "#/sessions"


def test_the_live_stream_starts_at_the_head_the_console_loaded(node: NodeProcess,
                                                                page: Page) -> None:
    """On a node with a long log, the console's stream starts at the head it read when
    it loaded (not at the log's start), and an event stored between that load and the
    stream's start still shows."""
    for start in range(0, 2000, 500):
        append(node, "bulk", [message(f"old {n}") for n in range(start, start + 500)])
    append(node, "chat", [message("before the console")])
    loaded_head = head(node)
    held: list[Route] = []
    asked: list[str] = []
    page.on("request", lambda sent: asked.append(sent.url) if "/v1/events" in sent.url
            else None)
    page.route("**/v1/events?*", lambda route: held.append(route))
    page.goto(f"{node.url}/#/session/chat")
    transcript = page.get_by_test_id("transcript")
    expect(transcript.get_by_test_id("message")).to_have_count(1)
    expect(page.get_by_test_id("live-status")).not_to_have_text("live")
    assert len(held) == 1
    assert asked == [f"{node.url}/v1/events?after={loaded_head}"]

    # Stored after the page read the session, before its stream reached the node.
    append(node, "chat", [message("while the stream connects")])
    held[0].continue_()
    expect(page.get_by_test_id("live-status")).to_have_text("live")
    expect(transcript.get_by_test_id("message")).to_have_count(2)
    expect(transcript).to_contain_text("while the stream connects")
    assert asked == [f"{node.url}/v1/events?after={loaded_head}"]  # no second stream


def test_a_node_restored_from_an_older_backup_is_read_again(node: NodeProcess,
                                                            page: Page) -> None:
    """The node's log goes back under an open console (restored from a backup): its
    stream's position is then past the node's head, which the node refuses. The console
    reads everything again and goes on live, rather than retrying that position."""
    append(node, "kept", [message("in the backup")])
    node.stop()
    backup = node.data_dir.with_name("backup")
    shutil.copytree(node.data_dir, backup)
    node.start()
    append(node, "lost", [message(f"after the backup {n}") for n in range(5)])
    open_console(page, node, "#/sessions")
    expect(page.locator('[data-testid=session-row][data-key="lost"]')).to_be_visible()

    node.stop()
    shutil.rmtree(node.data_dir)
    backup.rename(node.data_dir)
    node.start()
    expect(page.get_by_test_id("live-status")).to_have_text("live")
    expect(page.locator('[data-testid=session-row][data-key="lost"]')).to_have_count(0)
    append(node, "after-the-restore", [message("seen live")])
    expect(page.locator('[data-testid=session-row][data-key="after-the-restore"]')) \
        .to_be_visible()
