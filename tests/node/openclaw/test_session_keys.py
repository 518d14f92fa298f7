"""The keys remembered for an agent's sessions stay within their limits, forgetting the
sessions learnt first; what they save is a cursor the node keeps, and reads back the
same."""

from __future__ import annotations

import json

from crdt import codec
from crdt.keys import NAME_BYTES_MAX
from crdt.log.cursors import CURSOR_BYTES_MAX, CURSOR_ENTRIES_MAX, check_cursor
from node.client.api import Client
from node.openclaw.key_entries import BYTE_MAX, entry_of, file_entry, file_of, pair_of, parts_of
from node.openclaw.session_keys import (
    MARKS_MAX,
    ORDER_MAX,
    SESSION_KEYS_MAX,
    SessionKeys,
    keys_name,
)
from node.openclaw.source import FileIdentity
from node.server.cursors import BODY_BYTES_MAX
from node.server.run import RunningNode


def test_past_the_count_the_sessions_learnt_first_are_forgotten() -> None:
    keys = SessionKeys(None)
    for n in range(SESSION_KEYS_MAX + 2):
        keys.learn(f"s{n}", f"agent:main:k{n}")
    keys.learn("s1", "agent:main:again")  # learnt again: last now
    saved = check_cursor(keys.saved())
    keys.unsaved = False
    # The next read of an index naming them all learns none of those forgotten again
    # (each would forget another, and the keys be saved anew at every read).
    named = {f"s{n}": f"agent:main:k{n}" for n in range(SESSION_KEYS_MAX + 2)}
    named["s1"] = "agent:main:again"
    assert not any(keys.learn(session_id, key) for session_id, key in named.items())
    assert not keys.unsaved and keys.saved() == saved
    assert len(saved) == SESSION_KEYS_MAX
    back = SessionKeys(saved)
    assert back.key_of("s0") is None and back.key_of("s2") is None
    assert back.key_of("s1") == "agent:main:again"
    assert back.key_of(f"s{SESSION_KEYS_MAX + 1}") == f"agent:main:k{SESSION_KEYS_MAX + 1}"
    assert keys.key_of("s0") is None  # forgotten here too, as saved


def test_past_the_cursor_size_the_sessions_learnt_first_are_forgotten() -> None:
    keys = SessionKeys(None)
    for n in range(SESSION_KEYS_MAX):
        session_id = f"{n:05d}-" + "i" * 40
        key = "agent:main:" + "k" * (NAME_BYTES_MAX - 70)
        assert keys.learn(session_id, key)
        assert len(entry_of(session_id, key) or "") > NAME_BYTES_MAX - 20
    saved = check_cursor(keys.saved())  # the node takes it
    assert len(codec.encode_fast(saved)) <= CURSOR_BYTES_MAX < 2 * len(codec.encode_fast(saved))
    back = SessionKeys(saved)
    assert back.key_of("00000-" + "i" * 40) is None
    assert back.key_of(f"{SESSION_KEYS_MAX - 1:05d}-" + "i" * 40) is not None


def test_what_cannot_be_an_entry_is_not_remembered_and_foreign_entries_are_dropped() -> None:
    keys = SessionKeys({"not a pair": 3, "2:s1:agent:main:main": 1})
    assert keys.key_of("s1") == "agent:main:main"
    assert not keys.learn("s2", "agent:main:\n")  # a control character: no entry name
    assert not keys.learn("s3", "k" * NAME_BYTES_MAX)
    assert keys.learn("s4", "agent:main:x")
    assert keys.saved() == {"2:s1:agent:main:main": 1, "2:s4:agent:main:x": 2}


