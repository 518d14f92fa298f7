"""``clawsync status``'s table of peer links on an 80-column terminal: the version a
peer runs reads as it is written, where the columns of small numbers have room to spare
under their headers."""

from __future__ import annotations

import pytest
from rich.cells import cell_len

from node.cli.output import print_rows
from node.cli.status import PEER_APART, PEER_HEADERS, PEER_OPTIONAL, PEER_WRAPPED, peer_rows


def test_80_columns_break_the_headers_of_numbers_before_the_version(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The version "0.3.0 (schema 1)" took three lines ("0.3.0", "(schema", "1)") while
    "we lack", "peer lacks" and "bytes in" kept the width of their headers over cells of
    one digit: a header gives up its room first, and "(schema 1)" is never broken."""
    monkeypatch.setattr("node.cli.output.is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "80")
    peer = {"url": "http://192.168.1.20:7878", "link": "l1", "direction": "out",
            "device_id": "KZDVVJ2-UMNDUYL", "device_name": "laptop",
            "node_id": "3f9c0a1b2c3d4e5f", "state": "up", "last_contact_s_ago": 1.9,
            "events_we_lack": 0, "events_peer_lacks": 0, "bytes_in": 12345,
            "bytes_out": 23456, "software": "0.3.0", "schema": 1}
    print_rows(peer_rows([peer]), PEER_HEADERS, headed=True, whole=True,
               wrap=PEER_WRAPPED, optional=PEER_OPTIONAL, apart=PEER_APART)
    out = capsys.readouterr().out.splitlines()
    assert max(cell_len(line) for line in out) <= 80, out
    assert [line.rstrip() for line in out] == [
        "peer",
        "                                               we    peer   bytes",
        "dir  device  node              state  contact  lack  lacks  in     version",
        "http://192.168.1.20:7878",
        "out  laptop  3f9c0a1b2c3d4e5f  up     2 s ago  0     0      12345  0.3.0",
        "                                                                   (schema 1)",
    ], out
