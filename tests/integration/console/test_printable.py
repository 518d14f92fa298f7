"""The console shows what a session holds and what a node says as ``clawsync`` does
(``node.text.printable``): a bidi control or a control character in a session's key, its
transcript or an error the node sends is shown as an escape, not obeyed, so it cannot
reorder or hide the text around it; ordinary text (accents, CJK, emoji with joiners) and
a message's lines are kept. In a real headless Chromium against a real node process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from node.text import printable
from tests.support.cluster import append, message
from tests.support.console import expect, open_console
from tests.support.processes import NodeProcess

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Route

#: Right-to-left override and a left-to-right isolate (a key may not hold a C0 or C1
#: control: the node refuses it), around ordinary text that stays as it is.
KEY = "chat:\u202eevil\u2066 ü 会话 \U0001f469\u200d\U0001f4bb"
#: Content may hold anything: an override, an escape sequence, a bell, and lines.
CONTENT = "pay\u202e 4711 \x1b[2Jnow\x07\nsecond line ü 你好"
TOOL = "wea\u202ether"
#: What would reorder or hide the text around it, were it shown as it is.
RAW = ("\u202e", "\u2066", "\x1b", "\x07", "\x85")


def no_raw_controls(locator: Locator) -> str:
    """The locator's text, once it holds none of ``RAW``."""
    text = locator.text_content() or ""
    assert not any(raw in text for raw in RAW), repr(text)
    return text


def test_a_session_s_key_and_transcript_show_their_controls_escaped(
        node: NodeProcess, page: Page) -> None:
    append(node, KEY, [
        message(CONTENT),
        {"agent_id": "main", "kind": {"type": "agent_response", "content": "ok",
                                      "model": "m\u202e1"}},
        {"agent_id": "main", "kind": {"type": "tool_called", "tool_name": TOOL,
                                      "params": {"city": "Os\u202elo"}}},
        {"agent_id": "main", "kind": {"type": "tool_result", "tool_name": TOOL,
                                      "result": {"said": "\u2066fine\x85"}, "success": True}},
    ])
    open_console(page, node, "#/sessions")
    row = page.locator("[data-testid=session-row]").filter(has_text="chat:")
    expect(row).to_have_attribute("data-key", KEY)  # the key itself, for the link
    expect(row.locator(".key")).to_have_text(printable(KEY))
    assert "\\u202eevil\\u2066 ü 会话 \U0001f469\u200d\U0001f4bb" in printable(KEY)
    no_raw_controls(row)

    page.goto(f"{node.url}/#/session/{quote(KEY, safe='')}")
    expect(page.locator("main h1")).to_have_text(printable(KEY))
    transcript = page.get_by_test_id("transcript")
    expect(transcript.get_by_test_id("message")).to_have_count(3)
    body = transcript.get_by_test_id("message").first.locator(".body")
    # Each control escaped, the line break and the rest kept.
    expect(body).to_have_text(
        "pay\\u202e 4711 \\x1b[2Jnow\\x07\nsecond line ü 你好", use_inner_text=True)
    expect(transcript.get_by_test_id("message").nth(1).locator(".meta")) \
        .to_contain_text(" · outbound · m\\u202e1")
    call = transcript.get_by_test_id("tool-call")
    expect(call.locator("strong")).to_have_text("wea\\u202ether")
    expect(call.locator(".params")).to_contain_text('"Os\\u202elo"')
    expect(call.get_by_test_id("tool-result")).to_contain_text('"\\u2066fine\\x85"')
    no_raw_controls(page.locator("main"))


#: A session's state as a later node might word it, with an override and an escape
#: sequence in it (this version's are "active" and "ended").
STATE = "act\u202eive \x1b[2J"


def test_a_session_s_state_shows_its_controls_escaped(node: NodeProcess, page: Page) -> None:
    append(node, "chat", [message("hello")])

    def later(route: Route) -> None:
        answer = route.fetch()
        listed = answer.json()
        for session in listed["sessions"]:
            session["state"] = STATE
        route.fulfill(response=answer, json=listed)

    page.route("**/v1/sessions?*", later)
    open_console(page, node, "#/sessions")
    state = page.locator('[data-testid=session-row][data-key="chat"]') \
        .get_by_test_id("session-state")
    expect(state).to_have_text(printable(STATE))
    assert printable(STATE) == "act\\u202eive \\x1b[2J"
    no_raw_controls(state)


