"""The forget record and its coverage rule (crdt.log.forget): pure functions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from crdt.clock import Hlc
from crdt.errors import InvalidInput
from crdt.events import Draft, Event
from crdt.log import forget

MakeEvent = Callable[..., Event]


def _record(session: str = "s1", ids: list[str] | None = None, ms: int = 5_000,
            **fields: str) -> forget.Forget:
    found = forget.read(forget.forget(session, ids, **fields).seal(Hlc(ms, 0)))
    assert found is not None
    return found


def test_a_whole_session_forget_covers_what_sorts_before_it(ev: MakeEvent) -> None:
    whole = _record(ms=5_000)
    assert whole.events is None and whole.reason == "user"
    assert forget.covers(whole, ev(ms=4_999))
    assert forget.covers(whole, ev("tool_called", 1))
    assert not forget.covers(whole, ev(ms=5_001))  # written after the forget: lives on
    assert not forget.covers(whole, ev(ms=1_000, session="s2"))


def test_an_event_forget_covers_the_listed_ids_of_its_session_only(ev: MakeEvent) -> None:
    said, other = ev(content="secret", ms=9_000), ev(content="fine", ms=1_000)
    one = _record(ids=[said.id.hex()], ms=2_000)
    assert one.events == frozenset([said.id])
    assert forget.covers(one, said)  # later than the record: listed, so covered
    assert not forget.covers(one, other)
    elsewhere = ev(content="secret", ms=9_000, session="s2")
    assert not forget.covers(_record(ids=[elsewhere.id.hex()]), said)


def test_a_forget_record_is_never_covered() -> None:
    first, later = (forget.forget("s1").seal(Hlc(ms, 0)) for ms in (1_000, 2_000))
    record = forget.read(later)
    assert record is not None and not forget.covers(record, first)


def test_generation_is_the_latest_forget_of_any_form() -> None:
    whole = forget.forget("s1").seal(Hlc(3_000, 0))
    one = forget.forget("s1", ["ab" * 32]).seal(Hlc(4_000, 0))
    assert forget.generation([]) is None
    assert forget.generation([whole]) == whole.id.hex()
    assert forget.generation([one, whole]) == one.id.hex()
    assert forget.generation([forget.read(whole), forget.read(one)]) == one.id.hex()  # type: ignore[list-item]


def test_generation_skips_events_that_are_not_forget_records(ev: MakeEvent) -> None:
    assert forget.generation([ev(ms=9_000)]) is None


def test_covering_finds_the_earliest_record_that_covers(ev: MakeEvent) -> None:
    said = ev(ms=1_000)
    early, late = _record(ms=2_000), _record(ms=3_000)
    assert forget.covering([late, early], said) == early
    assert forget.covering([late], ev(ms=4_000)) is None


def test_a_record_that_only_looks_like_a_forget_forgets_nothing() -> None:
    for payload in ({"events": "all"}, {"events": ["zz"]}, {"events": [], "reason": 3}):
        looks = Draft("s1", "x", forget.KIND, payload, Hlc(1, 0)).seal()
        assert forget.read(looks) is None


@pytest.mark.parametrize("ids", [["abc"], ["zz" * 32], [7], ["ab" * 32] * 2 + ["cd"]])
def test_malformed_ids_are_refused_when_a_forget_is_made(ids: list[object]) -> None:
    with pytest.raises(InvalidInput):
        forget.forget("s1", ids)  # type: ignore[arg-type]


def test_too_many_ids_are_refused() -> None:
    with pytest.raises(InvalidInput, match="at most"):
        forget.parse_ids(["ab" * 32] * (forget.EVENTS_MAX + 1))


def test_duplicate_ids_are_listed_once() -> None:
    draft = forget.forget("s1", ["ab" * 32, "AB" * 32], by="cli")
    assert draft.payload == {"events": ["ab" * 32], "reason": "user", "by": "cli"}
