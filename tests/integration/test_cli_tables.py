"""What the real ``clawsync`` command prints against a real node, on a terminal (a
pseudo-terminal of COLUMNS columns, as a person's) and piped: tables that fit the
terminal with no line ending in spaces, ids and times never broken across lines, free
text (names) wrapped, on 80 columns the tokens and the peer links in a table; plain
lines whose columns line up on the screen with a device name of double-width
characters."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.cells import cell_len

from node.cli.tokens import HEADERS
from node.text import time_text
from tests.support.cluster import wait_until
from tests.support.processes import NodeProcess, child_env, cli_args, run_cli
from tests.support.terminal import ESCAPES, on_a_terminal

pytestmark = pytest.mark.integration

#: A device name of double-width characters: 8 characters, 16 columns of the screen.
CJK_NAME = "家族のタブレット"
#: What ``listed_node``'s tests may only read: its head (with /healthz), tokens, devices.
LISTED_READS = ("/healthz", "/v1/tokens", "/v1/devices")


def on_terminal(node: NodeProcess, *args: str, columns: int,
                notes: list[str] | None = None, dumb: bool = False,
                raw: list[str] | None = None) -> list[str]:
    """Run ``clawsync ARGS`` with its stdout on a pseudo-terminal ``columns`` wide; the
    lines it printed there, escape sequences removed (and those of stderr in ``notes``,
    what it wrote to the terminal in ``raw``). ``dumb``: TERM=dumb, the width given by
    the terminal's size alone (no COLUMNS), as an editor's shell has it."""
    env = child_env({"TERM": "dumb"} if dumb else {"COLUMNS": str(columns)})
    if dumb:
        env.pop("COLUMNS", None)
    shown, err = on_a_terminal(cli_args(node, *args), env, columns)
    if notes is not None:
        notes.extend(err.decode().splitlines())
    if raw is not None:
        raw.append(shown)
    text = ESCAPES.sub("", shown).replace("\r", "")
    return text.splitlines()


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def listed_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node with a session, three tokens (one revoked) and a CJK name for its device.
    One for the module's tests (each pytest worker starts its own): they only read it,
    and its eight processes (the node and seven commands) took five seconds a test. Its
    head, tokens and devices are checked unchanged at the end."""
    with NodeProcess(tmp_path_factory.mktemp("listed")) as node:
        ok(run_cli(node, "append", "s1", "message_received", "content=hello there"))
        for args in (("--sessions", "tg:*", "--name", "notes app for the whole family"),
                     ("--sessions", "tg:alice", "--sessions", "web:*", "--read-only",
                      "--name", "dashboard"),
                     ("--sessions", "*", "--name", "sync-app")):
            issued = json.loads(ok(run_cli(node, "tokens", "create", *args, "--json")))
        ok(run_cli(node, "tokens", "revoke", issued["id"]))
        own = ok(run_cli(node, "device", "--id")).strip()
        ok(run_cli(node, "devices", "add", own, "--name", CJK_NAME))
        before = [node.get(path) for path in LISTED_READS]
        yield node
        # Shared by the module's tests, so none may change it: a test that does would
        # change what the tests after it see.
        assert [node.get(path) for path in LISTED_READS] == before


@pytest.mark.parametrize("columns", [80, 60])
def test_every_listing_fits_a_narrow_terminal_and_cuts_no_id_or_time(
        listed_node: NodeProcess, columns: int) -> None:
    node = listed_node
    tokens = node.get("/v1/tokens")["tokens"]
    devices = node.get("/v1/devices")
    for args in (("tokens",), ("devices",), ("status",), ("sessions",), ("events", "s1")):
        lines = on_terminal(node, *args, columns=columns)
        assert lines, args
        assert [line for line in lines if line != line.rstrip()] == [], (args, lines)
        if args[0] in ("tokens", "status") or (args[0] == "devices" and columns < 63):
            continue  # whole ids (a device's takes 63): the terminal wraps such lines
        assert max(cell_len(line) for line in lines) <= columns, (args, lines)
    # A table, the device id (63 columns) on a line of its own over its row's cells.
    listed = on_terminal(node, "devices", columns=columns)
    assert listed[0] == "device" and listed[1].split() == ["name", "state", "address",
                                                           "since"], listed
    assert listed[2] == devices["device_id"], listed
    # 60 columns are too narrow for the tokens table too: the plain lines, every id and
    # time whole in them.
    if columns == 60:
        listing = "\n".join(on_terminal(node, "tokens", columns=columns))
        for token in tokens:
            assert token["id"] in listing and time_text(token["issued_at"]) in listing, listing


