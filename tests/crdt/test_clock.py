"""crdt.clock: hybrid logical clock and RFC 3339 timestamps. The wall clock is always
passed in (``wall=``), never read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crdt.clock import COUNTER_MAX, DRIFT_MAX_MS, MS_MAX, Clock, Hlc
from crdt.errors import InvalidInput

hlcs = st.builds(Hlc, st.integers(0, 10**13), st.integers(0, COUNTER_MAX))
walls = st.integers(0, 10**13)


# -- Hlc ordering and range -------------------------------------------------------------


def test_hlc_orders_by_ms_then_counter() -> None:
    assert Hlc(5, 0) < Hlc(5, 1) < Hlc(6, 0)
    assert Hlc(5, COUNTER_MAX) < Hlc(6, 0)
    assert sorted([Hlc(6, 0), Hlc(5, 9), Hlc(5, 1)]) == [Hlc(5, 1), Hlc(5, 9), Hlc(6, 0)]


@pytest.mark.parametrize("bad", [
    Hlc(-1, 0), Hlc(0, -1), Hlc(MS_MAX + 1, 0), Hlc(0, COUNTER_MAX + 1),
    Hlc(True, 0), Hlc(0, False), Hlc(1.0, 0), Hlc("1", 0), Hlc(None, 0)])  # type: ignore[arg-type]
def test_check_refuses_out_of_range_or_non_integer_parts(bad: Hlc) -> None:
    with pytest.raises(InvalidInput) as caught:
        bad.check("hlc")
    assert caught.value.field == "hlc"


def test_check_accepts_the_extremes() -> None:
    assert Hlc(0, 0).check() == Hlc(0, 0)
    assert Hlc(MS_MAX, COUNTER_MAX).check() == Hlc(MS_MAX, COUNTER_MAX)


# -- Clock.now ---------------------------------------------------------------------------


@given(st.lists(walls, min_size=1, max_size=50), hlcs)
def test_now_strictly_increases_whatever_the_wall_clock_does(wall_readings: list[int],
                                                             start: Hlc) -> None:
    clock = Clock(last=start)
    stamps = [clock.now(wall=wall) for wall in wall_readings]
    assert all(a < b for a, b in zip([start, *stamps], stamps, strict=False))
    assert clock.last == stamps[-1]


@given(st.lists(walls, min_size=1, max_size=50))
def test_now_follows_the_wall_clock_when_it_moves_forward(wall_readings: list[int]) -> None:
    clock = Clock()
    for wall in wall_readings:
        before = clock.last
        stamp = clock.now(wall=wall)
        if wall > before.ms:
            assert stamp == Hlc(wall, 0)
        else:  # stepped back or stood still: keep the ms, count instead
            assert stamp.ms >= before.ms


def test_wall_clock_going_backwards_moves_the_counter() -> None:
    clock = Clock(last=Hlc(1_000, 0))
    assert clock.now(wall=999) == Hlc(1_000, 1)
    assert clock.now(wall=1) == Hlc(1_000, 2)
    assert clock.now(wall=1_000) == Hlc(1_000, 3)
    assert clock.now(wall=1_001) == Hlc(1_001, 0)


def test_counter_overflow_borrows_the_next_millisecond() -> None:
    clock = Clock(last=Hlc(5_000, COUNTER_MAX - 1))
    assert clock.now(wall=4_000) == Hlc(5_000, COUNTER_MAX)
    assert clock.now(wall=4_000) == Hlc(5_001, 0)
    assert clock.now(wall=4_000) == Hlc(5_001, 1)
    assert clock.last.check() == clock.last


# -- Clock.observe -----------------------------------------------------------------------


@given(hlcs, hlcs, walls, st.integers(0, 10**7))
def test_observe_never_drags_the_clock_more_than_drift_max_past_wall(
        start: Hlc, remote: Hlc, wall: int, drift_max_ms: int) -> None:
    clock = Clock(last=start, drift_max_ms=drift_max_ms)
    clock.observe(remote, wall=wall)
    ceiling = Hlc(wall + drift_max_ms, 0)
    assert clock.last >= start  # never backwards
    assert clock.last <= max(start, ceiling)  # never further than drift_max_ms ahead
    if remote <= ceiling:
        assert clock.last >= remote
        assert clock.now(wall=wall) > remote  # the next local event sorts after it


def test_observe_examples() -> None:
    clock = Clock(last=Hlc(1_000, 0))
    clock.observe(Hlc(10**9, 0), wall=1_000)  # a peer hours ahead
    assert clock.last == Hlc(1_000 + DRIFT_MAX_MS, 0)
    clock.observe(Hlc(500, 0), wall=1_000)  # an old timestamp changes nothing
    assert clock.last == Hlc(1_000 + DRIFT_MAX_MS, 0)
    clock = Clock(last=Hlc(1_000, 0))
    clock.observe(Hlc(2_000, 3), wall=1_500)  # within the bound: taken as is
    assert clock.last == Hlc(2_000, 3)
    assert clock.now(wall=1_500) == Hlc(2_000, 4)


# -- RFC 3339 ----------------------------------------------------------------------------

NOON = 1_704_110_400_000  # 2024-01-01T12:00:00Z


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-01-01T12:00:00Z", Hlc(NOON, 0)),
    ("2024-01-01T12:00:00z", Hlc(NOON, 0)),
    ("2024-01-01T12:00:00+00:00", Hlc(NOON, 0)),
    ("2024-01-01T12:00:00-00:00", Hlc(NOON, 0)),
    ("2024-01-01T13:00:00+01:00", Hlc(NOON, 0)),
    ("2024-01-01T06:30:00-05:30", Hlc(NOON, 0)),
    ("2024-01-01T12:00:00.5Z", Hlc(NOON + 500, 0)),
    ("2024-01-01T12:00:00.123Z", Hlc(NOON + 123, 0)),
    ("2024-01-01T12:00:00.123456Z", Hlc(NOON + 123, 456_000)),
    ("2024-01-01T12:00:00.123456789Z", Hlc(NOON + 123, 456_789)),
    ("2024-01-01T12:00:00.000000001Z", Hlc(NOON, 1)),
    ("2024-01-01T13:00:00.999999999+01:00", Hlc(NOON + 999, 999_999)),
    ("1970-01-01T00:00:00Z", Hlc(0, 0)),
    ("9999-12-31T23:59:59.999999999Z", Hlc(MS_MAX, 999_999)),
])
def test_parse_rfc3339(text: str, expected: Hlc) -> None:
    assert Hlc.parse_rfc3339(text) == expected


@pytest.mark.parametrize("text", [
    "2024-01-01T12:00:00", "2024-01-01T12:00:00.123456789", "2024-01-01"])
def test_a_time_without_zone_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Hlc.parse_rfc3339(text, "events[0].timestamp")
    assert caught.value.field == "events[0].timestamp"
    assert "zone" in str(caught.value)


@pytest.mark.parametrize("text", [
    "", "garbage", "now", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z",
    "2024-01-01T25:00:00Z", "2024-01-01T23:59:60Z",  # leap seconds do not exist here
    "2024-01-01T12:00:00.12x3Z", "2024-01-01T12:00:00Zjunk", "2024-01-01T12:00:00+25:00",
    "1969-12-31T23:59:59Z",  # before the epoch
    "1700000000000",
])
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Hlc.parse_rfc3339(text)
    assert caught.value.field == "timestamp"


def test_more_than_nine_fraction_digits_are_refused_not_truncated() -> None:
    try:
        parsed = Hlc.parse_rfc3339("2024-01-01T12:00:00.1234567891Z")
    except InvalidInput:
        return
    assert parsed.ms == NOON + 123


@pytest.mark.parametrize("text", [
    "2024-01-01T12:00:00.Z", "2024-01-01T12:00Z", "2024-01-01T12Z",
    "2024-W01-1T12:00:00Z", "20240101T120000Z"])
def test_iso8601_forms_that_are_not_rfc3339_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        Hlc.parse_rfc3339(text)


@pytest.mark.parametrize("text", [
    "2024-01-01T12:00:00+05:99", "2024-01-01T12:00:00+05:60",
    "\u0662\u0660\u0662\u0664-01-01T12:00:00Z",  # Arabic-Indic digits
    "2024-01-01T12:00:00.\uff11Z",  # a fullwidth digit in the fraction
], ids=["offset-minutes-99", "offset-minutes-60", "arabic-indic-year", "fullwidth-fraction"])
def test_rfc3339_digits_and_offsets_are_strict(text: str) -> None:
    with pytest.raises(InvalidInput):
        Hlc.parse_rfc3339(text)


@pytest.mark.parametrize(("hlc", "text"), [
    (Hlc(0, 0), "1970-01-01T00:00:00.000Z"),
    (Hlc(NOON + 7, 99), "2024-01-01T12:00:00.007Z"),
    (Hlc(MS_MAX, COUNTER_MAX), "9999-12-31T23:59:59.999Z"),
])
def test_rfc3339_formatting(hlc: Hlc, text: str) -> None:
    assert hlc.rfc3339() == text


@given(st.integers(0, MS_MAX), st.integers(0, COUNTER_MAX))
def test_formatting_then_parsing_keeps_the_millisecond(ms: int, counter: int) -> None:
    text = Hlc(ms, counter).rfc3339()
    assert len(text) == len("2024-01-01T12:00:00.000Z")
    assert Hlc.parse_rfc3339(text) == Hlc(ms, 0)


@given(st.integers(0, MS_MAX - 1), st.integers(0, MS_MAX - 1))
def test_formatted_timestamps_sort_like_their_milliseconds(a: int, b: int) -> None:
    assert (Hlc(a, 0).rfc3339() < Hlc(b, 0).rfc3339()) == (a < b)
