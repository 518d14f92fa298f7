"""What ``clawsync devices add`` and ``devices remove`` print of the names a node answers."""

from __future__ import annotations

import ast
from collections.abc import Iterator

import pytest

from tests.support.processes import run_cli
from tests.support.stand_in import Quiet, serving

DEVICE = "KZDVVJ2-UMNDUYL-" + "A" * 47  # the shape only: this "node" checks nothing
#: Names with control characters: a current node refuses them, but whatever answers at
#: --node (an older or a hostile node) may send them.
OLD_NAME = "phone\x1b]0;PWNED\x07"
NEW_NAME = "tablet\nadded EVIL"


class _Node(Quiet):
    """Answers as a node would, with names no current node keeps."""

    old_name, new_name = OLD_NAME, NEW_NAME

    def do_GET(self) -> None:  # the members before a rename
        self.answer(200, {"device_id": "own", "removed": [], "linked": [], "members": [
            {"device_id": DEVICE, "name": self.old_name, "address": None}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.answer(200, {"created": True,
                          "device": {"device_id": DEVICE, "name": self.new_name}})

    def do_DELETE(self) -> None:
        self.answer(200, {"created": True,
                          "device": {"device_id": DEVICE, "name": self.old_name}})


class _HidingNode(_Node):
    """Names recorded before their invisible characters were refused in new names."""

    old_name, new_name = "phone\u3164", "tablet\u200b\U0001f469\u200d\U0001f4bb"


@pytest.fixture
def node_url() -> Iterator[str]:
    with serving(_Node) as url:
        yield url


def test_names_are_printed_escaped(node_url: str) -> None:
    """An escape sequence in a name retitled the reader's terminal, a newline faked a
    line of output: they are shown escaped, as the tables show them."""
    renamed = run_cli(node_url, "devices", "add", DEVICE, "--name", "tablet")
    assert renamed.returncode == 0, renamed.stderr
    assert renamed.stdout == (f"renamed {DEVICE} (phone\\x1b]0;PWNED\\x07 -> "
                              "tablet\\x0aadded EVIL)\n")
    removed = run_cli(node_url, "devices", "remove", DEVICE)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == f"removed {DEVICE} (phone\\x1b]0;PWNED\\x07)\n"


def test_added_and_removed_names_show_their_invisible_characters_escaped() -> None:
    """``devices add`` and ``devices remove`` printed a Hangul filler or a zero-width
    space in a name as it is, where the table shows its escape: as in the table now (an
    emoji's joiner stays)."""
    with serving(_HidingNode) as url:
        renamed = run_cli(url, "devices", "add", DEVICE, "--name", "tablet")
        assert renamed.returncode == 0, renamed.stderr
        assert renamed.stdout == (f"renamed {DEVICE} (phone\\u3164 -> tablet\\u200b"
                                  "\U0001f469\u200d\U0001f4bb)\n")
        removed = run_cli(url, "devices", "remove", DEVICE)
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout == f"removed {DEVICE} (phone\\u3164)\n"


def test_invisible_characters_of_names_that_read_as_one_are_shown_escaped() -> None:
    """Of two members whose names read as one, the one holding a character that shows as
    nothing or as a blank (a name recorded before such names were refused) shows it
    escaped, in the table, the lines that say what to do, and ``clawsync status``."""
    from node.cli.devices import device_rows, shared_name_lines
    from node.cli.status import shared_names_line

    other = "NI4AHVP-QLGICU5-HDNV66J-XJDSSIA-JPPSVMB-BRUZQ5A-OO2ZHKK-PQHATQR"
    for hidden in ("\u3164", "\u200b", "\u2800", "\U0001d173", "\u034f"):
        name = f"phone{hidden}"
        view = {"device_id": DEVICE, "removed": [], "members": [
            {"device_id": DEVICE, "name": name, "name_shared_with": [other]},
            {"device_id": other, "name": "phone", "name_shared_with": [DEVICE]}]}
        escaped = f"phone\\{'U' if len(hex(ord(hidden))) > 6 else 'u'}"
        shown = [row[1] for row in device_rows(view)]
        assert shown[0].startswith(escaped) and shown[1] == "phone (name shared)", shown
        [said, *_] = shared_name_lines(view)
        assert f"share the name '{escaped}" in said and hidden not in said
        line = shared_names_line({"shared_names": [{"name": name, "members": [DEVICE, other]}]})
        assert line is not None and f"'{escaped}" in line and hidden not in line
    # What spells a word stays: an emoji's joiner.
    coder = "\U0001f469\u200d\U0001f4bb"
    view = {"device_id": DEVICE, "removed": [], "members": [{"device_id": DEVICE, "name": coder}]}
    assert device_rows(view)[0][1] == f"{coder} (this device)"


@pytest.mark.parametrize("name", ["it's", 'say "hi"', "it's \"x\"", "back\\slash",
                                  "phone\\u3164", "phone\u3164", "\u200b'"])
def test_a_shared_name_is_quoted_so_it_reads_back_as_it_is(name: str) -> None:
    """A name holding a quote ended where it seemed to (``'it's'``), and a backslash
    read as an escape (``phone\\u3164`` typed so, as a Hangul filler): the lines
    quote a name as Python writes a string, which reads back as the name."""
    from node.cli.devices import shared_name_lines
    from node.cli.status import shared_names_line

    other = "NI4AHVP-QLGICU5-HDNV66J-XJDSSIA-JPPSVMB-BRUZQ5A-OO2ZHKK-PQHATQR"
    view = {"device_id": DEVICE, "removed": [], "members": [
        {"device_id": DEVICE, "name": name, "name_shared_with": [other]},
        {"device_id": other, "name": "other", "name_shared_with": [DEVICE]}]}
    [said, *_] = shared_name_lines(view)
    quoted = said.removeprefix("2 members share the name ").partition(" (people cannot")[0]
    assert ast.literal_eval(quoted) == name, said
    line = shared_names_line({"shared_names": [{"name": name, "members": [DEVICE, other]}]})
    assert line is not None
    quoted = line.removeprefix("members share names: ").partition(" (2 members)")[0]
    assert ast.literal_eval(quoted) == name, line


@pytest.mark.parametrize("name", ["\U0001f469\u200d\U0001f4bb", "\u0644\u067e\u200c\u062a",
                                  "pho\u200dne", "my\u00a0phone", "phone\u3164"])
def test_a_shared_name_reads_in_the_lines_as_in_the_table(name: str) -> None:
    """The lines said the name of an emoji with its joiner escaped (``\\u200d``) where
    the table showed the emoji: a user could not match them. Both show it one way."""
    from node.cli.devices import device_rows, shared_name_lines
    from node.cli.status import shared_names_line

    other = "NI4AHVP-QLGICU5-HDNV66J-XJDSSIA-JPPSVMB-BRUZQ5A-OO2ZHKK-PQHATQR"
    view = {"device_id": "own", "removed": [], "members": [
        {"device_id": DEVICE, "name": name, "name_shared_with": [other]},
        {"device_id": other, "name": "other", "name_shared_with": [DEVICE]}]}
    shown = device_rows(view)[0][1].removesuffix(" (name shared)")
    [said, *_] = shared_name_lines(view)
    assert said.startswith(f"2 members share the name '{shown}' (people"), (said, shown)
    line = shared_names_line({"shared_names": [{"name": name, "members": [DEVICE, other]}]})
    assert line is not None and line.startswith(f"members share names: '{shown}' (2"), line


PHONE = "KZDVVJ2-UMNDUYL-AUF35O3-6K6KW4U-62MUJVR-A46TN3R-UQGZOVM-IHOCGAL"
TABLET = "NI4AHVP-QLGICU5-HDNV66J-XJDSSIA-JPPSVMB-BRUZQ5A-OO2ZHKK-PQHATQR"


class _SharingNode(Quiet):
    """Lists a phone and a tablet; renaming the tablet "Phone" shares the phone's name.
    ``joins_late``: the phone's record arrives (from another node) between the list the
    CLI reads before the add and the add."""

    joins_late = False
    lists = 0

    def do_GET(self) -> None:
        type(self).lists += 1
        renamed = self.lists > 1  # the list read after the add
        phone = {"device_id": PHONE, "name": "phone",
                 "name_shared_with": [TABLET] if renamed else []}
        tablet = {"device_id": TABLET, "name": "Phone" if renamed else "tablet",
                  "name_shared_with": [PHONE] if renamed else []}
        members = [tablet] if self.joins_late and not renamed else [phone, tablet]
        self.answer(200, {"device_id": "own", "removed": [], "linked": [], "members": members})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.answer(201, {"created": True, "device": {
            "device_id": TABLET, "name": "Phone", "name_shared_with": [PHONE]}})


def _shared_hint(handler: type[_SharingNode]) -> str:
    with serving(handler) as url:
        added = run_cli(url, "devices", "add", TABLET, "--name", "Phone")
    assert added.returncode == 0, added.stderr
    assert added.stdout == f"renamed {TABLET} (tablet -> Phone)\n"
    return added.stderr


def test_devices_add_names_a_shared_name_as_the_devices_list_does() -> None:
    """The group goes by its first member by id (the phone's 'phone'), as ``clawsync
    devices`` and ``status`` name it, not by the name just given ('Phone')."""
    said = _shared_hint(type("Node", (_SharingNode,), {}))
    assert "2 members share the name 'phone' (people cannot" in said, said
    for member in (PHONE, TABLET):
        assert f"clawsync devices add {member} --name NEW" in said


def test_devices_add_finds_a_member_that_came_during_the_add() -> None:
    """A member listed only after the add (its record came from another node meanwhile)
    is named in the commands: the list is read again once the add says its name is
    shared."""
    said = _shared_hint(type("Node", (_SharingNode,), {"joins_late": True}))
    assert "2 members share the name 'phone' (people cannot" in said, said
    for member in (PHONE, TABLET):
        assert f"clawsync devices add {member} --name NEW" in said
