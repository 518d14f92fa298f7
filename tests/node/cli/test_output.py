"""How the CLI prints an event (``node.cli.output.event_row``)."""

from __future__ import annotations

from typing import Any

import pytest
from rich.cells import cell_len

from crdt.device import device_id
from node.cli.devices import device_rows
from node.cli.output import event_row, print_lines, print_rows, prints_table
from node.cli.tokens import (
    HEADERS,
    OPTIONAL,
    PATTERNS,
    WRAPPED,
    issuer_names,
    token_rows,
)


def test_only_a_newer_versions_kind_is_marked_unknown() -> None:
    newer = {"position": 3, "timestamp": "2026-12-01T10:00:00.000Z", "known_kind": False,
             "kind": {"type": "reaction_added", "emoji": "+1"}}
    assert event_row(newer)[2] == "reaction_added (unknown kind)"
    # A node before 0.3 flags its own records so; they are known here.
    record = {**newer, "kind": {"type": "forget", "events": None, "reason": "user"}}
    assert event_row(record)[2] == "forget"


#: A terminal title, a bell, a line of its own: what a hostile node may put in a field.
EVIL = "\x1b]0;PWNED\x07\n"


@pytest.mark.parametrize("forgotten", [False, True])
def test_every_cell_of_an_event_is_printable(forgotten: bool) -> None:
    """``tail`` prints ``event_row``'s cells on a line of its own, not through a table
    (which escapes its cells): a node's session key, kind or time must be escaped there."""
    event = {"position": f"3{EVIL}", "timestamp": f"2026{EVIL}", "session_key": f"s1{EVIL}",
             "kind": {"type": f"message_received{EVIL}", "content": f"hi{EVIL}"},
             "forgotten_by": f"{EVIL}abc" if forgotten else None}
    row = event_row(event, with_session=True)
    assert len(row) == 5
    assert not any(char in cell for cell in row for char in "\x1b\x07\n"), row
    assert row[2] == "s1\\x1b]0;PWNED\\x07\\x0a", row