def test_80_columns_hold_the_tokens_table_with_whole_ids(listed_node: NodeProcess) -> None:
    """The table with its two times took 88 columns at the least, and an 80-column
    terminal got the plain lines: the times are to the second in the table, and the
    time issued is left out where even so there is no room for it, with a note."""
    tokens = listed_node.get("/v1/tokens")["tokens"]
    notes: list[str] = []
    lines = on_terminal(listed_node, "tokens", columns=80, notes=notes)
    assert lines[0].split() == [header for header in HEADERS if header != "issued"], lines
    assert max(cell_len(line) for line in lines) <= 80, lines
    assert "…" not in "\n".join(lines), lines
    ids = [line.split()[0] for line in lines[1:] if not line.startswith(" ")]
    assert sorted(ids) == sorted(token["id"] for token in tokens), lines
    (revoked,) = [token for token in tokens if token["revoked_at"]]
    # On a line of its own under "revoked", whole.
    assert time_text(revoked["revoked_at"]) in [line.strip() for line in lines], lines
    assert notes == ["(left out for want of room: issued; piped or with --json, every "
                     "column is there)"], notes


def test_the_tokens_table_wraps_names_not_times(listed_node: NodeProcess) -> None:
    """A table, the long name over lines, each time (to the second) on one line."""
    tokens = listed_node.get("/v1/tokens")["tokens"]
    for columns, wraps in ((110, True), (200, False)):
        lines = on_terminal(listed_node, "tokens", columns=columns)
        assert lines[0].split() == HEADERS, lines
        assert max(cell_len(line) for line in lines) <= columns, lines
        assert [line for line in lines if line != line.rstrip()] == [], lines
        assert (len(lines) > 1 + len(tokens)) is wraps, lines
        table = "\n".join(lines)
        assert ("notes app for the whole family" not in table) is wraps, lines
        for token in tokens:
            assert token["id"] in table and time_text(token["issued_at"]) in table, lines
            if token["revoked_at"]:
                assert time_text(token["revoked_at"]) in table, lines


@pytest.mark.parametrize("columns", [80, 60])
def test_status_keeps_ids_and_device_names_whole(tmp_path: Path, columns: int) -> None:
    """rich cut the peer's address, its node id and its device's name with "…" to fit
    the table to the terminal, and the line "device ID" (70 columns) was broken at the
    terminal's edge: on 80 columns a table of the links whose cells are whole (the name
    wrapped between words, the columns with least to say left out), on 60 the plain
    lines; the device id on the line of its name, or on one of its own."""
    with NodeProcess(tmp_path, name="hub") as hub, \
            NodeProcess(tmp_path, name="laptop", extra_args=["--peer", hub.url]) as laptop:
        hub_device = ok(run_cli(hub, "device", "--id")).strip()
        ok(run_cli(hub, "devices", "add", hub_device, "--name", "home server in the attic"))
        laptop_device = ok(run_cli(laptop, "device", "--id")).strip()
        ok(run_cli(hub, "devices", "add", laptop_device, "--name", "laptop"))
        wait_until(lambda: [peer.get("device_name") for peer in laptop.get("/v1/peers")[
            "peers"] if peer["state"] == "up"] == ["home server in the attic"], 30,
                   "the laptop's link to the hub is up and names the hub's device")
        hub_node = hub.get("/healthz")["node_id"]
        notes: list[str] = []
        lines = on_terminal(laptop, "status", columns=columns, notes=notes)
        text = "\n".join(lines)
        assert "…" not in text, lines
        if columns == 80:
            assert f"device {laptop_device}" in lines, lines
            assert max(cell_len(line) for line in lines) <= 80, lines
            # The address on a line of its own over its row: room for the node's id and
            # the version, which 80 columns left out.
            at = lines.index("peer") + 2
            assert lines[at].split()[:4] == ["dir", "device", "node", "state"], lines
            assert lines[at].split()[-1] == "version", lines
            assert lines[at + 1] == hub.url, lines
            rows = lines[at + 2:]
            assert rows[0].split()[:3] == ["out", "home", hub_node], lines
            start, end = lines[at].index("device"), lines[at].index("node")
            assert " ".join(line[start:end].strip() for line in rows) == \
                "home server in the attic", lines
            # The version on one line (over two, "0.3.0" read as all it said): the
            # bytes, which 80 columns have no room for beside it, left out with a note.
            version = lines[at].index("version")
            (link,) = laptop.get("/v1/peers")["peers"]
            assert rows[0][version:] == f"{link['software']} (schema {link['schema']})", \
                lines
            assert all(len(row) <= version for row in rows[1:]), lines
            assert "bytes" not in text, lines
            assert notes == ["(left out for want of room: bytes in, bytes out; piped or "
                             "with --json, every column is there)"], notes
            # Wide, one line: the address, the device's name, the node's id, the version.
            (wide,) = [line for line in on_terminal(laptop, "status", columns=200)
                       if line.startswith(hub.url)]
            assert wide.split()[:7] == [hub.url, "out", "home", "server", "in", "the",
                                        "attic"], wide
            assert hub_node in wide.split() and wide.endswith(
                f"{link['software']} (schema {link['schema']})"), wide
        else:
            assert lines[lines.index("device") + 1] == laptop_device, lines
            (row,) = [line for line in lines if line.startswith(hub.url)]
            assert row.split()[:4] == [hub.url, "out", "home", "server"], lines
            assert hub_node in row.split(), lines


