"""Names ``parse_event`` took before are known (``crdt.quick_checks``) and not checked
again: what it answers must be what the checks of ``crdt.keys`` answer, whether its names
are known or not, and at their limits (256 bytes for an agent id, 512 for a session key)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import codec, quick_checks
from crdt.clock import Hlc
from crdt.errors import InvalidInput, LimitExceeded
from crdt.events import Draft, parse_event
from crdt.keys import NAME_BYTES_MAX, check_name, check_session_key
from tests.crdt.support import STAMP

_KIND = {"type": "session_ended", "reason": "x"}
#: Short names (lone surrogates and control characters too), and names about both limits:
#: printable ASCII, any text, and characters of four UTF-8 bytes each.
_NAMES = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=8),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=250,
            max_size=520),
    st.text(min_size=250, max_size=520),
    st.text(st.characters(min_codepoint=0x10000), min_size=60, max_size=140))


def _answer(session_key: str, agent_id: str) -> Any:
    """What ``parse_event`` answers: the sealed event's bytes, or the refusal."""
    raw = {"session_key": session_key, "agent_id": agent_id, "kind": _KIND}
    try:
        draft = parse_event(raw, where="events[0]")
    except InvalidInput as error:
        return type(error), str(error), error.field
    assert isinstance(draft, Draft)
    return draft.seal(Hlc(*STAMP)).canonical


def _checked(session_key: str, agent_id: str) -> Any:
    """What the checks of ``crdt.keys`` answer, in ``parse_event``'s order, and the
    bytes cbor2 encodes for the content they take."""
    try:
        check_session_key(session_key, "events[0].session_key")
        check_name(agent_id, "events[0].agent_id")
    except InvalidInput as error:
        return type(error), str(error), error.field
    return codec.encode({"v": 1, "session_key": session_key, "agent_id": agent_id,
                         "timestamp": STAMP, "kind": _KIND["type"],
                         "payload": {"reason": _KIND["reason"]}})


@settings(max_examples=300)
@given(first=_NAMES, second=_NAMES)
def test_names_known_or_not_are_taken_as_the_checks_take_them(first: str,
                                                              second: str) -> None:
    """Each name as a session key and as an agent id: a name known as one is not known
    as the other, whose limit may be lower."""
    quick_checks.NAMES.clear()
    quick_checks.SESSION_KEYS.clear()
    for _ in range(2):  # not known yet, then known if taken
        assert _answer(first, second) == _checked(first, second)
        assert _answer(second, first) == _checked(second, first)


def test_a_session_key_taken_is_no_agent_id_past_its_limit() -> None:
    long = "x" * (NAME_BYTES_MAX + 1)
    parse_event({"agent_id": "a", "session_key": long, "kind": _KIND})
    with pytest.raises(LimitExceeded) as error:
        parse_event({"agent_id": long, "session_key": "s", "kind": _KIND})
    assert error.value.field == "agent_id"
