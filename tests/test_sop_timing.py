"""When steps are due: offsets, calendar days and weekdays in bot.timezone, repeats, quiet hours, the late rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.hours import parse_quiet
from bot.sop.timing import Late, Repeat, due_time, occurrence_nominal, parse_at, parse_duration

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")


def local(*args: int, tz: ZoneInfo = SH) -> datetime:
    return datetime(*args, tzinfo=tz)


def test_offsets_are_elapsed_time() -> None:
    anchor = local(2026, 11, 23, 23, 30)
    assert parse_at("+0m").nominal(anchor, SH) == anchor
    assert parse_at("+45m").nominal(anchor, SH) == anchor + timedelta(minutes=45)
    assert parse_at("+2h").nominal(anchor, SH) == anchor + timedelta(hours=2)
    assert parse_at("+1d").nominal(anchor, SH) == anchor + timedelta(hours=24)


def test_day_n_is_the_local_calendar_day_after_the_trigger() -> None:
    # 23:30 local is 15:30 UTC: "day 1" is the next *local* date, not the next UTC date or +24 h.
    anchor = local(2026, 11, 23, 23, 30)
    assert parse_at("day 1 09:30").nominal(anchor, SH) == local(2026, 11, 24, 9, 30)
    assert parse_at("day 0 23:45").nominal(anchor, SH) == local(2026, 11, 23, 23, 45)
    assert parse_at("day 7 10:00").nominal(anchor, SH) == local(2026, 11, 30, 10, 0)
    early = local(2026, 11, 24, 0, 10)  # just after local midnight (still the 23rd in UTC)
    assert parse_at("day 1 09:30").nominal(early, SH) == local(2026, 11, 25, 9, 30)
    assert parse_at("day 1 09:30").nominal(anchor, SH).astimezone(UTC) == datetime(2026, 11, 24, 1, 30, tzinfo=UTC)


def test_weekday_is_the_first_one_after_the_trigger() -> None:
    wednesday_noon = local(2026, 11, 25, 12, 0)
    assert parse_at("wed 19:30").nominal(wednesday_noon, SH) == local(2026, 11, 25, 19, 30)
    assert parse_at("周三 11:00").nominal(wednesday_noon, SH) == local(2026, 12, 2, 11, 0)
    assert parse_at("mon 19:50").nominal(wednesday_noon, SH) == local(2026, 11, 30, 19, 50)
    assert parse_at("星期日 20:00").nominal(wednesday_noon, SH) == local(2026, 11, 29, 20, 0)


@pytest.mark.parametrize("bad", ["", "0m", "+5", "+5s", "day 1", "day one 09:00", "day 1 25:00", "day 1 09:60",
                                 "someday 09:00", "wed", "+-5m"])
def test_bad_at_is_refused_with_the_forms_it_accepts(bad: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_at(bad)
    assert "+30m" in str(exc.value) or "时刻" in str(exc.value)


def test_durations() -> None:
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_duration("90分钟") == timedelta(minutes=90)
    for bad in ("", "2", "h", "1w", "-1h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_quiet_hours_move_a_step_to_the_end_of_the_window() -> None:
    quiet = parse_quiet("22:00-08:00")
    assert quiet is not None
    assert quiet.release(local(2026, 11, 23, 23, 0), SH) == local(2026, 11, 24, 8, 0)
    assert quiet.release(local(2026, 11, 24, 3, 0), SH) == local(2026, 11, 24, 8, 0)
    assert quiet.release(local(2026, 11, 23, 22, 0), SH) == local(2026, 11, 24, 8, 0)
    assert quiet.release(local(2026, 11, 24, 8, 0), SH) == local(2026, 11, 24, 8, 0)  # the end is outside
    assert quiet.release(local(2026, 11, 23, 21, 59), SH) == local(2026, 11, 23, 21, 59)
    lunch = parse_quiet("12:00-14:00")
    assert lunch is not None and lunch.release(local(2026, 11, 23, 13, 0), SH) == local(2026, 11, 23, 14, 0)
    chained = parse_quiet("22:00-23:00, 23:00-07:00")
    assert chained is not None and chained.release(local(2026, 11, 23, 22, 30), SH) == local(2026, 11, 24, 7, 0)
    assert parse_quiet("off") is None and parse_quiet("") is None
    for bad in ("22:00", "22-08", "25:00-08:00", "08:00-08:00"):
        with pytest.raises(ValueError):
            parse_quiet(bad)


def test_due_time_applies_quiet_hours_after_the_timing() -> None:
    quiet = parse_quiet("22:00-08:00")
    anchor = local(2026, 11, 23, 21, 50)
    nominal, due = due_time(parse_at("+30m"), anchor, SH, None, 0, quiet)
    assert nominal == local(2026, 11, 23, 22, 20) and due == local(2026, 11, 24, 8, 0)


def test_daily_repeats_stay_on_the_local_wall_clock_and_shanghai_has_no_dst() -> None:
    every_day = Repeat(timedelta(days=1), times=400)
    at = parse_at("day 0 20:30")
    anchor = local(2027, 3, 1, 9, 0)
    for n in range(0, 400, 7):  # a whole year, across the dates other zones change their clocks
        when = occurrence_nominal(at, anchor, SH, every_day, n)
        assert when.astimezone(SH).strftime("%H:%M") == "20:30"
        assert when.astimezone(SH).utcoffset() == timedelta(hours=8)
        assert when.astimezone(UTC).strftime("%H:%M") == "12:30"
    # Where there is DST the wall clock is kept too (the UTC time moves by an hour).
    ny = [occurrence_nominal(at, local(2027, 3, 12, 9, 0, tz=NY), NY, every_day, n) for n in (0, 3)]
    assert [t.astimezone(NY).strftime("%H:%M") for t in ny] == ["20:30", "20:30"]
    assert ny[1] - ny[0] == timedelta(days=3, hours=-1)


def test_hourly_repeats_are_elapsed_time() -> None:
    at = parse_at("+1h")
    anchor = local(2026, 11, 23, 10, 0)
    assert occurrence_nominal(at, anchor, SH, Repeat(timedelta(hours=6)), 3) == local(2026, 11, 24, 5, 0)
    assert Repeat(timedelta(hours=6), times=3).allows(2) and not Repeat(timedelta(hours=6), times=3).allows(3)


def test_late_rule() -> None:
    due = local(2026, 11, 23, 9, 0)
    skip = Late(timedelta(hours=2), "skip")
    send = Late(timedelta(hours=2), "send")
    assert skip.verdict(due, due + timedelta(hours=2)) == "on_time"
    assert skip.verdict(due, due + timedelta(hours=2, seconds=1)) == "late_skip"
    assert send.verdict(due, due + timedelta(days=3)) == "late_send"
