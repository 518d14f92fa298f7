"""What the commands do with a broken (or hostile) node's answers that are not what a node
sends: pages whose ``next`` goes back and forth, a ``next`` of 200,000 digits or none
where more follow, answers without a field the command reads or with one of another type,
lists of something else than objects, control characters and lone surrogates that JSON
leaves raw. Each is one
clear error line (exit 1) or escaped output, never a traceback nor a command that runs
forever."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from node.cli.common import QUOTED_CHARS_MAX
from tests.support.processes import (
    CLI_TIMEOUT_S,
    child_env,
    cli_args,
    one_error_line,
    run_cli,
)
from tests.support.stand_in import Quiet, serving

#: What a page's "next" is, by where the page starts ("after"): 5, 6, 5, 6... for ever.
BACK_AND_FORTH = {None: 5, "0": 5, "5": 6, "6": 5}

#: A "next" no node sends: a string of 200,000 digits.
LONG_NEXT = "9" * 200_000

#: A C1 control (CSI: ESC [ in one character), which JSON leaves raw.
CSI = "\x9b2J"

#: Answers without a field the commands read, by method and path.
LACKING: dict[tuple[str, str], Any] = {
    ("GET", "/v1/origins"): {"origins": []},  # no "active"
    ("DELETE", "/v1/origins/o1"): {"event": None},  # no "origin"
    ("GET", "/v1/devices"): {"device_id": "d", "members": []},  # no "removed"
    ("GET", "/v1/node"): {"device_id": "d"},  # no "name"
    ("GET", "/v1/tokens"): {},  # no "tokens"
    ("DELETE", "/v1/sessions/s1"): {"created": True},  # no "forget"
}

#: Answers with a field of another type than the command reads, or a list of other
#: things than objects, by method and path (under /m/typed).
MISTYPED: dict[tuple[str, str], Any] = {
    ("GET", "/v1/devices"): {"device_id": "d", "members": None, "removed": []},
    ("GET", "/v1/origins"): {"origins": "abc", "active": 1},
    ("GET", "/v1/tokens"): {"tokens": [1]},
    ("GET", "/v1/sessions/s1/events"): {"events": "abc", "next": 1, "more": False},
    ("GET", "/v1/sessions"): {"sessions": [[1]], "next": 1, "more": False},
    ("GET", "/v1/node"): {"device_id": "d", "name": 7},
}

#: Answers of writes the node made, without what the command reads of them (under
#: /m/written).
WRITTEN: dict[tuple[str, str], Any] = {
    ("POST", "/v1/devices"): {"device": {"device_id": "d", "name": "phone"}},  # "created"?
    ("DELETE", "/v1/devices/d"): {"device": None, "created": True},
    ("POST", "/v1/tokens"): {"id": "t1", "name": "app"},  # no "token"
}

#: A projection's tool result (compact JSON, as a node holds it) nested deeper than
#: Python's JSON parser goes: 200,000 "[".
DEEP_RESULT = {"role": "tool", "tool_name": "exec", "success": True, "content": "[" * 200_000}

#: A string with a lone surrogate, which a node's JSON may hold ("a\\ud800b").
SURROGATE = "a\ud800b"

#: A device that issued a token, and the tokens listing that names it (under
#: /m/issuers/N, whose devices answer is ``BROKEN_DEVICES[N]``).
ISSUER = "f" * 52
ISSUED = {"tokens": [{"id": "t1", "name": "app", "sessions": ["*"], "read_only": True,
                      "device_id": ISSUER, "issued_at": "2026-12-01T10:00:00.000Z"}]}
#: Answers to GET /v1/devices that are no list of devices, and why the note says so.
BROKEN_DEVICES: list[tuple[Any, str]] = [
    ({"members": "abc"}, "the node's answer has 'abc' as 'members', not a list"),
    ({"members": [1]}, "the node's answer has 1 in 'members', not an object"),
    ({"device_id": 5, "members": []}, "the node's answer has 5 as 'device_id', not a string"),
    ({"members": [{"device_id": ISSUER, "name": 7}]},
     "the node's answer has 7 as 'name', not a string"),
    # Not an object: the client says so (it was said so before, too).
    ([], "the node answered HTTP 200 with a body that is not a JSON object: b'[]'"),
]

#: A device's name with a letter outside ASCII and a C1 control, as a broken node may
#: send it, by method and path (under /m/names).
NAME = f"Zoë{CSI}"
NAMED: dict[tuple[str, str], Any] = {
    ("GET", "/v1/node"): {"device_id": "d", "name": NAME},
    ("GET", "/v1/devices"): {"device_id": "d", "members": [{"device_id": "d", "name": NAME}],
                             "removed": []},
}


def _midway(mode: str, path: str, after: str | None) -> Any:
    """The pages of a node whose second page goes wrong after the first was printed
    (under /m/kind, /m/stuck, /m/forgotten): an event whose kind is no object, a
    "next" that does not move on, a failing page after one of forgotten sessions only."""
    if mode == "kind" and path.endswith("/events"):
        return ({"events": [{"position": 1, "kind": {"type": "x"}}], "next": 1, "more": True}
                if after is None else
                {"events": [{"position": 2, "kind": "abc"}], "next": 2, "more": False})
    if mode == "stuck" and path.endswith("/events"):
        return {"events": [{"position": 1 if after is None else 2, "kind": {"type": "x"}}],
                "next": 1, "more": True}
    if mode == "forgotten" and path == "/v1/sessions":
        return ({"sessions": [{"index": 1, "session_key": "gone", "forgotten": True}],
                 "next": 1, "more": True}
                if after is None else {"sessions": "abc", "next": 2, "more": False})
    return None


class _Broken(Quiet):
    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        after = parse_qs(url.query).get("after", [None])[0]
        mode = url.path.split("/")[2] if url.path.startswith("/m/") else ""
        path = url.path.removeprefix(f"/m/{mode}") if mode else url.path
        midway = _midway(mode, path, after)
        if midway is not None:
            self.answer(200, midway)
        elif mode == "typed" and (self.command, path) in MISTYPED:
            self.answer(200, MISTYPED[(self.command, path)])
        elif mode == "written" and (self.command, path) in WRITTEN:
            self.answer(200, WRITTEN[(self.command, path)])
        elif mode == "issuers" and path.endswith("/v1/tokens"):
            self.answer(200, ISSUED)
        elif mode == "issuers" and path.endswith("/v1/devices"):
            self.answer(200, BROKEN_DEVICES[int(path.split("/")[1])][0])
        elif mode == "names" and (self.command, path) in NAMED:
            self.answer(200, NAMED[(self.command, path)])
        elif (self.command, path) in LACKING:
            self.answer(200, LACKING[(self.command, path)])
        elif mode == "c1":
            self.answer(200, {"events": [{"position": 1, "kind": {"type": "x", "text": CSI}}],
                              "next": 1, "more": False})
        elif mode == "surrogate":  # json.dumps sends it as \\ud800, as a node may
            self.answer(200, {"events": [{"position": 1,
                                          "kind": {"type": "x", "text": SURROGATE}}],
                              "next": 1, "more": False})
        elif mode == "endless" and path.endswith("/events"):
            self.answer(200, {"events": [{"position": 1}], "next": None, "more": True})
        elif mode == "items" and path.endswith("/events"):  # for the export's paging
            self.answer(200, {"events": ["abc"], "next": 1, "more": False})
        elif path.endswith("/events") or path == "/v1/sessions":
            items = "events" if path.endswith("/events") else "sessions"
            following: Any = LONG_NEXT if mode == "long" else (
                "7x" if mode == "word" else BACK_AND_FORTH.get(after, 5))
            self.answer(200, {items: [], "next": following, "more": True})
        elif mode == "deep" and path == "/v1/sessions/s1":
            self.answer(200, {"session_key": "s1", "messages": [DEEP_RESULT]})
        elif path == "/v1/sessions/s1":
            self.answer(200, {"session_key": "s1", "custom_state": {"text": f"a{CSI}"}})
        else:
            self.answer(404, {"error": {"code": "not_found", "message": "no"}})

    do_GET = do_POST = do_DELETE = _answer


@pytest.fixture(scope="module")
def broken() -> Iterator[str]:
    with serving(_Broken) as url:
        yield url


@pytest.mark.parametrize("args", [("events", "s1", "--all"), ("sessions", "--all")])
def test_all_refuses_pages_that_go_back_and_forth(broken: str, args: tuple[str, ...]) -> None:
    """A node whose "next" went 5, 6, 5, 6... with "more": --all followed it forever,
    gathering what each page held without bound."""
    said = one_error_line(run_cli(broken, *args))
    assert said == ("Error: the node's next page starts after 5, not past 6, where its "
                    "page started: following its pages would never end\n"), said


def test_a_long_next_is_quoted_short(broken: str) -> None:
    """The error quotes the node's "next" up to a bound, not its 200,000 digits."""
    said = one_error_line(run_cli(f"{broken}/m/long", "events", "s1", "--all"))
    assert said == (f"Error: the node's next page starts after "
                    f"{repr(LONG_NEXT)[:QUOTED_CHARS_MAX]}..., which is not a position\n")


