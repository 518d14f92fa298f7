"""The keys remembered for an agent's sessions stay within their limits, forgetting the
sessions learnt first; what they save is a cursor the node keeps, and reads back the
same."""

from __future__ import annotations

import json

from crdt import codec
from crdt.keys import NAME_BYTES_MAX
from crdt.log.cursors import CURSOR_BYTES_MAX, check_cursor
from node.client.api import Client
from node.openclaw.session_keys import (
    SESSION_KEYS_MAX,
    SessionKeys,
    entry_of,
    keys_name,
    pair_of,
    parts_of,
)
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
    assert keys.saved() == {"2:s1:agent:main:main": 1, "2:s4:agent:main:x": 4}


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
    """Marked as read under its id, a session's key applies from where its file was
    read up to when the key was learnt, and goes on doing so under another key; an
    unmarked session's (an entry of a release that kept no marks) from its start."""
    keys = SessionKeys({"2:s1:agent:main:old": 0})
    assert keys.mark("s2") and not keys.mark("s2") and not keys.mark("s1")
    assert keys.key_of("s2") is None and keys.since("s2") == 0
    assert keys.learn("s2", "agent:main:a", read_to=120)
    assert keys.learn("s2", "agent:main:b", read_to=400)  # read under a since 120
    assert keys.learn("s1", "agent:main:new", read_to=300)
    assert not keys.mark("s2")
    saved = keys.saved()
    assert saved == {"2:s1:agent:main:new": 4, "120+2:s2:agent:main:b": 3}
    back = SessionKeys(saved)
    assert (back.key_of("s2"), back.since("s2")) == ("agent:main:b", 120)
    assert (back.key_of("s1"), back.since("s1")) == ("agent:main:new", 0)


def test_a_since_without_room_in_the_entry_applies_the_key_from_the_start() -> None:
    """A pair that fits only without its ``since``: its key from its file's start, as
    before marks were kept, rather than forgotten (the whole conversation under its id
    once no longer named). Marks forgotten for room are not marked again."""
    session_id, key = "s" * 100, "k" * (NAME_BYTES_MAX - 105)
    keys = SessionKeys(None)
    assert keys.mark(session_id)
    assert keys.learn(session_id, key, read_to=10_000)
    assert (keys.key_of(session_id), keys.since(session_id)) == (key, 0)
    assert keys.saved() == {entry_of(session_id, key): 1}
    many = SessionKeys(None)
    for n in range(SESSION_KEYS_MAX + 1):
        many.mark(f"s{n}")
    assert "2:s0" not in many.saved() and not many.mark("s0")
    assert parts_of("007+2:s1:k") is None and parts_of("+2:s1:k") is None