async def test_keys_past_ascii_near_the_size_limit_are_saved_on_a_node(node: RunningNode) -> None:
    """A cursor of keys each holding 44 emoji, as large as the node keeps: sent as JSON
    with ``\\u`` escapes it would be over the node's body limit (three times the bytes of
    its text); sent as the UTF-8 it is, the node takes it."""
    keys = SessionKeys(None)
    for n in range(CURSOR_BYTES_MAX // 200):
        assert keys.learn(f"{n:08d}-0000-4000-8000-000000000000", "agent:main:" + "\U0001f600" * 44)
    saved = keys.saved()
    assert CURSOR_BYTES_MAX - 300 < len(codec.encode_fast(saved)) <= CURSOR_BYTES_MAX
    assert len(json.dumps({"cursor": saved}).encode()) > BODY_BYTES_MAX
    name = keys_name("openclaw:ab12:cd34")
    async with Client(node.url) as client:
        await client.save_cursor(name, saved)
        assert await client.cursor(name) == saved


def test_an_entry_whose_length_is_no_ascii_number_names_no_pair() -> None:
    """"²".isdigit() is True, and int("²") raises: anyone holding the node's token may
    save such an entry."""
    assert pair_of("\u00b2:s1:agent:main:main") is None
    assert SessionKeys({"\u00b2:s1:agent:main:main": 0, "2:s2:k": 1}).saved() == {"2:s2:k": 1}


def test_a_key_learnt_after_a_mark_applies_from_where_the_file_was_read() -> None:
    """Marked as read under its id up to a byte (moved on as more is read so), a
    session's key applies from there, even if its cursor entry was dropped meanwhile
    (read up to 0), or from where the cursor says if further; and goes on doing so under
    another key. An unmarked session's (an entry of a release that kept no marks) from
    its start."""
    keys = SessionKeys({"2:s1:agent:main:old": 0})
    assert keys.mark("s2", 80) and keys.mark("s2", 120) and not keys.mark("s2", 100)
    assert not keys.mark("s1", 50)  # keyed: its records go under the key
    assert keys.key_of("s2") is None and keys.since("s2") == 120
    assert keys.learn("s2", "agent:main:a", read_to=0)  # its cursor entry dropped
    assert keys.since("s2") == 120
    assert keys.learn("s2", "agent:main:b", read_to=400)  # read under a since 120
    assert keys.learn("s1", "agent:main:new", read_to=300)
    assert not keys.mark("s2", 500)
    keys.mark("s3", 60)
    assert keys.learn("s3", "agent:main:c", read_to=90)  # the cursor further than the mark
    saved = keys.saved()
    assert saved == {"2:s1:agent:main:new": 4, "2:s2:agent:main:b": 3, "120+2:s2": 3,
                     "2:s3:agent:main:c": 6, "90+2:s3": 6}
    back = SessionKeys(saved)
    assert (back.key_of("s2"), back.since("s2")) == ("agent:main:b", 120)
    assert (back.key_of("s1"), back.since("s1")) == ("agent:main:new", 0)
    assert (back.key_of("s3"), back.since("s3")) == ("agent:main:c", 90)


def test_entries_of_the_first_release_with_marks_read_as_they_meant() -> None:
    keys = SessionKeys({"120+2:s1:agent:main:a": 0, "2:s2": 1})
    assert (keys.key_of("s1"), keys.since("s1")) == ("agent:main:a", 120)
    assert (keys.key_of("s2"), keys.since("s2")) == (None, 0)
    assert keys.learn("s2", "agent:main:b", read_to=70)
    assert keys.saved() == {"2:s1:agent:main:a": 0, "120+2:s1": 0, "2:s2:agent:main:b": 2,
                            "70+2:s2": 2}


def release_before_marks_pair_of(entry: str) -> tuple[str, str] | None:
    """How the release before marks read an entry (``SessionKeys`` left out what this
    gives None for, and dropped it at its next save)."""
    length, _colon, rest = entry.partition(":")
    if not (length.isascii() and length.isdigit()):
        return None
    size = int(length)
    if len(rest) <= size or rest[size] != ":":
        return None
    return rest[:size], rest[size + 1:]


def test_the_release_before_marks_reads_every_key_as_it_wrote_it() -> None:
    """Going back to the release that knew keys alone: it reads each key as it wrote it
    (a key learnt after a mark then applies from its file's start, as it did there), and
    reads no other entry as a key."""
    keys = SessionKeys(None)
    keys.mark("s1", 120)
    keys.learn("s1", "agent:main:a", read_to=0)
    keys.learn("s2", "agent:main:b")
    keys.mark("s3", 40)
    keys.mark("s4", 0)  # nothing of it stored yet
    saved = keys.saved()
    pairs = {entry: release_before_marks_pair_of(entry) for entry in saved}
    assert sorted(pair for pair in pairs.values() if pair is not None) == [
        ("s1", "agent:main:a"), ("s2", "agent:main:b")]
    assert sorted(entry for entry, pair in pairs.items() if pair is None) == [
        "120+2:s1", "2:s4", "40+2:s3"]


def test_a_file_read_again_from_its_start_is_read_as_new() -> None:
    """Got shorter than its offset (another file now): what was read of it under its id
    no longer applies."""
    keys = SessionKeys(None)
    keys.mark("s1", 471)
    keys.learn("s1", "agent:main:a")
    keys.mark("s2", 300)
    keys.unsaved = False
    assert keys.restart("s1") and keys.restart("s2") and not keys.restart("s3")
    assert keys.unsaved and not keys.restart("s1")
    assert (keys.key_of("s1"), keys.since("s1"), keys.since("s2")) == ("agent:main:a", 0, 0)
    assert keys.saved() == {"2:s1:agent:main:a": 1}


def test_a_file_only_cut_is_told_from_another_by_its_device_and_inode() -> None:
    """The file a byte is one of is remembered while the byte is, and read back: a file
    shorter than its offset with the same device, inode and first record is the same
    file, cut; with another first record, one rewritten in place: another. Grown, it is
    another only with another first record (rewritten in place, or replaced), whatever
    its device and inode."""
    keys = SessionKeys(None)
    keys.mark("s1", 120)
    keys.learn("s2", "agent:main:b")
    keys.unsaved = False
    keys.file_is("s1", FileIdentity(5, 77, "0011aaff"))
    keys.file_is("s2", FileIdentity(5, 78))  # its key applies from its start: no byte
    assert keys.unsaved
    saved = check_cursor(keys.saved())
    assert saved == {"120+2:s1": 0, "5.77.0011aaff@2:s1": 0, "2:s2:agent:main:b": 1}
    again = SessionKeys(saved)
    assert not again.another_file("s1", FileIdentity(5, 77, "0011aaff"))
    assert again.another_file("s1", FileIdentity(5, 79, "0011aaff"))
    assert again.another_file("s1", FileIdentity(5, 77, "0011aafe"))  # rewritten
    assert again.another_file("s1", FileIdentity(5, 77))  # no first record yet
    assert again.another_file("s1", None) and again.another_file("s2", FileIdentity(5, 78))
    assert not again.another_file("s1", FileIdentity(5, 77, "0011aaff"), shorter=False)
    assert not again.another_file("s1", FileIdentity(5, 79, "0011aaff"), shorter=False)
    assert again.another_file("s1", FileIdentity(5, 77, "0011aafe"), shorter=False)
    assert again.another_file("s1", FileIdentity(6, 79, "0011aafe"), shorter=False)
    assert not again.another_file("s2", FileIdentity(5, 78, "0011aafe"), shorter=False)
    again.unsaved = False
    again.file_is("s1", FileIdentity(5, 77, "0011aaff"))
    assert not again.unsaved
    again.restart("s1")
    assert again.another_file("s1", FileIdentity(5, 77, "0011aaff"))
    assert again.saved() == {"2:s2:agent:main:b": 1}
    assert file_of("5.77@2:s1") == ("s1", FileIdentity(5, 77)) and parts_of("5.77@2:s1") is None
    assert parts_of("5.77.0011aaff@2:s1") is None
    for hostile in ("5.77@3:s1", ".77@2:s1", "5.@2:s1", "5.77@0:", "5.7.7@2:s1", "5.77+2:s1",
                    "5.77.@2:s1", "5.77.0011AAFF@2:s1", "5.77.0011aaf@2:s1",
                    "5.77.0011aaff0@2:s1", "5.77.0011aaff.1@2:s1"):
        assert file_of(hostile) is None, hostile


def test_an_identity_the_release_before_kept_is_the_device_and_inode_alone() -> None:
    """An identity entry without a first record (as the release before wrote it) still
    loads: a shorter file with its device and inode is taken for cut, as it was there;
    the next read keeps the first record beside it."""
    keys = SessionKeys({"120+2:s1": 0, file_entry("s1", FileIdentity(5, 77)) or "": 0})
    assert keys.since("s1") == 120
    assert not keys.another_file("s1", FileIdentity(5, 77, "0011aaff"))
    assert keys.another_file("s1", FileIdentity(5, 78, "0011aaff"))
    assert keys.wants_first("s1", None, 5, 77, False)  # to keep its first record beside it
    # No first record kept: one grown is the same file, whatever its first record.
    assert not keys.another_file("s1", FileIdentity(5, 77, "0011aafe"), shorter=False)
    keys.unsaved = False
    keys.file_is("s1", FileIdentity(5, 77, "0011aaff"))
    assert keys.unsaved and keys.saved() == {"120+2:s1": 0, "5.77.0011aaff@2:s1": 0}
    assert not keys.wants_first("s1", None, 5, 77, False)
    assert keys.wants_first("s1", None, 5, 78, False)
    assert keys.another_file("s1", FileIdentity(5, 77, "0011aafe"), shorter=False)


def test_the_first_record_is_wanted_of_the_file_of_a_byte_not_kept_yet() -> None:
    """A reader hashes a file's first line for the keys only when they would keep it or
    tell by it: the file of a byte (a mark, or where a key applies from) with none kept
    for its device and inode, or grown (another file?); a file with new records and
    nothing known of it, which they may mark. Not a key's file that applies from its
    start, grown or not, nor an unknown file with nothing new or named by its index."""
    keys = SessionKeys(None)
    keys.mark("s1", 120)
    keys.learn("s2", "agent:main:b")
    assert keys.wants_first("s1", None, 5, 77, False)
    assert not keys.wants_first("s2", None, 5, 78, False)
    assert not keys.wants_first("s2", None, 5, 78, True)  # no longer named, grown
    assert not keys.wants_first("s3", None, 5, 79, False)
    assert keys.wants_first("s3", None, 5, 79, True)  # read under its id: marked
    assert not keys.wants_first("s3", "agent:main:c", 5, 79, True)  # under its key
    keys.file_is("s1", FileIdentity(5, 77, "0011aaff"))
    assert not keys.wants_first("s1", None, 5, 77, False)
    assert keys.wants_first("s1", None, 6, 77, False) and keys.wants_first("s1", None, 5, 77, True)


def test_the_file_of_a_session_forgotten_is_forgotten_with_it() -> None:
    """The file of a byte is remembered while the byte is: not once its mark is
    forgotten (its file gone from the folder, or past ``MARKS_MAX``), nor when a cursor
    names it without its byte."""
    def filed(keys: SessionKeys, session_id: str) -> bool:
        return not keys.another_file(session_id, FileIdentity(5, 77, "0011aaff"))

    keys = SessionKeys(None)
    for n in range(MARKS_MAX + 1):
        keys.mark(f"m{n}", 10)
        keys.file_is(f"m{n}", FileIdentity(5, 77, "0011aaff"))
    assert filed(keys, "m0") and filed(keys, "m1")
    keys.forget_gone({f"m{n}" for n in range(1, MARKS_MAX + 1)})  # m0's file gone
    assert not filed(keys, "m0") and filed(keys, "m1")
    keys.mark("m0", 10)  # a file of that name again: read under its id anew
    keys.saved()  # MARKS_MAX marks, the last ones: m1 forgotten for room
    assert not filed(keys, "m1") and filed(keys, f"m{MARKS_MAX}")
    assert not filed(SessionKeys({"5.77.0011aaff@2:m0": 0, "2:m0:agent:main:a": 1}), "m0")


def test_a_session_forgotten_for_room_is_forgotten_whole_once_its_file_is_gone() -> None:
    """A mark forgotten for room is not marked again while its file is there; once its
    file is gone, nothing is kept of it, and a file of that name that comes back is
    marked as new."""
    keys = SessionKeys(None)
    for n in range(MARKS_MAX + 1):
        keys.mark(f"m{n}", 10)
    keys.saved()
    held = {f"m{n}" for n in range(MARKS_MAX + 1)}
    keys.forget_gone(held)
    assert not keys.mark("m0", 20)
    keys.forget_gone(held - {"m0"})
    assert keys.mark("m0", 20) and keys.since("m0") == 20


def test_a_key_forgotten_for_room_is_learnt_again_once_its_file_was_gone() -> None:
    """A key forgotten for room is not learnt again while its file is there (each read
    of an index naming more than fit would learn it and forget another); once its file
    is gone, that is forgotten too, and a file of that name named again is learnt."""
    keys = SessionKeys(None)
    for n in range(SESSION_KEYS_MAX + 1):
        keys.learn(f"k{n}", f"agent:main:k{n}")
    keys.saved()  # k0 forgotten for room
    held = {f"k{n}" for n in range(SESSION_KEYS_MAX + 1)}
    keys.forget_gone(held)
    assert not keys.learn("k0", "agent:main:k0")
    keys.forget_gone(held - {"k0"})
    assert keys.learn("k0", "agent:main:k0") and keys.key_of("k0") == "agent:main:k0"


def test_marks_are_forgotten_before_keys_and_past_their_own_count() -> None:
    """A session read under its id takes a place only till its key is learnt; an agent
    without an index (every file marked) keeps ``MARKS_MAX`` marks, the last ones, and
    pushes out no key. Marks forgotten for room are not marked again."""
    keys = SessionKeys(None)
    for n in range(SESSION_KEYS_MAX):
        keys.learn(f"k{n}", f"agent:main:k{n}")
    for n in range(MARKS_MAX + 5):
        assert keys.mark(f"m{n}", 10)
    saved = check_cursor(keys.saved())
    assert len(saved) == SESSION_KEYS_MAX + MARKS_MAX <= CURSOR_ENTRIES_MAX
    assert keys.key_of("k0") == "agent:main:k0"
    assert "10+2:m4" not in saved and "10+2:m5" in saved
    assert f"10+{len(f'm{MARKS_MAX + 4}')}:m{MARKS_MAX + 4}" in saved
    assert not keys.mark("m0", 20) and keys.since("m0") == 0
    # Past the node's entries, marks go before any key.
    keys = SessionKeys(None)
    for n in range(SESSION_KEYS_MAX):
        keys.mark(f"m{n}", 10)
        keys.learn(f"m{n}", f"agent:main:m{n}")
    for n in range(5):
        keys.mark(f"x{n}", 10)
    saved = check_cursor(keys.saved())
    assert len(saved) == CURSOR_ENTRIES_MAX and keys.key_of("m0") == "agent:main:m0"
    assert keys.since("x4") == 0


def test_at_the_node_limits_files_then_marks_then_bytes_go_before_any_key() -> None:
    """``SESSION_KEYS_MAX`` keys of OpenClaw's usual length, each with a byte and its
    file (three entries each: over ``CURSOR_ENTRIES_MAX``, and the bytes over
    ``CURSOR_BYTES_MAX``), and marks: every key is kept; every file and mark is left out
    first, then the bytes learnt first, and what was left out is not taken back (the
    next save is the same, with no save owed)."""
    keys = SessionKeys(None)
    ids = [f"{n:08x}-0000-4000-8000-{n:012x}" for n in range(SESSION_KEYS_MAX)]
    for n, session_id in enumerate(ids):
        keys.mark(session_id, 1000 + n)
        keys.learn(session_id, f"agent:main:explicit:{session_id}", read_to=1000 + n)
        keys.file_is(session_id, FileIdentity(2049, n, f"{n:08x}"))
    for n in range(3):
        keys.mark(f"m{n}", 10)
        keys.file_is(f"m{n}", FileIdentity(2049, 10**6 + n, f"{n:08x}"))
    saved = check_cursor(keys.saved())
    assert len(saved) <= CURSOR_ENTRIES_MAX
    assert len(codec.encode_fast(saved)) <= CURSOR_BYTES_MAX
    assert all(keys.key_of(session_id) == f"agent:main:explicit:{session_id}"
               and f"36:{session_id}:agent:main:explicit:{session_id}" in saved
               for session_id in ids)
    assert not [entry for entry in saved if file_of(entry) is not None]
    assert not [entry for entry in saved if entry.startswith("10+")]  # the marks
    bytes_kept = [n for n, session_id in enumerate(ids) if keys.since(session_id)]
    assert bytes_kept and bytes_kept == list(range(bytes_kept[0], SESSION_KEYS_MAX))
    assert len(saved) == SESSION_KEYS_MAX + len(bytes_kept)
    again = SessionKeys(saved)
    assert [again.since(session_id) for session_id in ids] == \
        [keys.since(session_id) for session_id in ids]
    keys.unsaved = False
    keys.file_is(ids[-1], FileIdentity(2049, SESSION_KEYS_MAX - 1, "ffffffff"))
    assert not keys.mark("m0", 20)
    assert not keys.unsaved and keys.saved() == saved
    # Another run (loaded anew) remembers the files left out here, and leaves them out
    # again: what it would save is what the node holds, nothing to send.
    again.file_is(ids[-1], FileIdentity(2049, SESSION_KEYS_MAX - 1, "ffffffff"))
    assert again.unsaved and again.saved() == again.on_node == saved


def test_a_file_left_out_for_room_is_remembered_once_another_file_and_room_come() -> None:
    """Past the node's entries the marks' files are left out, and not remembered again
    (each save would leave them out anew); one read again as another file (``restart``)
    is remembered once there is room (another mark forgotten, its file gone)."""
    cursor: dict[str, int] = {}
    for n in range(SESSION_KEYS_MAX - 1):
        cursor[entry_of(f"k{n}", f"agent:main:k{n}") or ""] = n
        cursor[entry_of(f"k{n}", None, 10) or ""] = n
    keys = SessionKeys(cursor)
    for n in range(2):
        keys.mark(f"m{n}", 10)
        keys.file_is(f"m{n}", FileIdentity(5, n, "0011aaff"))
    saved = check_cursor(keys.saved())
    assert len(saved) == CURSOR_ENTRIES_MAX and "10+2:m1" in saved
    assert not [entry for entry in saved if file_of(entry) is not None]
    keys.forget_gone({"m0"})  # m1's file is gone: room for one file
    assert keys.restart("m0") and keys.mark("m0", 0)
    keys.file_is("m0", FileIdentity(5, 9, "22ccdd44"))
    assert not keys.another_file("m0", FileIdentity(5, 9, "22ccdd44"))
    assert "5.9.22ccdd44@2:m0" in keys.saved()


def test_an_identity_with_no_first_record_is_not_remembered() -> None:
    """A file whose first line is not complete yet has no first record: its identity is
    not kept (nor saved in the release before's form, which would take a shorter file
    with its device and inode for cut), and one kept before stays."""
    keys = SessionKeys(None)
    keys.mark("s1", 10)
    keys.unsaved = False
    keys.file_is("s1", FileIdentity(5, 77))
    assert not keys.unsaved and keys.saved() == {"10+2:s1": 0}
    keys.file_is("s1", FileIdentity(5, 77, "0011aaff"))
    keys.file_is("s1", FileIdentity(5, 78))
    assert keys.saved() == {"10+2:s1": 0, "5.77.0011aaff@2:s1": 0}


def test_marks_of_files_gone_are_forgotten() -> None:
    keys = SessionKeys(None)
    keys.mark("s1", 10)
    keys.mark("s2", 10)
    keys.learn("s2", "agent:main:b")
    keys.mark("s3", 10)
    keys.unsaved = False
    keys.forget_gone({"s3"})
    assert keys.unsaved and keys.saved() == {"2:s2:agent:main:b": 2, "10+2:s2": 2, "10+2:s3": 3}
    keys.unsaved = False
    keys.forget_gone({"s3"})
    assert not keys.unsaved


def test_a_byte_past_a_cursor_value_names_nothing_and_orders_start_again() -> None:
    """An entry saved by anyone holding the node's token: a byte of 200 digits is none
    (not the whole file under its id); an order at a cursor's largest value leaves no
    room to learn in, and the orders are numbered anew, so that the node takes them."""
    assert parts_of("9" * 200 + "+2:s1") is None
    assert parts_of(f"{BYTE_MAX}+2:s1") == ("s1", None, BYTE_MAX)
    keys = SessionKeys({"2:s1:agent:main:a": 5, "9" * 200 + "+2:s1": 5,
                        "2:s2:agent:main:b": ORDER_MAX})
    assert keys.since("s1") == 0
    assert keys.learn("s3", "agent:main:c")
    assert check_cursor(keys.saved()) == {"2:s1:agent:main:a": 0, "2:s2:agent:main:b": 1,
                                          "2:s3:agent:main:c": 2}
    for hostile in ("+2:s1", "1+2+3:s1", "00+2:s1", "\uff13+2:s1", "0:", "0+2:s1"):
        assert parts_of(hostile) is None, hostile
    assert parts_of("007+2:s1:k") is None and parts_of("+2:s1:k") is None


def test_keys_learnt_past_the_largest_order_are_numbered_anew() -> None:
    """Orders loaded just below ``ORDER_MAX``, then two keys learnt in one read: the
    orders are numbered anew as they reach it, so the save stays one the node takes."""
    keys = SessionKeys({"2:s1:agent:main:a": ORDER_MAX - 1})
    assert keys.learn("s2", "agent:main:b") and keys.learn("s3", "agent:main:c")
    assert keys.mark("s4", 10)
    assert check_cursor(keys.saved()) == {"2:s1:agent:main:a": 0, "2:s2:agent:main:b": 1,
                                          "2:s3:agent:main:c": 2, "10+2:s4": 3}