def test_piped_tables_of_numbers_name_their_columns(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [["http://b:7878", "up", "0", "12"], ["http://c:7878", "backoff", "3", "0"]]
    print_rows(rows, ["peer", "state", "we lack", "peer lacks"], headed=True)
    print_rows(rows[:1], ["peer", "state", "we lack", "peer lacks"])
    assert capsys.readouterr().out.splitlines() == [
        "PEER           STATE    WE LACK  PEER LACKS",
        "http://b:7878  up       0        12",
        "http://c:7878  backoff  3        0",
        "http://b:7878  up  0  12",
    ]


@pytest.mark.parametrize("terminal", [False, True])
def test_control_characters_in_content_are_shown_not_obeyed(
        terminal: bool, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Content comes from whoever can write to a session: an escape sequence in it would
    retitle, clear or rewrite the terminal of whoever lists the events."""
    monkeypatch.setattr("node.cli.output.is_terminal", lambda: terminal)
    # Room for the escapes in the table's summary: the runner's COLUMNS (20 to 60) cut it.
    monkeypatch.setenv("COLUMNS", "120")
    hostile = "T\x1b]0;PWNED\x07\x1b[2J\x9b31m"
    event = {"position": 1, "timestamp": "2026-12-01T10:00:00.000Z",
             "kind": {"type": "message_received", "content": hostile}}
    print_rows([event_row(event)], ["position", "time", "kind", "summary"])
    print_lines([("reason", hostile)])
    out = capsys.readouterr().out
    assert not any(ch in out for ch in "\x1b\x07\x9b"), repr(out)
    assert "reason  T\\x1b]0;PWNED\\x07\\x1b[2J\\x9b31m" in out
    assert "T\\x1b]0;PWNED\\x07" in out.splitlines()[-2]  # the table may cut it short


def test_a_narrow_terminal_keeps_the_ids_people_copy_whole(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``devices remove ID`` takes the id the listing shows: cut short with "…" on an
    80-column terminal, it could not be copied from there. Too narrow for the table,
    the terminal gets the plain lines."""
    monkeypatch.setattr("node.cli.output.is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "80")
    device = device_id(bytes(range(32)))
    view = {"device_id": device, "removed": [], "members": [
        {"device_id": device, "name": "laptop", "address": "http://192.168.1.20:7878",
         "added_by": device, "added_at": "2026-12-01T10:00:00.000Z"}]}
    print_rows(device_rows(view), ["device", "name", "state", "address", "since"],
               headed=True, whole=True)
    out = capsys.readouterr().out
    assert "…" not in out
    assert f"{device}  laptop (this device)  member  http://192.168.1.20:7878" in out


def test_80_columns_hold_the_devices_table_each_id_on_a_line_of_its_own(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A device id takes 63 columns: beside the other cells no table fitted 80, and the
    terminal got the plain lines. The id goes on a line of its own over its row, whole,
    as `status` gives its own; the other columns line up under their headers."""
    monkeypatch.setattr("node.cli.output.is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "80")
    device, lost = device_id(bytes(range(32))), device_id(bytes(range(1, 33)))
    view = {"device_id": device, "members": [
        {"device_id": device, "name": "laptop", "address": "http://192.168.1.20:7878",
         "added_by": device, "added_at": "2026-12-01T10:00:00.000Z"}], "removed": [
        {"device_id": lost, "name": "phone", "removed_by": device,
         "removed_at": "2026-12-02T12:00:00.000Z", "reason": "lost on the train"}]}
    print_rows(device_rows(view), ["device", "name", "state", "address", "since"],
               headed=True, whole=True, wrap=(1, 4), apart=0)
    out = capsys.readouterr().out.splitlines()
    assert max(cell_len(line) for line in out) <= 80, out
    assert out[:3] == ["device", "name                  state    address                   "
                       "since", device], out
    assert out[3].split()[:5] == ["laptop", "(this", "device)", "member",
                                  "http://192.168.1.20:7878"], out
    assert lost in out and "…" not in "\n".join(out), out
    at = out.index(lost)
    assert out[at + 1].split()[:3] == ["phone", "removed", "-"], out
    assert [line[out[1].index("since"):] for line in out[at + 1:]] == [
        "removed by this device,", "2026-12-02 12:00:00Z:", "lost on the train"], out


def test_free_text_wraps_and_ids_and_times_never_do(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Where the terminal is narrower than the tokens table, names, patterns, the issuer
    (``origin NAME``: an origin without a device) and the state wrap between words; the
    token ids (`tokens revoke` takes them) and the times stay on one line: the widest
    column wrapped first, which was the time issued, split between its date and its
    clock, while the issuer widened the table past the terminal."""
    monkeypatch.setattr("node.cli.output.is_terminal", lambda: True)
    tokens, _devices = _token_listing()
    tokens[0]["sessions"] = ["tg:*"]
    tokens[3]["origin"] = "45533c84642daaab"
    rows = token_rows(tokens)
    for columns, lines in (("112", 9), ("160", 5)):
        monkeypatch.setenv("COLUMNS", columns)
        print_rows(rows, HEADERS, headed=True, whole=True, wrap=WRAPPED)
        out = capsys.readouterr().out.splitlines()
        assert len(out) == lines and out[0].split() == HEADERS, out  # a table, not lines
        assert max(cell_len(line) for line in out) <= int(columns), out
        for token in ("3f9c0a1b2c3d4e5f", "0a9c0a1b2c3d4e5f", "1b9c0a1b2c3d4e5f"):
            assert any(line.split()[:1] == [token] for line in out), (token, out)
        text = "\n".join(out)
        assert text.count("2026-12-01 10:00:00Z") == 4, out  # each on one line
        assert "2026-12-02 12:00:00Z" in text, out
        shown = _table_cells(out)
        assert shown == [_whole_cells(row, had) for row, had in zip(rows, shown,
                                                                    strict=True)], out
    monkeypatch.setenv("COLUMNS", "112")
    print_rows(rows, HEADERS, headed=True, whole=True, wrap=WRAPPED)
    out = capsys.readouterr().out.splitlines()
    # The origin's row: "origin" on its first line, its name on the next, as the issuer.
    at = out[0].index("issuer")
    first = next(index for index, line in enumerate(out) if "2c9c0a1b2c3d4e5f" in line)
    assert [line[at:at + 16].strip() for line in out[first:]] == [
        "origin", "45533c84642daaab"], out


def test_table_lines_end_without_spaces(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """rich pads each line of a table to the table's width: a copied line or the
    scrollback held trailing spaces after a short last cell."""
    monkeypatch.setattr("node.cli.output.is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "200")
    tokens, _devices = _token_listing()
    print_rows(token_rows(tokens), HEADERS, headed=True, whole=True, wrap=WRAPPED)
    events = [{"position": 1, "timestamp": "2026-12-01T10:00:00.000Z",
               "kind": {"type": "message_received", "content": text}}
              for text in ("a long message, longer than the other one", "hi")]
    print_rows([event_row(event) for event in events], ["position", "time", "kind", "summary"],
               title="events")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 + 4 + 1 + 1 + 2, out
    assert [line for line in out if line != line.rstrip()] == [], out


def test_plain_lines_align_columns_by_terminal_cells(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A name of double-width characters (CJK, emoji) takes two columns of the screen a
    character: padded by characters, the columns after it stood out of line."""
    rows = [["KZDVVJ2", "家族のタブレット", "member", "-"],
            ["MMG42KL", "📱 phone", "member", "http://192.168.1.20:7878"],
            ["VYQWYLX", "laptop", "removed", "-"]]
    print_rows(rows, ["device", "name", "state", "address"], headed=True, whole=True)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "KZDVVJ2  家族のタブレット  member   -", out
    starts = {cell_len(line[:line.index(state)]) for line, state in
              zip(out, ("STATE", "member", "member", "removed"), strict=True)}
    assert starts == {27}, out


def _token_listing() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Tokens of two devices and an origin, and the devices' view that names them."""
    laptop, phone = device_id(bytes(range(32))), device_id(bytes(range(1, 33)))
    issued = {"device_id": laptop, "origin": "o1", "issued_at": "2026-12-01T10:00:00.000Z",
              "revoked_at": None, "read_only": False, "state": "valid"}
    tokens = [
        {**issued, "id": "3f9c0a1b2c3d4e5f", "name": "x",
         "sessions": ["telegram:alice-and-bob-group"]},
        {**issued, "id": "0a9c0a1b2c3d4e5f", "name": "notes app for the whole family",
         "sessions": ["tg:alice", "web:*"], "state": "revoked",
         "revoked_at": "2026-12-02T12:00:00.000Z"},
        {**issued, "id": "1b9c0a1b2c3d4e5f", "name": "sync-app", "sessions": ["*"],
         "device_id": phone, "state": "issuer removed", "read_only": True},
        {**issued, "id": "2c9c0a1b2c3d4e5f", "name": "kept", "sessions": ["web:*"],
         "device_id": None, "origin": "o1"}]
    devices = {"device_id": laptop, "linked": [],
               "members": [{"device_id": laptop, "name": "laptop"}],
               "removed": [{"device_id": phone, "name": "old phone"}]}
    return tokens, devices


def _whole_cells(row: list[str], shown: list[str]) -> list[str]:
    """A row of the tokens table as ``_table_cells`` reads it back (``shown``): a cell's
    lines joined by a space; the patterns as they are, on one line, else one a line: so
    a pattern broken in two, or two on a line of several, differs."""
    return [("\n".join(cell.split()) if "\n" in had else cell) if index in PATTERNS
            else " ".join(cell.split())
            for index, (cell, had) in enumerate(zip(row, shown, strict=True))]


def _table_cells(out: list[str], headers: list[str] = HEADERS) -> list[list[str]]:
    """The rows of a rich table without borders (of the columns ``headers``), each cell's
    lines joined by a space (by a newline, in the ``PATTERNS`` column): a column starts
    where its header does, and a row where its first cell (an id, which never wraps) is
    not empty."""
    starts, at = [], 0
    for header in headers:
        at = out[0].index(header, at)
        starts.append(at)
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    rows: list[list[str]] = []
    for line in out[1:]:
        # By terminal cells, not characters: 家 takes two, as it does on the screen.
        by_cell = [part for char in line for part in (char, "")[:cell_len(char)]]
        cells = ["".join(by_cell[start:end]).strip() for start, end in bounds]
        if cells[0]:
            rows.append(cells)
        else:
            rows[-1] = [(f"{had}\n{cell}" if index in PATTERNS else f"{had} {cell}").strip()
                        for index, (had, cell) in enumerate(zip(rows[-1], cells,
                                                                strict=True))]
    return rows


@pytest.mark.parametrize(("name", "narrowest"), [
    ("notes app for the whole family", 117),
    # Double-width characters: a wrapped line of them that fills the column kept its
    # last space, one cell too many, and rich cut it with "…" ("家族のノート アプ …").
    ("家族のノート アプリ 共有", 121),
    ("📒 ノート 🎉🎉 for the family", 117),
    ("🎉🎉🎉 🎉🎉 ok", 117)], ids=["ascii", "cjk", "emoji-and-cjk", "emoji"])
def test_no_cell_of_the_tokens_table_is_cut_at_any_width(
        name: str, narrowest: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """rich narrows the widest wrapping column first, below its longest word, and cut
    that word with "…" ("telegram:alice-…" at 110 columns): each cell is whole at every
    width, in the table where it fits, in the plain lines where it does not; names of
    double-width characters (CJK, emoji) too."""
    monkeypatch.setattr("node.cli.output.is_terminal", lambda: True)
    tokens, devices = _token_listing()
    tokens[1]["name"] = name
    rows, plain = token_rows(tokens), token_rows(tokens, issuer_names(devices), short=False)
    tables = set()
    for columns in range(60, 201):
        monkeypatch.setenv("COLUMNS", str(columns))
        print_rows(rows, HEADERS, headed=True, whole=True, wrap=WRAPPED, wrap_last=PATTERNS,
                   one_per_line=PATTERNS, plain=plain)
        out = capsys.readouterr().out.splitlines()
        if out[0].split() == HEADERS:  # a table
            tables.add(columns)
            assert max(cell_len(line.rstrip()) for line in out) <= columns, out
            shown = _table_cells(out)
            assert shown == [_whole_cells(row, had) for row, had in zip(rows, shown,
                                                                        strict=True)], out
        else:
            assert out[0].split() == [word.upper() for word in " ".join(HEADERS).split()]
            for line, row in zip(out[1:], plain, strict=True):
                assert line.split() == " ".join(row).split(), (columns, line)
    # From 117 columns: the longest word of each wrapping column (cells, not
    # characters: 家族のノート takes 12; a time is one word; a pattern is never broken,
    # telegram:alice-and-bob-group takes 28), the others' widest cells.
    assert tables == set(range(narrowest, 201)), sorted(tables)


@pytest.mark.parametrize("columns", [None, "60"])
def test_the_plain_lines_of_tokens_give_the_issuers_whole_id_and_name(
        columns: str | None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Piped (or on a terminal too narrow for the table), the lines scripts read carry
    the whole id of the device that issued a token, which `devices remove` takes, and
    its name as `devices` knows it; the table has room for the first group only."""
    monkeypatch.setattr("node.cli.output.is_terminal", lambda: columns is not None)
    if columns:
        monkeypatch.setenv("COLUMNS", columns)
    tokens, devices = _token_listing()
    laptop, phone = tokens[0]["device_id"], tokens[2]["device_id"]
    print_rows(token_rows(tokens), HEADERS, headed=True, whole=True, wrap=WRAPPED,
               plain=token_rows(tokens, issuer_names(devices), short=False))
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[4] == "ISSUER"
    issuers = [line.split("read-")[1].split(None, 1)[1] for line in out[1:]]
    assert [issuer.split("  ")[0] for issuer in issuers] == [
        f"{laptop} (this device)", f"{laptop} (this device)", f"{phone} (old phone)",
        "origin o1"]
    # Without the devices' view (a node that would not say), the whole id alone.
    print_rows(token_rows(tokens), HEADERS, headed=True, whole=True, wrap=WRAPPED,
               plain=token_rows(tokens[2:3], None, short=False))
    assert f"  {phone}  2026-12-01 10:00:00Z  issuer removed" in capsys.readouterr().out


@pytest.mark.parametrize(("columns", "left_out", "lines"), [
    # One a line, not two on the first ("tg:* telegram:alice-and-bob-group" fits); the
    # second token's fit side by side in the column the first's need one a line.
    (120, ["issued"], [["tg:*", "telegram:alice-and-bob-group",
                        "agent:main:telegram:group:-100123456789:*"], ["tg:* agent:main:*"]]),
    (200, [], [["tg:* telegram:alice-and-bob-group agent:main:telegram:group:-100123456789:*"],
               ["tg:* agent:main:*"]])])
def test_a_tokens_patterns_are_never_broken_and_go_one_a_line_where_they_must(
        columns: int, left_out: list[str], lines: list[list[str]],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Patterns are separated by spaces: a pattern broken between characters read as
    two ("agent:main:" and "*", every session). Where a token's patterns do not fit
    side by side, each takes a line of its own, whole; the time issued is left out
    before that (at 120 columns it was kept, and the patterns broken)."""
    monkeypatch.setattr("node.cli.output.is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", str(columns))
    tokens, _devices = _token_listing()
    tokens[0]["sessions"] = ["tg:*", "telegram:alice-and-bob-group",
                             "agent:main:telegram:group:-100123456789:*"]
    tokens[1]["sessions"] = ["tg:*", "agent:main:*"]
    print_rows(token_rows(tokens[:2]), HEADERS, headed=True, whole=True, wrap=WRAPPED,
               optional=OPTIONAL, wrap_last=PATTERNS, one_per_line=PATTERNS)
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    kept = [header for header in HEADERS if header not in left_out]
    assert out[0].split() == kept, out
    assert ("issued" in captured.err) is bool(left_out), captured.err
    assert max(cell_len(line) for line in out) <= columns, out
    assert [cells[2].split("\n") for cells in _table_cells(out, kept)] == lines, out


def test_a_table_too_wide_leaves_out_its_optional_columns_first(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The tokens table with its two times (to the millisecond, 24 columns each) needed
    88 columns at the least: an 80-column terminal got the plain lines. To the second,
    and without the time issued where there is no room for it, it fits; a note on
    stderr says what is left out. Narrower still, without the issuer too, then the
    plain lines."""
    monkeypatch.setattr("node.cli.output.is_terminal", lambda: True)
    tokens, devices = _token_listing()
    tokens[0]["sessions"] = ["tg:*"]
    rows, plain = token_rows(tokens), token_rows(tokens, issuer_names(devices), short=False)
    shown = {}
    for columns in (80, 70, 60):
        monkeypatch.setenv("COLUMNS", str(columns))
        assert prints_table(rows, HEADERS, whole=True, wrap=WRAPPED,
                            optional=OPTIONAL) is (columns != 60)
        print_rows(rows, HEADERS, headed=True, whole=True, wrap=WRAPPED, optional=OPTIONAL,
                   plain=plain)
        captured = capsys.readouterr()
        out = captured.out.splitlines()
        shown[columns] = (out[0].split(), captured.err)
        assert max(cell_len(line) for line in out) <= columns or columns == 60, out
        assert "…" not in captured.out
        for token in tokens:
            assert any(line.split()[:1] == [token["id"]] for line in out), out
    kept = [header for header in HEADERS if header != "issued"]
    assert shown[80] == (kept, "(left out for want of room: issued; piped or with --json, "
                               "every column is there)\n")
    assert shown[70] == ([header for header in kept if header != "issuer"],
                         "(left out for want of room: issuer, issued; piped or with "
                         "--json, every column is there)\n")
    assert shown[60] == ([word.upper() for word in " ".join(HEADERS).split()], "")


def test_plain_lines_end_without_spaces(capsys: pytest.CaptureFixture[str]) -> None:
    """An empty last cell left the padding of the column before it at the line's end."""
    print_rows([["tg:alice", ""], ["tg:bob", "x"]], ["session", "note"])
    assert capsys.readouterr().out.splitlines() == ["tg:alice", "tg:bob    x"]
