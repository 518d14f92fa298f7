"""What a hostile (or broken) node says in its SUCCESSFUL answers reaches the terminal
escaped: names, ids, versions, keys and times are printed on the commands' own lines,
and positions and counts that are no numbers in an error line on stderr, where an escape
sequence would retitle or clear the reader's terminal, and a newline forge a line of the
command's own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.processes import run_cli
from tests.support.stand_in import Quiet, serving

#: A terminal title and a bell, a line of its own, a screen cleared.
EVIL = "x\x1b]0;PWNED\x07\nforged\x1b[2J"
#: How ``node.text.printable`` shows it.
SHOWN = "x\\x1b]0;PWNED\\x07\\x0aforged\\x1b[2J"

#: The answers of the node, by method and path: 200 JSON, with ``EVIL`` in every field
#: a command echoes on a line of its own.
ANSWERS: dict[tuple[str, str], Any] = {
    ("GET", "/v1/node"): {"device_id": f"dev{EVIL}", "name": f"name{EVIL}",
                          "node_id": f"node{EVIL}", "software": f"0.9{EVIL}"},
    ("GET", "/healthz"): {"status": "ok", "node_id": f"node{EVIL}", "head": 3,
                          "software": f"0.9{EVIL}"},
    ("GET", "/v1/peers"): {"peers": [], "device": {"device_id": f"dev{EVIL}",
                                                   "removed_text": f"removed{EVIL}"}},
    ("GET", "/v1/tokens"): {"tokens": [{"id": "abc", "name": f"app{EVIL}",
                                        "state": f"expired{EVIL}",
                                        "revoked_at": f"2026{EVIL}"}]},
    ("DELETE", "/v1/tokens/abc"): {"id": f"abc{EVIL}", "name": f"app{EVIL}"},
    ("POST", "/v1/tokens"): {"token": f"secret{EVIL}", "id": f"abc{EVIL}",
                             "name": f"app{EVIL}"},
    ("DELETE", "/v1/origins/o1"): {"origin": {"origin": f"o1{EVIL}", "final_seq": 3,
                                              "state": f"retired{EVIL}"}, "event": {}},
    ("GET", "/v1/sessions/s1"): {"session_key": "s1", "automerge_url": f"automerge:{EVIL}"},
    ("DELETE", "/v1/sessions/s1"): {"session_key": "s1", "created": True,
                                    "forget": {"id": f"rec{EVIL}"}},
    # Pages that say there is more after a "next" of the node's that is no position.
    ("GET", "/v1/sessions/s1/events"): {"events": [], "next": f"7{EVIL}", "more": True},
    ("GET", "/v1/sessions"): {"sessions": [], "next": f"7{EVIL}", "more": True},
    ("GET", "/v1/origins"): {"origins": [], "active": f"2{EVIL}"},
    ("POST", "/v1/sessions/s1/events"): {"created": 1, "events": [
        {"position": 1, "id": f"id{EVIL}", "session_key": f"s1{EVIL}", "created": True,
         "kind": {"type": f"message_received{EVIL}"}, "forgotten_by": f"f{EVIL}"}]},
}


class _Hostile(Quiet):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        found = ANSWERS.get((self.command, self.path.split("?")[0]))
        if found is None:
            self.answer(404, {"error": {"code": "not_found", "message": "no"}})
        else:
            self.answer(200, found)

    do_GET = do_POST = do_DELETE = _answer


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    with serving(_Hostile) as url:
        yield url


@pytest.mark.parametrize(("args", "lines"), [
    (("device",), 2),
    (("device", "--id"), 1),
    (("status",), 3),  # its headline, this device, its removal
    (("tokens", "revoke", "abc"), 1),
    (("tokens", "create", "--sessions", "s1"), 1),
    (("origins", "retire", "o1"), 1),
    (("projection", "s1", "--url"), 1),
    (("append", "s1", "message_received", "content=hi"), 1),
    (("forget", "s1"), 1),
])
def test_a_nodes_answers_reach_the_terminal_escaped(hostile: str, args: tuple[str, ...],
                                                      lines: int) -> None:
    result = run_cli(hostile, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    for said in (result.stdout, result.stderr):
        assert not any(char in said for char in "\x1b\x07"), (args, said)
    assert result.stdout.count("\n") == lines, (args, result.stdout)  # its own lines only
    assert SHOWN in result.stdout + result.stderr, (args, result.stdout, result.stderr)


@pytest.mark.parametrize("args", [("events", "s1"), ("sessions",), ("origins",)])
def test_a_nodes_words_where_a_number_goes_are_refused_escaped(
        hostile: str, args: tuple[str, ...]) -> None:
    """A node's "next" or count that is no number (which the notes around a command's
    output, more pages, counts, would quote) is refused on one error line, escaped as
    the output lines are."""
    result = run_cli(hostile, *args)
    assert result.returncode == 1, (args, result.stdout, result.stderr)
    assert not any(char in result.stderr for char in "\x1b\x07"), (args, result.stderr)
    assert result.stderr.count("\n") == 1, (args, result.stderr)  # no forged line
    assert result.stderr.startswith("Error: "), (args, result.stderr)
    assert "PWNED\\x07" in result.stderr, (args, result.stderr)  # quoted (repr)


@pytest.mark.parametrize("args", [("events", "s1", "--all"), ("sessions", "--all")])
def test_a_next_page_after_no_position_is_said_not_a_traceback(
        hostile: str, args: tuple[str, ...]) -> None:
    """--all follows the pages from the node's "next": one that is no position ended the
    command in a ValueError's traceback."""
    result = run_cli(hostile, *args)
    assert result.returncode == 1, (args, result.stdout, result.stderr)
    said = result.stderr
    assert said.startswith("Error: the node's next page starts after '7x\\x1b]0;"), said
    assert said.endswith("forged\\x1b[2J', which is not a position\n"), said
    assert said.count("\n") == 1, said  # one line, escaped
    assert not any(char in said for char in "\x1b\x07"), said