def test_piped_lines_line_up_with_a_cjk_device_name(listed_node: NodeProcess) -> None:
    """The name takes 16 columns of the screen in 8 characters: the columns after it
    start where the header's do."""
    lines = ok(run_cli(listed_node, "devices")).splitlines()
    assert len(lines) == 2 and CJK_NAME in lines[1], lines
    assert cell_len(lines[0][:lines[0].index("STATE")]) == \
        cell_len(lines[1][:lines[1].index("member")]), lines


@pytest.mark.parametrize("key", ["a[/b]", "s1[link=https://evil.example]x[/link]",
                                 "tg:[bold]alice"])
def test_a_session_key_titles_the_events_table_as_typed(node: NodeProcess, key: str) -> None:
    """rich read the title as markup: "a[/b]" stopped the command with a MarkupError,
    "[link=URL]" put a hyperlink (OSC 8) to URL on the reader's screen."""
    ok(run_cli(node, "append", key, "message_received", "content=[red]hi[/red]"))
    raw: list[str] = []
    lines = on_terminal(node, "events", key, columns=100, raw=raw)
    assert lines[0].strip() == key, lines
    assert "[red]hi[/red]" in lines[-1], lines
    assert "\x1b]8;" not in raw[0], raw
    listed = on_terminal(node, "sessions", columns=100)
    assert listed[-1].split()[1] == key, listed  # index, key, state, messages, activity


def test_a_dumb_terminal_gets_a_table_as_wide_as_it_is(listed_node: NodeProcess) -> None:
    """rich takes a TERM=dumb terminal for 80 columns whatever its size (and COLUMNS):
    on 200 the tokens table left out the time issued, and wrapped the long name."""
    lines = on_terminal(listed_node, "tokens", columns=200, dumb=True)
    assert lines[0].split() == HEADERS, lines
    assert "notes app for the whole family" in "\n".join(lines), lines


def test_the_devices_table_gives_its_times_as_every_listing(listed_node: NodeProcess) -> None:
    """As the tokens table does (``2026-12-06 05:04:02Z``): the table and the plain
    lines showed the node's 2026-12-06T05:04:02.685Z, which --json keeps for programs."""
    (member,) = listed_node.get("/v1/devices")["members"]
    stamp = member["added_at"]
    lines = on_terminal(listed_node, "devices", columns=200)
    assert lines[0].split() == ["device", "name", "state", "address", "since"], lines
    assert lines[1].endswith(f"added by this device, {time_text(stamp)}"), lines
    assert stamp not in "\n".join(lines), lines
    piped = ok(run_cli(listed_node, "devices")).splitlines()
    assert piped[1].endswith(f"added by this device, {time_text(stamp)}"), piped
    assert json.loads(ok(run_cli(listed_node, "devices", "--json")))["members"][0][
        "added_at"] == stamp


#: A session key too long for an 80-column table beside its index (111 characters).
LONG_KEY = "tg:" + "verylongsessionkey" * 6


def test_a_long_session_key_and_the_times_stay_whole(node: NodeProcess) -> None:
    """People copy a key from ``sessions`` into ``events KEY``: on 80 columns the table
    cut it with "…"; ``events`` on 40 cut the time, and its title (the key, centred)
    broke at the table's width. Too narrow for a whole cell, the plain lines."""
    ok(run_cli(node, "append", LONG_KEY, "agent_response", "content=ok", "model=m1"))
    (event,) = [json.loads(line) for line in
                ok(run_cli(node, "events", LONG_KEY, "--json")).splitlines()]
    (session,) = [json.loads(line) for line in
                  ok(run_cli(node, "sessions", "--json")).splitlines()]
    listed = on_terminal(node, "sessions", columns=80)
    assert listed[0].split()[:2] == [str(session["index"]), LONG_KEY], listed
    assert listed == ok(run_cli(node, "sessions")).splitlines(), listed  # the plain lines
    wide = on_terminal(node, "events", LONG_KEY, columns=120)
    assert wide[0] == LONG_KEY, wide  # a line of its own, whole: the terminal wraps it
    assert wide[1].split() == ["position", "time", "kind", "summary"], wide
    assert time_text(event["timestamp"]) in wide[2] and "…" not in "\n".join(wide), wide
    narrow = on_terminal(node, "events", LONG_KEY, columns=40)
    assert narrow == [f"{event['position']}  {time_text(event['timestamp'])}  agent_response  "
                      "ok [m1]"], narrow


def test_a_long_word_in_a_summary_is_broken_not_cut(node: NodeProcess) -> None:
    """A URL wider than the summary column goes on over lines, between characters; the
    position, time and kind beside it stay whole."""
    content = "see https://example.com/" + "a" * 60
    ok(run_cli(node, "append", "s1", "message_received", f"content={content}"))
    lines = on_terminal(node, "events", "s1", columns=80)
    assert lines[0] == "s1", lines
    assert max(cell_len(line) for line in lines) <= 80, lines
    start = lines[1].index("summary")
    assert "".join(line[start:].strip() for line in lines[2:]) == content.replace(" ", ""), \
        lines
    assert "…" not in "\n".join(lines), lines