def export(node: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``clawsync openclaw export s1`` into an empty OpenClaw folder, with OpenClaw's
    per-machine lock folders under ``tmp_path`` (``tests.support.private_locks``)."""
    state = tmp_path / "openclaw"
    (state / "agents").mkdir(parents=True, exist_ok=True)
    python, _, _, *rest = cli_args(node, "openclaw", "export", "s1", "--state-dir", str(state))
    return subprocess.run([python, "-m", "tests.support.private_locks",
                           str(tmp_path / "locks"), *rest],
                          text=True, capture_output=True, env=child_env(),
                          timeout=CLI_TIMEOUT_S, check=False)


def test_an_export_refuses_pages_that_go_back_and_forth(broken: str,
                                                        tmp_path: Path) -> None:
    """The export's own paging followed a "next" that went back and forth forever."""
    said = one_error_line(export(broken, tmp_path))
    assert "starts after 5, not past 6" in said, said


def test_an_export_says_a_next_that_is_no_position(broken: str, tmp_path: Path) -> None:
    """It ended in a ValueError's traceback (``int("7x")``)."""
    said = one_error_line(export(f"{broken}/m/word", tmp_path))
    assert said == "Error: the node's next page starts after '7x', which is not a position\n"


@pytest.mark.parametrize(("args", "field"), [
    (("origins",), "active"),
    (("devices",), "removed"),
    (("device",), "name"),
    (("tokens",), "tokens"),
])
def test_an_answer_without_a_field_read_is_said(broken: str, args: tuple[str, ...],
                                                field: str) -> None:
    """A KeyError's traceback, before."""
    said = one_error_line(run_cli(broken, *args))
    assert said == f"Error: the node's answer has no field '{field}'\n", said


@pytest.mark.parametrize(("args", "said"), [
    (("devices",), "has None as 'members', not a list"),
    (("origins",), "has 'abc' as 'origins', not a list"),
    (("tokens",), "has 1 in 'tokens', not an object"),
    (("events", "s1"), "has 'abc' as 'events', not a list"),
    (("sessions",), "has [1] in 'sessions', not an object"),
    (("device",), "has 7 as 'name', not a string"),
])
def test_a_field_of_another_type_is_said(broken: str, args: tuple[str, ...],
                                         said: str) -> None:
    """A present field of another type than read was a TypeError's or AttributeError's
    traceback (``devices`` with "members": null, ``events`` with "events": "abc"), and
    a list of other things than objects was taken as it came."""
    line = one_error_line(run_cli(f"{broken}/m/typed", *args))
    assert line == f"Error: the node's answer {said}\n", line


@pytest.mark.parametrize(("args", "said"), [
    (("origins", "retire", "o1"),
     "the node accepted the retirement of o1, but its answer is malformed: the node's "
     "answer has no field 'origin'"),
    (("forget", "s1"),
     "the node accepted the forget of s1, but its answer is malformed: the node's answer "
     "has no field 'forget'"),
])
def test_a_write_whose_answer_lacks_a_field_is_said_done(broken: str,
                                                         args: tuple[str, ...],
                                                         said: str) -> None:
    """The write was made (the node answered 200): the error says so, and what its
    answer lacks, instead of reading as a failed write."""
    line = one_error_line(run_cli(broken, *args))
    assert line == f"Error: {said}\n", line


@pytest.mark.parametrize(("args", "said"), [
    (("devices", "add", "d", "--name", "phone"),
     "the node accepted the device d, but its answer is malformed: the node's answer has "
     "no field 'created'"),
    (("devices", "remove", "d"),
     "the node accepted the removal of d, but its answer is malformed: the node's answer "
     "has None as 'device', not an object"),
    (("tokens", "create", "--sessions", "*"),
     "the node issued a token, but its answer is malformed: the node's answer has no "
     "field 'token'"),
])
def test_a_write_whose_answer_is_malformed_is_said_done(broken: str,
                                                        args: tuple[str, ...],
                                                        said: str) -> None:
    """A KeyError's or TypeError's traceback, before, after the write was made."""
    line = one_error_line(run_cli(f"{broken}/m/written", *args))
    assert line == f"Error: {said}\n", line


def test_more_without_a_next_is_refused(broken: str) -> None:
    """A page with "more": true and "next": null was taken as the last one: the list
    stopped short in silence, and the note said "--after None"."""
    for args in (("--all",), ()):
        result = run_cli(f"{broken}/m/endless", "events", "s1", *args)
        assert result.returncode == 1, result.stderr
        # The page holding that "next" was printed: the list is said to be cut short.
        assert result.stderr.splitlines() == [
            CUT_SHORT,
            "Error: the node's next page starts after None, which is not a position"], \
            result.stderr


def test_a_long_next_of_one_page_is_quoted_short(broken: str) -> None:
    """Without --all, the note on the next page quoted the node's "next" whole (200 KB on
    one line)."""
    said = one_error_line(run_cli(f"{broken}/m/long", "events", "s1"))
    assert said == (f"Error: the node's next page starts after "
                    f"{repr(LONG_NEXT)[:QUOTED_CHARS_MAX]}..., which is not a position\n")


def test_an_export_refuses_a_page_of_other_things_than_events(broken: str,
                                                              tmp_path: Path) -> None:
    """The export's paging took a list of strings as events: an AttributeError's
    traceback."""
    said = one_error_line(export(f"{broken}/m/items", tmp_path))
    assert said == "Error: the node's answer has 'abc' in 'events', not an object\n", said


def test_json_escapes_lone_surrogates(broken: str) -> None:
    """A node's "a\\ud800b" ended ``--json`` in a UnicodeEncodeError's traceback:
    escaped, the JSON is valid and holds the same string."""
    result = run_cli(f"{broken}/m/surrogate", "events", "s1", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "\\ud800" in result.stdout, result.stdout
    assert json.loads(result.stdout)["kind"]["text"] == "a\ud800b"


def test_json_escapes_c1_controls(broken: str) -> None:
    """``ensure_ascii=False`` left U+009B (CSI, which a terminal obeys as ESC [) raw on
    stdout; escaped, the JSON is still valid and holds the same text."""
    result = run_cli(broken, "projection", "s1", "--json")
    assert result.returncode == 0, result.stderr
    assert "\x9b" not in result.stdout and "\\u009b2J" in result.stdout, result.stdout
    assert json.loads(result.stdout)["custom_state"]["text"] == f"a{CSI}"
    lines = run_cli(f"{broken}/m/c1", "events", "s1", "--json")
    assert lines.returncode == 0, lines.stderr
    assert "\x9b" not in lines.stdout and "\\u009b2J" in lines.stdout, lines.stdout
    assert json.loads(lines.stdout)["kind"]["text"] == CSI


@pytest.mark.parametrize("args", [("device", "--json"), ("devices", "--json")])
def test_json_shows_names_as_typed_and_escapes_c1_controls(broken: str,
                                                           args: tuple[str, ...]) -> None:
    """``device --json`` and ``devices --json`` (as ``status``, ``tokens``, ``origins``
    and ``forget``) printed "Zo\\u00eb", where ``events --json`` prints "Zoë"; and a
    C1 control is escaped by each, as ``events`` escapes it. Indented by 2, as before."""
    result = run_cli(f"{broken}/m/names", *args)
    assert result.returncode == 0, result.stderr
    assert '"Zoë\\u009b2J"' in result.stdout, result.stdout
    assert "\x9b" not in result.stdout and "\\u00eb" not in result.stdout, result.stdout
    assert result.stdout.startswith('{\n  "device_id": "d"'), result.stdout
    answer = json.loads(result.stdout)
    assert NAME in (answer.get("name"), answer.get("members", [{}])[0].get("name"))


@pytest.mark.parametrize("case", range(len(BROKEN_DEVICES)))
def test_tokens_says_a_devices_answer_it_cannot_read(broken: str, case: int) -> None:
    """The devices answer ``tokens`` asks for its issuers' names was read as the
    listing printed, after the node's failures to answer were dealt with: a field of
    another type ended the listing with an error about the devices, not the tokens
    asked for. It is said, as an unreachable node's is, and the tokens are listed."""
    result = run_cli(f"{broken}/m/issuers/{case}", "tokens")
    assert result.returncode == 0, result.stderr
    said = BROKEN_DEVICES[case][1]
    assert result.stderr == ("the issuing devices by id alone, without their names: "
                             f"{said}\n"), result.stderr
    assert result.stdout.splitlines()[1].split()[:5] == [
        "t1", "app", "*", "read-only", ISSUER], result.stdout


#: What a command says when a page fails after the lines of others were printed.
CUT_SHORT = "the events above are cut short by the error below"


def test_an_event_of_a_later_page_that_is_no_event_cuts_the_list_short(broken: str) -> None:
    """An event whose kind is no object, on the second page, failed after the first
    page was printed without a word that the lines above are not all: they are said
    cut short, and the rest to follow from where the failing page started."""
    result = run_cli(f"{broken}/m/kind", "events", "s1", "--all")
    assert result.returncode == 1, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["1"], \
        result.stdout
    assert result.stderr.splitlines() == [
        f"{CUT_SHORT}: the rest follow --after 1",
        "Error: the node's answer has 'abc' as 'kind', not an object"], result.stderr


@pytest.mark.parametrize("args", [("--all",), ("--after", "1")], ids=["all", "one-page"])
def test_a_next_that_does_not_move_on_after_printed_pages_cuts_the_list_short(
        broken: str, args: tuple[str, ...]) -> None:
    """A "next" refused after the page holding it was printed (with --all, after
    others too) ended the list without a word that it is not all: it is said cut short,
    without an --after, as where the rest follow is not known."""
    result = run_cli(f"{broken}/m/stuck", "events", "s1", *args)
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip(), result.stdout
    said = result.stderr.splitlines()
    assert said[0] == CUT_SHORT, said
    assert said[1].startswith("Error: the node's next page starts after 1, not past "), said
    assert len(said) == 2, said


def test_a_page_of_forgotten_sessions_alone_is_not_said_cut_short(broken: str) -> None:
    """A page whose sessions were all forgotten prints no line (plain ``sessions`` leaves
    them out): a failure after it said the sessions "above" were cut short, above
    nothing."""
    said = one_error_line(run_cli(f"{broken}/m/forgotten", "sessions", "--all"))
    assert said == "Error: the node's answer has 'abc' as 'sessions', not a list\n", said


def test_a_result_nested_deeper_than_json_is_read_shows_as_it_is(broken: str) -> None:
    """A tool's result in a projection is shown as its text when it is JSON of a text;
    200,000 "[" (no JSON a node makes) ended in a RecursionError's traceback: shown as
    it is, cut short as every line is."""
    result = run_cli(f"{broken}/m/deep", "projection", "s1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stdout.splitlines() if "tool exec ok: [[[" in line]
    assert len(line) < 1000, len(line)