#: What the node says when it refuses: its words may quote what a peer or a client
#: sent, controls and all.
REFUSAL = "not now\u202e (\x1b[2J)"


@pytest.mark.parametrize(("route", "asked", "said"), [
    ("#/sessions", "**/v1/sessions?*", "Cannot read sessions: "),
    ("#/session/chat", "**/v1/sessions/chat", "Cannot read the session: "),
])
def test_a_node_s_error_words_show_their_controls_escaped(
        node: NodeProcess, page: Page, route: str, asked: str, said: str) -> None:
    append(node, "chat", [message("hello")])

    def refuse(request: Route) -> None:
        request.fulfill(status=503, json={"error": {"code": "unavailable",
                                                    "message": REFUSAL}})

    page.route(asked, refuse)
    open_console(page, node, route)
    error = page.locator("main .error")
    expect(error).to_have_text(said + printable(REFUSAL))
    assert printable(REFUSAL) == "not now\\u202e (\\x1b[2J)"
    no_raw_controls(error)


@pytest.mark.parametrize(("status", "shown_in", "said"), [
    (403, "[data-testid=token-error]", "The node refused this token here: "),
    (503, "main", "Cannot reach the node ("),
])
def test_a_node_s_refusal_of_the_console_shows_its_controls_escaped(
        node: NodeProcess, page: Page, status: int, shown_in: str, said: str) -> None:
    page.route("**/v1/node", lambda request: request.fulfill(
        status=status, json={"error": {"code": "refused", "message": REFUSAL}}))
    page.goto(f"{node.url}/#/devices")
    shown = page.locator(shown_in)
    expect(shown).to_contain_text(said + printable(REFUSAL))
    no_raw_controls(shown)


#: A peer link's state as a later node might word it, with an override and an escape
#: sequence in it.
PEER_STATE = "ref\u202eused\x1b[2J"


def peer_link(url: str, state: str, retry_in_s: float | None) -> dict[str, Any]:
    """One link of ``GET /v1/peers``, not up, to the peer node ``peer-1``."""
    return {"link": url, "url": url, "direction": "out", "node_id": "peer-1",
            "device_id": None, "device_name": None, "refused": None, "failure": None,
            "state": state, "retry_in_s": retry_in_s, "last_contact_s_ago": None,
            "events_we_lack": None, "events_peer_lacks": None, "bytes_in": 0,
            "bytes_out": 0, "faults": 0}


def route_peers(page: Page, links: list[dict[str, Any]]) -> None:
    """Answers the console's ``GET /v1/peers`` with the node's own answer, its peers
    ``links``."""
    def peers(route: Route) -> None:
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), "peers": links})

    page.route("**/v1/peers", peers)


def test_a_peer_s_state_shows_its_controls_escaped(node: NodeProcess, page: Page) -> None:
    # Two links to the one peer: the row lists both, each with its state.
    route_peers(page, [peer_link("http://127.0.0.1:1/", PEER_STATE, 0.2),
                       peer_link("http://127.0.0.1:2/", PEER_STATE, None)])
    open_console(page, node, "#/devices")
    row = page.get_by_test_id("peer-row")
    expect(row.get_by_test_id("peer-state")).to_have_text(
        f"{printable(PEER_STATE)} (retry in 1s)")
    assert printable(PEER_STATE) == "ref\\u202eused\\x1b[2J"
    expect(row.locator("td").first).to_contain_text(
        f"http://127.0.0.1:1/ ({printable(PEER_STATE)}), "
        f"http://127.0.0.1:2/ ({printable(PEER_STATE)})")
    no_raw_controls(row)


@pytest.mark.parametrize(("retry_in_s", "shown"), [
    (0, "refused"),  # due now: the state alone, never "retry in 0s"
    (0.2, "refused (retry in 1s)"),  # rounded up
    (None, "refused"),
])
def test_a_peer_s_next_dial_reads_as_clawsync_status_says_it(
        node: NodeProcess, page: Page, retry_in_s: float | None, shown: str) -> None:
    route_peers(page, [peer_link("http://127.0.0.1:1/", "refused", retry_in_s)])
    open_console(page, node, "#/devices")
    expect(page.get_by_test_id("peer-row").get_by_test_id("peer-state")).to_have_text(shown)
