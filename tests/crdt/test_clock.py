"""crdt.clock: hybrid logical clock and RFC 3339 timestamps. The wall clock is always
passed in (``wall=``), never read."""

from __future__ import annotations

from datetime import UTC, datetime

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
def test_now_strictly_increases_unless_the_wall_clock_fell_back_past_the_bound(
        wall_readings: list[int], start: Hlc) -> None:
    clock = Clock(last=start)
    before = start
    for wall in wall_readings:
        stamp = clock.now(wall=wall)
        if before.ms - wall > DRIFT_MAX_MS:  # a fast clock was put right: start again
            assert stamp.ms == wall
            assert clock.may_repeat(stamp)
            assert clock.high >= before
        else:
            assert stamp > before
        assert clock.last == stamp
        before = stamp


@given(st.lists(walls, min_size=1, max_size=50))
def test_now_follows_the_wall_clock_when_it_moves_forward(wall_readings: list[int]) -> None:
    clock = Clock()
    for wall in wall_readings:
        before = clock.last
        stamp = clock.now(wall=wall)
        if wall > before.ms or before.ms - wall > DRIFT_MAX_MS:
            assert stamp.ms == wall
        else:  # stepped back a little or stood still: keep the ms, count instead
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
    if start.ms - wall <= drift_max_ms:
        assert clock.last >= start  # never backwards while within the bound
    assert clock.last <= max(start, ceiling)  # never further than drift_max_ms ahead
    assert clock.high_water >= start  # what was issued is remembered
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


# -- a clock that was fast and was put right ------------------------------------------------

HOUR_MS = 3_600_000


def test_a_corrected_clock_stamps_the_wall_time_not_the_old_future() -> None:
    # The node's wall clock ran 2 h fast, then NTP put it right.
    clock = Clock()
    fast = clock.now(wall=10 * HOUR_MS + 2 * HOUR_MS)
    assert clock.now(wall=10 * HOUR_MS) == Hlc(10 * HOUR_MS, 0)
    # 90 minutes later it stamps the time of day, not the future it once saw.
    assert clock.now(wall=10 * HOUR_MS + 90 * 60_000) == Hlc(10 * HOUR_MS + 90 * 60_000, 0)
    assert clock.high == fast  # remembered: timestamps up to it may repeat
    assert clock.may_repeat(Hlc(10 * HOUR_MS, 0))
    assert not clock.may_repeat(Hlc(fast.ms, 1))


def test_a_clock_within_the_bound_keeps_its_lead() -> None:
    clock = Clock(last=Hlc(1_000 + DRIFT_MAX_MS, 0))
    assert clock.now(wall=1_000) == Hlc(1_000 + DRIFT_MAX_MS, 1)  # exactly the bound: kept
    assert not clock.may_repeat(Hlc(1_000 + DRIFT_MAX_MS, 1))
    assert clock.now(wall=999) == Hlc(999, 0)  # one millisecond beyond: start again
    assert clock.may_repeat(Hlc(999, 0))


def test_a_restart_on_a_corrected_clock_starts_from_the_wall_clock() -> None:
    first = Clock()
    first.now(wall=3 * HOUR_MS)  # the first run's clock was 2 h fast
    persisted = first.high_water
    again = Clock(last=persisted)  # the store reopens with what it persisted
    assert again.now(wall=HOUR_MS) == Hlc(HOUR_MS, 0)
    # What it persists next still covers the first run's timestamps: a second restart
    # knows they may repeat too.
    assert again.high_water == persisted
    assert Clock(last=again.high_water).now(wall=HOUR_MS + 1) == Hlc(HOUR_MS + 1, 0)


def test_observe_after_a_correction_keeps_the_remote_order() -> None:
    clock = Clock(last=Hlc(3 * HOUR_MS, 0))
    clock.observe(Hlc(HOUR_MS + 10, 0), wall=HOUR_MS)  # a peer 10 ms ahead of our wall
    assert clock.now(wall=HOUR_MS) == Hlc(HOUR_MS + 10, 1)  # sorts after what it saw


@pytest.mark.parametrize(("ms", "ahead"), [
    (1_000 + DRIFT_MAX_MS, False), (1_000 + DRIFT_MAX_MS + 1, True), (0, False),
    (MS_MAX, True)])
def test_ahead_is_beyond_the_bound_past_the_wall_clock(ms: int, ahead: bool) -> None:
    assert Clock().ahead(Hlc(ms, 0), wall=1_000) is ahead


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


@given(st.integers(0, MS_MAX))
def test_rfc3339_is_the_utc_time_to_the_millisecond(ms: int) -> None:
    text = Hlc(ms, 0).rfc3339()
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    assert text == moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    assert Hlc.parse_rfc3339(text) == Hlc(ms, 0)
